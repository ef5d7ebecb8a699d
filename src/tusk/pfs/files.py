"""Reading files of commits: inspect, list, walk, glob, read and diff; and opening a write session.

A read resolves its ref to one commit and reads that commit's tree (an open commit's view
includes its staged changes). Writes go through ``FileSession`` (``write_session.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

from tusk.errors import InvalidArgument, NotFound
from tusk.pfs import trees
from tusk.pfs.branches import Branches
from tusk.pfs.catalog import Catalog
from tusk.pfs.commit_rows import CommitRows
from tusk.pfs.globs import GlobError, compile_glob
from tusk.pfs.model import CommitInfo, FileDiff, FileInfo
from tusk.pfs.names import dir_prefix
from tusk.pfs.refs import CommitRef, FileRef
from tusk.pfs.write_session import FileSession
from tusk.storage.backend import Backend


class Files:
    """Files of one root: write sessions and reads (held by ``PfsService`` as ``files``)."""

    def __init__(self, b: Backend, catalog: Catalog, rows: CommitRows, branches: Branches) -> None:
        self.b = b
        self.catalog = catalog
        self.rows = rows
        self.branches = branches

    def modify(self, ref: CommitRef, description: str = "") -> FileSession:
        return FileSession(self, ref, description)

    def read_view(self, ref: CommitRef) -> tuple[CommitInfo, trees.Tree]:
        with self.b.db.read() as conn:
            row = self.rows.resolve_commit(conn, ref)
            return self.rows.commit_info(conn, row), self.rows.view(conn, row)

    def _file_info(self, e: trees.Entry, commit: str) -> FileInfo:
        return FileInfo(e.path, "file", e.size, e.hash.hex(), commit, e.datum, tuple(map(tuple, e.chunks)))

    def inspect_file(self, ref: FileRef) -> FileInfo:
        info, tree = self.read_view(ref.commit)
        return self._inspect(tree, ref, info.id)

    def _inspect(self, tree: trees.Tree, ref: FileRef, commit: str) -> FileInfo:
        if ref.path != "/":
            e = tree.get(ref.path)
            if e is not None:
                return self._file_info(e, commit)
        size, found = 0, ref.path == "/"
        for e in tree.scan_prefix(dir_prefix(ref.path)):
            size += e.size
            found = True
        if not found:
            raise NotFound(f"file {ref.path} not found in {ref.commit}")
        return FileInfo(ref.path, "dir", size, "", commit)

    def list_file(self, ref: FileRef) -> list[FileInfo]:
        """Direct children of a directory (or the file itself), with type and size."""
        info, tree = self.read_view(ref.commit)
        if ref.path != "/":
            e = tree.get(ref.path)
            if e is not None:
                return [self._file_info(e, info.id)]
        prefix = dir_prefix(ref.path)
        out: dict[str, list] = {}  # child path -> [type, size, entry]
        end = trees.prefix_end(prefix)
        for r in tree.ranges:
            if r.last < prefix or (end is not None and r.first >= end):
                continue
            a, b = r.first[len(prefix):], r.last[len(prefix):]
            if r.first.startswith(prefix) and r.last.startswith(prefix) and "/" in a and \
                    a.split("/", 1)[0] == b.split("/", 1)[0] and "/" in b:
                # The whole range lies inside one child directory: use its summary unopened.
                child = prefix + a.split("/", 1)[0]
                slot = out.setdefault(child, ["dir", 0, None])
                slot[1] += r.bytes
                continue
            for e in tree.range_entries(r):
                if not e.path.startswith(prefix):
                    continue
                rest = e.path[len(prefix):]
                name, sep, _ = rest.partition("/")
                child = prefix + name
                if sep:
                    slot = out.setdefault(child, ["dir", 0, None])
                    slot[1] += e.size
                else:
                    out[child] = ["file", e.size, e]
        if not out and ref.path != "/":
            raise NotFound(f"file {ref.path} not found in {ref.commit}")
        return [
            self._file_info(v[2], info.id) if v[0] == "file" else FileInfo(k, "dir", v[1], "", info.id)
            for k, v in sorted(out.items())
        ]

    def walk_file(self, ref: FileRef) -> Iterator[FileInfo]:
        """Every file at or below a path, in path order."""
        info, tree = self.read_view(ref.commit)
        if ref.path != "/":
            e = tree.get(ref.path)
            if e is not None:
                yield self._file_info(e, info.id)
                return
        found = False
        for e in tree.scan_prefix(dir_prefix(ref.path)):
            found = True
            yield self._file_info(e, info.id)
        if not found and ref.path != "/":
            raise NotFound(f"file {ref.path} not found in {ref.commit}")

    def glob_file(self, ref: CommitRef, pattern: str) -> list[FileInfo]:
        """Files and directories matching a glob pattern."""
        try:
            glob = compile_glob(pattern)
        except GlobError as e:
            raise InvalidArgument(str(e)) from None
        info, tree = self.read_view(ref)
        if glob.pattern == "/":
            return [FileInfo("/", "dir", tree.size, "", info.id)]
        lit = glob.literal_prefix
        scan_from = lit if lit.endswith("/") else lit.rpartition("/")[0] + "/"
        depth = glob.max_depth
        dirs: dict[str, int] = {}
        files: list[FileInfo] = []
        for e in tree.scan_prefix(scan_from):
            parts = e.path.split("/")
            for i in range(scan_from.count("/") + 1, len(parts)):
                if depth is not None and i - 1 > depth:
                    break
                d = "/".join(parts[:i])
                if d in dirs:
                    dirs[d] += e.size
                elif glob.matches(d):
                    dirs[d] = e.size
            if (depth is None or len(parts) - 1 <= depth) and glob.matches(e.path):
                files.append(self._file_info(e, info.id))
        out = files + [FileInfo(d, "dir", n, "", info.id) for d, n in dirs.items()]
        return sorted(out, key=lambda f: f.path)

    def read_file(self, ref: FileRef, offset: int = 0) -> Iterator[bytes]:
        """A file's bytes as a stream of chunks."""
        fi = self.inspect_file(ref)
        if fi.type != "file":
            raise InvalidArgument(f"{ref.path} is a directory; use -r to download it")
        return self.b.reader().iter_bytes(fi.chunks, offset)

    def diff_file(self, new: FileRef, old: FileRef | None = None) -> list[FileDiff]:
        """Added, removed and changed files between two refs (old defaults to the parent)."""
        with self.b.db.read() as conn:
            row = self.rows.resolve_commit(conn, new.commit)
            new_tree = self.rows.view(conn, row)
            if old is None:
                old_tree = self.rows.base_tree(conn, row)
                old_path = new.path
            else:
                old_tree = self.rows.view(conn, self.rows.resolve_commit(conn, old.commit))
                old_path = old.path
        if old_path != new.path:
            raise InvalidArgument("diff file compares the same path in two commits; give one path")
        prefix = "" if new.path == "/" else new.path
        out = []
        for a, b in trees.diff(old_tree, new_tree, prefix):
            if a is not None and b is not None:
                out.append(FileDiff(b.path, "changed", a.size, b.size))
            elif b is not None:
                out.append(FileDiff(b.path, "added", None, b.size))
            elif a is not None:
                out.append(FileDiff(a.path, "removed", a.size, None))
        if prefix:
            out = [d for d in out if d.path == prefix or d.path.startswith(prefix + "/")]
        return out
