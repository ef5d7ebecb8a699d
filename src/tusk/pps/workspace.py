"""A datum's files on the host: materialising inputs and harvesting ``/pfs/out``.

Inputs come from a content cache under the root (``tusk.storage.file_cache``: one file per
content hash, written once), hard-linked into the datum's scratch directory when the runtime
shows them read-only (``Capabilities.links_inputs``, the sandbox), copied otherwise (the process
runtime's code could write through a link into the cache).

Harvesting walks ``out`` without following links. A symlink is resolved as the user code saw
it: to another output file (stored again under the link's path), to an input file (recorded as
a metadata-only copy of that input, as Pachyderm does), or refused. Nothing is ever read through
a link on the host, so output cannot smuggle in host files.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import threading
from pathlib import Path

from tusk.errors import InvalidArgument
from tusk.pfs.names import normalize_path
from tusk.pfs.trees import Entry
from tusk.storage.content import ContentWriter
from tusk.storage.file_cache import ContentCache
from tusk.workers.base import Workspace


class OutputError(Exception):
    """The datum's output is unacceptable (bad name, escaping symlink, special file)."""


def materialize(ws: Workspace, name: str, entries: list[Entry], cache: ContentCache, link: bool,
                empty_files: bool = False) -> None:
    """Place input files at ``ws.pfs/<name>/<path>``."""
    base = ws.pfs / name
    base.mkdir(parents=True, exist_ok=True)
    made: set[str] = set()
    for e in entries:
        target = base / e.path.lstrip("/")
        parent = str(target.parent)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        if empty_files:
            open(target, "wb").close()
            continue
        src = cache.path_for(e)
        if link:
            try:
                os.link(src, target)
                continue
            except OSError:
                pass  # another filesystem: copy instead
        shutil.copyfile(src, target)


def reset(ws: Workspace, tmp: bool = True) -> None:
    """Empty a datum workspace for reuse, keeping its skeleton directories.

    ``tmp=False`` leaves ``tmp`` alone: a batching process lives across datums and may keep
    files there.

    Emptying beats deleting and recreating: on ext4 without a journal, creating directories
    where many were just deleted is slow (see limits.md), and a datum's skeleton
    (``pfs``, ``pfs/out``, ``pfs/<input>``, ``tmp``) is the same from one datum to the next.
    """
    if not ws.root.exists():
        ws.out.mkdir(parents=True)
        ws.tmp.mkdir(parents=True)
        return
    for top in (ws.pfs, ws.tmp) if tmp else (ws.pfs,):
        if not top.exists():
            top.mkdir(parents=True)
            continue
        with os.scandir(top) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    _empty_dir(e.path)  # keep /pfs/<input> and /pfs/out themselves
                else:
                    os.unlink(e.path)
    ws.out.mkdir(exist_ok=True)


def _empty_dir(path: str) -> None:
    with os.scandir(path) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                # User code may leave read-only directories behind; make them removable.
                os.chmod(e.path, 0o755)
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)


def harvest(ws: Workspace, datum_id: str, writer: ContentWriter, lock: threading.Lock,
            inputs: dict[str, dict[str, Entry]]) -> list[Entry]:
    """The files user code left in ``/pfs/out``, stored and tagged with the datum ID.

    ``inputs`` maps input name -> path -> entry, to resolve links into inputs.
    """
    h = _Harvester(ws, datum_id, writer, lock, inputs)
    h.tree("/pfs/out", "", 0)
    return h.found


MAX_LINKS = 40  # like the kernel's limit on symlinks followed while resolving one path
MAX_DIR_LINKS = 8  # directory links expanded inside one another


