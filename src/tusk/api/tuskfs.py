"""``tusk://``: PFS as an fsspec filesystem, so pandas, dask, pyarrow & co. read and write it.

This module owns the mapping between fsspec's world (slash paths, file objects, ``ls``/``info``
dicts, ``FileNotFoundError``) and PFS's (repos, refs, commits, write sessions). It adds no
storage behaviour of its own: every call goes to ``tusk.Client``'s service, embedded or remote.
Where a filesystem points is ``tuskfs_connect``; the file objects and batched writes are
``tuskfs_file``.

Paths (after ``tusk://``)::

    ""                           the repos of the project (directories)
    repo                         the repo's branches, as ``repo@branch`` directories
    repo@branch/path             a file or directory on a branch's head
    repo@<commit id>/path        ... in one commit;  repo@master^/path  ... in an ancestor
    project/repo@ref/path        ... in another project (the ``@`` is required here)
    repo/path                    shorthand for repo@master/path
    repo@ref:/path               pachctl's form, accepted and rewritten to repo@ref/path

Names returned by ``ls``/``find``/``glob`` keep the ``repo@ref`` part as it was written, so
they can be passed back to ``open`` and match what fsspec's generic glob compares them with.

Writes land as commits: a file opened for writing is spooled locally and, when it is closed,
put in one write session, i.e. exactly one commit on its branch (or into an open commit named
by ID). If the ``with`` block around it raises, nothing lands. ``pipe``/``put``/``copy``/``mv``
/``rm`` of many paths, and everything inside ``with fs.transaction:``, land as one commit per
branch. Writing to a finished commit or to an ancestry ref is refused.

Storage options: ``address`` and ``auth_token`` (a ``tusk serve``), or ``root`` (a local root,
in process), and ``project``. With none, the target is the current context, chosen exactly as
the CLI chooses it (``TUSK_ADDRESS``/``TUSK_AUTH_TOKEN``, else the active ``tusk context``, else
the local root ``$TUSK_ROOT``).
"""

from __future__ import annotations

import errno
import io
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from glob import has_magic
from pathlib import Path
from typing import Any

from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.spec import AbstractFileSystem
from fsspec.utils import stringify_path

from tusk.api.tuskfs_connect import client_for, close_clients, resolve
from tusk.api.tuskfs_file import Op, TuskFile, TuskTransaction
from tusk.errors import FailedPrecondition, InvalidArgument, NotFound
from tusk.pfs.model import FileInfo
from tusk.pfs.names import DEFAULT_PROJECT, normalize_path
from tusk.pfs.refs import CommitRef, FileRef, RepoRef, parse_commit, parse_repo

PROTOCOL = "tusk"
# Patterns on which PFS's glob (``glob_file``, evaluated next to the data in one call) and
# fsspec's glob agree: plain characters, single ``*``, ``?`` and simple ``[...]`` classes.
# Anything else (``**``, which PFS lets cross ``/`` differently; braces and extglobs, which
# fsspec takes literally) goes through fsspec's generic glob over ``find``.
_SIMPLE_GLOB = re.compile(r"(?:[^*?\[\]{}()!+@^\\]|(?<!\*)\*(?!\*)|\?|\[!?[A-Za-z0-9 ._-]+\])*")


# -- paths ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A parsed path: the root, a repo, or a path inside one commit."""

    prefix: str  # how the path named repo and ref ("repo@master", "repo"), kept verbatim
    repo: RepoRef | None = None
    commit: CommitRef | None = None
    path: str = "/"  # absolute, inside the commit

    def name(self, path: str) -> str:
        """The fsspec name of ``path`` (absolute, in this target's commit)."""
        return self.prefix if path == "/" else self.prefix + path

    @property
    def file(self) -> FileRef:
        assert self.commit is not None
        return FileRef(self.commit, self.path)


def _dir_entry(name: str, commit: str, size: int = 0) -> dict[str, Any]:
    """A directory derived from the files below it (sized as PFS sizes one: their sum)."""
    return {"name": name, "size": size, "type": "directory", "commit": commit}


# -- the filesystem -------------------------------------------------------------------------


class TuskFileSystem(AbstractFileSystem):
    """PFS as fsspec: ``fsspec.filesystem("tusk", address=..., auth_token=...)``."""

    protocol = PROTOCOL
    root_marker = ""
    transaction_type = TuskTransaction
    # fsspec caches instances by their storage options; with none, the target depends on the
    # environment (TUSK_ROOT, the active context), which may change between calls. So instances
    # are not cached (they are cheap) and the expensive part, the Client, is cached per
    # *resolved* target instead. No listings are cached either: a commit moves a branch.
    cachable = False

    def __init__(self, address: str | None = None, auth_token: str | None = None,
                 root: str | os.PathLike | None = None, project: str | None = None,
                 block_size: int | None = None, **kwargs: Any) -> None:
        # Other options are accepted and ignored: fsspec.open passes its extra arguments here,
        # and pandas retries a PermissionError with anon=True, whatever the filesystem.
        super().__init__(**kwargs)
        self.block_size = block_size  # the default for open(); None: fsspec's 5 MiB
        self.where = resolve(address, auth_token, root)
        self.project = project or DEFAULT_PROJECT
        self._client = client_for(self.where)
        self._local = threading.local()  # .ops: this thread's open batch (see _batch)
        self._txn_ops: list[Op] = []  # changes made inside fs.transaction

    @property
    def _svc(self) -> Any:
        return self._client.pfs.service

    @classmethod
    def clear_instance_cache(cls) -> None:
        """Also close the cached Clients (database handles, connection pools)."""
        super().clear_instance_cache()
        close_clients()

    def __repr__(self) -> str:
        where = self.where.address or f"root {self.where.root}"
        return f"<TuskFileSystem {where} project={self.project}>"

    # -- path grammar ---------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = stringify_path(path)
        if path.startswith(PROTOCOL + "://"):
            path = path[len(PROTOCOL) + 3:]
        elif path.startswith(PROTOCOL + "::"):
            path = path[len(PROTOCOL) + 2:]
        path = path.lstrip("/")
        # pachctl's repo@ref:/path -> repo@ref/path (a ref holds no ':' or '/', a path no '@')
        head, colon, tail = path.partition(":")
        if colon and "@" in head and "/" not in head.partition("@")[2]:
            path = head + "/" + tail.lstrip("/")
        return path.rstrip("/")

    @classmethod
    def _parent(cls, path: str) -> str:
        path = cls._strip_protocol(path)
        parts = path.split("/")
        if len(parts) == 1 and "@" in parts[0]:
            return parts[0].partition("@")[0]  # repo@branch lives in the repo's directory
        if len(parts) == 2 and "@" in parts[1]:
            return ""  # project/repo@ref: projects are no directory level
        return path.rpartition("/")[0]

    def _target(self, path: str, pattern: bool = False) -> _Target:
        """Parse a stripped path; ``pattern``: the file part is a glob, keep it as written."""
        path = self._strip_protocol(path)
        if not path:
            return _Target("")
        parts = path.split("/")
        try:
            if "@" in parts[0]:
                n = 1
            elif len(parts) > 1 and "@" in parts[1]:
                n = 2
            elif len(parts) == 1:
                return _Target(parts[0], repo=parse_repo(parts[0], self.project))
            else:
                n = 1  # repo/path: the master branch
            prefix = "/".join(parts[:n])
            commit = parse_commit(prefix, self.project, default_branch="master")
            rest = "/" + "/".join(parts[n:])
            if not pattern:
                rest = normalize_path(rest)
        except InvalidArgument as e:
            raise ValueError(f"{self.unstrip_protocol(path)}: {e.message}") from None
        return _Target(prefix, commit.repo, commit, rest)

    def _commit_target(self, path: str) -> _Target:
        t = self._target(path)
        if t.commit is None:
            raise IsADirectoryError(errno.EISDIR, "a repo or the root is not a file; name a"
                                    " file as repo@branch/path", self.unstrip_protocol(path))
        return t

    @contextmanager
    def _errors(self, url: str) -> Iterator[None]:
        """Tusk errors about a path as the OSErrors fsspec and pandas expect.

        Other tusk errors (an unreachable server, a lock held by GC) are not about the path and
        stay ``TuskError``: fsspec treats an OSError as "absent" in places (``walk``), and a
        down server must not look like an empty directory.
        """
        try:
            yield
        except NotFound as e:
            raise FileNotFoundError(errno.ENOENT, e.message, url) from e
        except FailedPrecondition as e:
            raise PermissionError(errno.EACCES, e.message, url) from e
        except InvalidArgument as e:
            raise ValueError(f"{url}: {e.message}") from e

    def _url(self, path: str) -> str:
        return self.unstrip_protocol(self._strip_protocol(path))

    # -- listing --------------------------------------------------------------------------

    @staticmethod
    def _entry(t: _Target, fi: FileInfo) -> dict[str, Any]:
        d: dict[str, Any] = {"name": t.name(fi.path), "size": fi.size,
                             "type": "file" if fi.type == "file" else "directory",
                             "commit": fi.commit}
        if fi.type == "file":
            d["hash"] = fi.hash
        return d

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        t = self._target(path)
        url = self._url(path)
        with self._errors(url):
            if t.repo is None:
                out = [{"name": r.name if r.project == self.project else f"{r.project}/{r.name}",
                        "size": r.size_bytes, "type": "directory", "description": r.description}
                       for r in self._client.pfs.list_repo(self.project)]
            elif t.commit is None:
                out = []
                for b in self._client.pfs.list_branch(t.repo):
                    bt = _Target(f"{t.prefix}@{b.name}", t.repo, CommitRef(t.repo, b.name))
                    if detail:  # a branch's size is its head's: one more call per branch
                        out.append(self._entry(bt, self._svc.inspect_file(bt.file)))
                    else:
                        out.append({"name": bt.prefix})
            else:
                out = [self._entry(t, fi) for fi in self._svc.list_file(t.file)]
        out.sort(key=lambda e: e["name"])
        return out if detail else [e["name"] for e in out]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        t = self._target(path)
        with self._errors(self._url(path)):
            if t.repo is None:
                return {"name": "", "size": 0, "type": "directory"}
            if t.commit is None:
                r = self._client.pfs.inspect_repo(t.repo)
                return {"name": t.prefix, "size": r.size_bytes, "type": "directory",
                        "description": r.description}
            return self._entry(t, self._svc.inspect_file(t.file))

    def _files_below(self, t: _Target) -> list[FileInfo]:
        """Every file at or below a path in one call (``walk_file``); [] if there is none."""
        try:
            with self._errors(self.unstrip_protocol(t.name(t.path))):
                return list(self._svc.walk_file(t.file))
        except FileNotFoundError:
            return []

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False,
             detail: bool = False, **kwargs: Any) -> Any:
        path = self._strip_protocol(path)
        t = self._target(path)
        if t.commit is None:  # the root or a repo: fsspec's walk over ls, down to commits
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        files = self._files_below(t)
        out: dict[str, dict[str, Any]] = {}
        if len(files) == 1 and files[0].path == t.path and t.path != "/":
            out[t.name(t.path)] = self._entry(t, files[0])  # the path is a file
        else:
            base = t.path.rstrip("/")
            if withdirs and files:
                out[t.name(t.path)] = _dir_entry(t.name(t.path), files[0].commit,
                                                 sum(f.size for f in files))
            for f in files:
                rel = f.path[len(base) + 1:].split("/")
                if maxdepth is None or len(rel) <= maxdepth:
                    out[t.name(f.path)] = self._entry(t, f)
                if withdirs:
                    for i in range(1, len(rel) if maxdepth is None else min(len(rel), maxdepth + 1)):
                        name = t.name(base + "/" + "/".join(rel[:i]))
                        d = out.setdefault(name, _dir_entry(name, f.commit))
                        d["size"] += f.size
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def walk(self, path: str, maxdepth: int | None = None, topdown: bool = True,
             on_error: str | Callable[[OSError], None] = "omit", **kwargs: Any) -> Iterator[Any]:
        """As fsspec's walk, but inside a commit from one ``walk_file`` call, not an ls per dir."""
        path = self._strip_protocol(path)
        t = self._target(path)
        if t.commit is None:
            yield from super().walk(path, maxdepth=maxdepth, topdown=topdown, on_error=on_error,
                                    **kwargs)
            return
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        detail = kwargs.pop("detail", False)
        try:
            with self._errors(self._url(path)):
                files = list(self._svc.walk_file(t.file))
        except OSError as e:
            if on_error == "raise":
                raise
            if callable(on_error):
                on_error(e)
            return
        if len(files) == 1 and files[0].path == t.path and t.path != "/":  # a file, as fsspec
            info = self._entry(t, files[0])
            yield path, ({} if detail else []), ({"": info} if detail else [""])
            return
        # directory -> (its subdirectories, its files), built from the flat listing
        base = t.path.rstrip("/")
        tree: dict[str, tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]] = {base: ({}, {})}
        for f in files:
            parts = f.path[len(base) + 1:].split("/")
            d = base
            for part in parts[:-1]:
                child = f"{d}/{part}"
                sub = tree[d][0].setdefault(
                    part, _dir_entry(t.name(child), f.commit))
                sub["size"] += f.size
                tree.setdefault(child, ({}, {}))
                d = child
            tree[d][1][parts[-1]] = self._entry(t, f)

        def visit(d: str, depth: int) -> Iterator[Any]:
            subdirs, here = tree[d]
            dirs: Any = dict(subdirs) if detail else list(subdirs)
            out_files: Any = dict(here) if detail else list(here)
            name = t.name(d or "/")
            if topdown:
                yield name, dirs, out_files
            if maxdepth is None or depth < maxdepth:
                for sub in list(dirs):  # the caller may prune dirs in place (top-down)
                    yield from visit(f"{d}/{sub}", depth + 1)
            if not topdown:
                yield name, dirs, out_files

        yield from visit(base, 1)

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        """Inside one commit, simple patterns are matched by PFS in one call (``glob_file``);
        the rest by fsspec's glob over ``find``. Either way the names are ``repo@ref/path``."""
        stripped = self._strip_protocol(path)
        if maxdepth is None and not str(path).endswith("/") and has_magic(stripped):
            try:
                t = self._target(stripped, pattern=True)
            except ValueError:
                t = None
            if (t is not None and t.commit is not None and not has_magic(t.prefix)
                    and has_magic(t.path) and _SIMPLE_GLOB.fullmatch(t.path)):
                return self._server_glob(t, **kwargs)
        return super().glob(path, maxdepth=maxdepth, **kwargs)

    def _server_glob(self, t: _Target, detail: bool = False, withdirs: bool = True,
                     **kwargs: Any) -> Any:
        assert t.commit is not None
        try:
            with self._errors(self.unstrip_protocol(t.name(t.path))):
                found = self._svc.glob_file(t.commit, t.path)
        except FileNotFoundError:
            found = []  # like fsspec: a glob under a missing branch matches nothing
        out = {t.name(fi.path): self._entry(t, fi) for fi in found if withdirs or fi.type == "file"}
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def ukey(self, path: str) -> str:
        """The content hash: the same bytes give the same key, whichever commit holds them."""
        info = self.info(path)
        return str(info.get("hash") or super().ukey(path))

    def checksum(self, path: str) -> int:
        info = self.info(path)
        return int(info["hash"][:32], 16) if info.get("hash") else super().checksum(path)

    # -- reading --------------------------------------------------------------------------

    def _pinned(self, path: str) -> tuple[FileRef, dict[str, Any]]:
        """The file's ref in the commit it resolved to, so a moving branch cannot mix versions
        into one read, and its info."""
        t = self._commit_target(path)
        url = self._url(path)
        with self._errors(url):
            fi = self._svc.inspect_file(t.file)
        if fi.type != "file":
            raise IsADirectoryError(errno.EISDIR, "is a directory", url)
        assert t.commit is not None
        return FileRef(CommitRef(t.commit.repo, None, fi.commit), fi.path), self._entry(t, fi)

    def _read_range(self, src: FileRef, start: int, end: int | None, url: str) -> bytes:
        """Bytes [start, end) of a file, stopping the stream once they are in (``end`` None:
        to the end)."""
        if end is not None and end <= start:
            return b""
        parts: list[bytes] = []
        got = 0
        with self._errors(url):
            it = self._svc.read_file(src, start)
            try:
                for piece in it:
                    if end is not None and got + len(piece) >= end - start:
                        parts.append(piece[: end - start - got])
                        break
                    parts.append(piece)
                    got += len(piece)
            finally:
                close = getattr(it, "close", None)  # ends the download (remote) early
                if close is not None:
                    close()
        return b"".join(parts)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        src, info = self._pinned(path)
        size = info["size"]
        s = 0 if start is None else (max(0, size + start) if start < 0 else start)
        e = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
        if s >= e:
            return b""
        return self._read_range(src, s, e, self._url(path))

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, **kwargs: Any) -> TuskFile:
        block_size = block_size or self.block_size
        if mode == "rb":
            src, info = self._pinned(path)
            return TuskFile(self, path, mode, block_size, autocommit, cache_options=cache_options,
                            src=src, details=info, **kwargs)
        if mode not in ("wb", "ab", "xb"):
            raise ValueError(f"tusk: unsupported file mode {mode!r}")
        t = self._writable(path, check_repo=True)
        if mode == "xb" and self.exists(path):
            raise FileExistsError(errno.EEXIST, "already exists", self._url(path))
        return TuskFile(self, path, mode, block_size, autocommit, cache_options=cache_options,
                        target=t, **kwargs)

    # -- writing --------------------------------------------------------------------------

    def _writable(self, path: str, check_repo: bool = False, whole: bool = False) -> _Target:
        """The target of a write, refused early when it is not a branch or an open commit.
        ``whole``: the root of the commit is a valid target (a recursive delete)."""
        url = self._url(path)
        t = self._target(path)
        if t.commit is None or (t.path == "/" and not whole):
            raise ValueError(f"{url}: name a file to write: tusk://repo@branch/path")
        ref = t.commit
        if ref.ancestors or ref.index is not None:
            raise PermissionError(errno.EROFS, f"{t.prefix} names an older commit, which is"
                                  " read-only; write to a branch (repo@branch/path)", url)
        with self._errors(url):
            if ref.commit_id is not None:
                ci = self._svc.inspect_commit(ref)
                if ci.finished:
                    raise PermissionError(
                        errno.EROFS, f"commit {ci.repo}@{ci.id} is finished and read-only; write"
                        f" to its branch ({ci.repo}@{ci.branch or 'master'}/...) to make a new"
                        " commit", url)
            elif check_repo:  # fail before the caller produces the data, not at close
                self._svc.inspect_repo(ref.repo)
        return t

    def _land(self, ops: list[Op]) -> None:
        """Apply queued changes: one write session, i.e. one commit, per branch or commit."""
        groups: dict[CommitRef, list[Op]] = {}
        for op in ops:
            groups.setdefault(op.ref, []).append(op)
        for ref, group in groups.items():
            with self._errors(group[0].url), self._svc.modify(ref) as session:
                for op in group:
                    with self._errors(op.url):
                        op.apply(session)
        if groups:
            self._client.pfs._kick()  # embedded: start a controller if pipelines have work

    def _submit(self, op: Op) -> None:
        """Land a change now, or queue it in the open batch or transaction."""
        batch = getattr(self._local, "ops", None)
        if batch is not None:
            batch.append(op)
        elif self._intrans:
            self._txn_ops.append(op)
        else:
            self._land([op])

    @contextmanager
    def _batch(self) -> Iterator[None]:
        """Changes submitted inside land together at the end (unless an outer batch or a
        transaction collects them already); nothing lands if the block raises."""
        if getattr(self._local, "ops", None) is not None or self._intrans:
            yield
            return
        self._local.ops = []
        try:
            yield
            ops = self._local.ops
        finally:
            self._local.ops = None
        self._land(ops)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        if mode == "create" and self.exists(path):
            raise FileExistsError(errno.EEXIST, "already exists", self._url(path))
        t = self._writable(path)
        assert t.commit is not None
        data = bytes(value)
        self._submit(Op(t.commit, self._url(path),
                         lambda s: s.put_stream(t.path, io.BytesIO(data), False)))

    def pipe(self, path: Any, value: bytes | None = None, **kwargs: Any) -> None:
        with self._batch():  # a dict of files: one commit per branch
            super().pipe(path, value, **kwargs)

    def put_file(self, lpath: str, rpath: str, callback: Any = DEFAULT_CALLBACK,
                 mode: str = "overwrite", **kwargs: Any) -> None:
        if os.path.isdir(lpath):
            return  # PFS has no empty directories: they exist through their files
        if mode == "create" and self.exists(rpath):
            raise FileExistsError(errno.EEXIST, "already exists", self._url(rpath))
        t = self._writable(rpath)
        assert t.commit is not None
        size = os.path.getsize(lpath)
        callback.set_size(size)
        local = Path(lpath)
        self._submit(Op(t.commit, self._url(rpath), lambda s: s.put_path(t.path, local, False)))
        callback.relative_update(size)

    def put(self, lpath: Any, rpath: Any, recursive: bool = False, callback: Any = DEFAULT_CALLBACK,
            maxdepth: int | None = None, **kwargs: Any) -> None:
        with self._batch():  # a directory upload is one commit, as 'tusk put file -r'
            super().put(lpath, rpath, recursive=recursive, callback=callback, maxdepth=maxdepth,
                        **kwargs)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy by reference (no bytes move)."""
        t1 = self._commit_target(path1)
        with self._errors(self._url(path1)):
            fi = self._svc.inspect_file(t1.file)
        if fi.type != "file":
            return  # directories come along with their files (copy(recursive=True))
        assert t1.commit is not None
        src = FileRef(CommitRef(t1.commit.repo, None, fi.commit), fi.path)
        t2 = self._writable(path2)
        assert t2.commit is not None
        self._submit(Op(t2.commit, self._url(path2), lambda s: s.copy(src, t2.path, False)))

    def copy(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: int | None = None,
             on_error: str | None = None, **kwargs: Any) -> None:
        with self._batch():
            super().copy(path1, path2, recursive=recursive, maxdepth=maxdepth, on_error=on_error,
                         **kwargs)

    def mv(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: int | None = None,
           **kwargs: Any) -> None:
        with self._batch():  # copy + delete: one commit when both are on one branch
            super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete files (and, with ``recursive``, directories): one commit per branch."""
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        names: list[str] = []
        for p in paths:
            p = self._strip_protocol(p)
            if has_magic(p):
                found = self.glob(p)
                if not found:
                    raise FileNotFoundError(errno.ENOENT, "nothing matches", self._url(p))
                names.extend(found)
            else:
                names.append(p)
        done: list[str] = []
        with self._batch():
            for name in sorted(set(names)):
                if any(name.startswith(d + "/") for d in done):
                    continue  # inside a directory deleted already
                done.append(name)
                self._queue_delete(name, recursive)

    def _queue_delete(self, path: str, recursive: bool) -> None:
        t = self._writable(path, whole=recursive)
        assert t.commit is not None
        url = self._url(path)

        def delete(session: Any) -> None:
            try:
                session.delete(t.path, recursive)
            except InvalidArgument:  # the one refusal: a directory without recursive
                raise IsADirectoryError(errno.EISDIR, "is a directory; pass recursive=True",
                                        url) from None

        self._submit(Op(t.commit, url, delete))

    def rm_file(self, path: str) -> None:
        self.rm(path)

    def _rm(self, path: str) -> None:
        self.rm(path)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Nothing to do: PFS directories exist through the files in them."""

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Nothing to do: PFS directories exist through the files in them."""

    def rmdir(self, path: str) -> None:
        """Nothing to do: a directory disappears with its last file."""