class _Harvester:
    def __init__(self, ws: Workspace, datum_id: str, writer: ContentWriter, lock: threading.Lock,
                 inputs: dict[str, dict[str, Entry]]) -> None:
        self.ws = ws
        self.datum_id = datum_id
        self.writer = writer
        self.lock = lock
        self.inputs = inputs
        self.found: list[Entry] = []

    def local(self, seen: str) -> str:
        """The host path of a symlink-free ``/pfs/out/...`` path of the user's view."""
        return str(self.ws.out) + seen[len("/pfs/out"):]

    def tree(self, seen_dir: str, dest: str, depth: int) -> None:
        """Store everything under the (symlink-free) output directory ``seen_dir`` at ``dest``."""
        with os.scandir(self.local(seen_dir)) as it:
            names = sorted(e.name for e in it)
        for name in names:
            seen = f"{seen_dir}/{name}"
            rel = f"{dest}/{name}"
            try:
                path = normalize_path(rel, allow_root=False)
            except InvalidArgument as e:
                raise OutputError(f"output /pfs/out{rel}: {e.message}") from None
            local = self.local(seen)
            if os.path.islink(local):
                self.link(local, seen, path, depth)
            elif os.path.isdir(local):
                self.tree(seen, path, depth)
            elif os.path.isfile(local):
                self.file(local, path)
            else:
                raise OutputError(f"output {path} is not a regular file; write files only")

    def file(self, local: str, path: str) -> None:
        with self.lock:
            content = self.writer.write_path(Path(local))
        self.found.append(Entry(path, content.size, content.hash, content.chunks, self.datum_id))

    def link(self, local: str, seen_link: str, path: str, depth: int) -> None:
        """Store a symlink as what it points to in the user's view: an output file or
        directory, or an input file or directory (a metadata-only copy, as Pachyderm makes);
        anything else refuses the datum."""
        target = os.readlink(local)
        seen = _resolve_view(self.ws, _seen_by_user(self.ws, target, posixpath.dirname(seen_link)))
        if seen == "/pfs/out" or seen.startswith("/pfs/out/"):
            real = self.local(seen)  # no symlink left anywhere on this path
            if os.path.isfile(real):
                self.file(real, path)
            elif os.path.isdir(real):
                if seen_link == seen or seen_link.startswith(seen + "/"):
                    raise OutputError(f"output {path} is a symlink to {target}, a directory that"
                                      " contains it")
                if depth >= MAX_DIR_LINKS:
                    raise OutputError(f"output {path}: too many nested directory links")
                self.tree(seen, path, depth + 1)
            else:
                raise OutputError(f"output {path} is a symlink to {target}, which does not exist")
            return
        parts = seen.split("/")
        if len(parts) >= 3 and parts[1] == "pfs" and parts[2] in self.inputs:
            files = self.inputs[parts[2]]
            inner = "/" + "/".join(parts[3:]) if len(parts) > 3 else "/"
            entry = files.get(inner)
            if entry is not None:
                self.found.append(entry._replace(path=path, datum=self.datum_id))
                return
            prefix = inner.rstrip("/") + "/"
            under = sorted(p for p in files if p.startswith(prefix))
            if under:  # an input directory: every file beneath it
                for p in under:
                    self.found.append(files[p]._replace(path=path + p[len(prefix) - 1:],
                                                        datum=self.datum_id))
                return
        raise OutputError(
            f"output {path} is a symlink to {target}, outside /pfs/out and the datum's input files;"
            " write a regular file instead"
        )


def _seen_by_user(ws: Workspace, target: str, link_dir: str) -> str:
    """A link target as the user code saw it: an absolute, normalised path in its view."""
    seen = posixpath.normpath(posixpath.join(link_dir, target))
    scratch = str(ws.pfs)
    if seen == scratch or seen.startswith(scratch + "/"):  # a runtime without a real /pfs rewrote it
        seen = "/pfs" + seen[len(scratch):]
    return seen


def _resolve_view(ws: Workspace, path: str) -> str:
    """Resolve ``path`` (in the user code's view) to a path with no symlink in it.

    Only links inside ``/pfs/out`` are read (with ``readlink``, never followed by the host), and
    each is interpreted in the user's view, so a link to a directory outside the output (say
    ``/pfs/out/d -> /etc``) can never make a later path (``/pfs/out/d/passwd``) reach the host.
    Anything outside ``/pfs/out`` is returned as is: the caller only accepts input files there.
    """
    parts = [p for p in path.split("/") if p]
    done = ""
    hops = 0
    while parts:
        name = parts.pop(0)
        cur = f"{done}/{name}"
        if cur.startswith("/pfs/out/"):
            local = str(ws.out) + cur[len("/pfs/out"):]
            if os.path.islink(local):
                hops += 1
                if hops > MAX_LINKS:
                    raise OutputError(f"output {path}: too many levels of symbolic links")
                target = _seen_by_user(ws, os.readlink(local), done or "/")
                parts = [p for p in target.split("/") if p] + parts
                done = ""
                continue
        done = cur
    return done or "/"
