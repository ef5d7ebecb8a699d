"""Write sessions: a batch of file changes (put, append, delete, copy) landing as one commit.

A write goes through a ``FileSession``: content is chunked into a pack as it arrives, the
operations are composed in a ``ChangeSet``, and ``close()`` lands everything in one metadata
transaction. Against a branch whose head is finished the session makes a one-off commit (built
straight onto the head's tree and swapped in by compare-and-set); against an open commit it
stages the changes there. Nothing is visible until that transaction commits, so an error or a
crash part-way leaves no partial state.
"""

from __future__ import annotations

import gc
import os
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Self

from sqlalchemy import select

from tusk.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from tusk.pfs import staging, trees
from tusk.pfs.commit_rows import FINISHED, OPEN, USER, new_id
from tusk.pfs.model import CommitInfo
from tusk.pfs.names import dir_prefix, normalize_path
from tusk.pfs.refs import CommitRef, FileRef
from tusk.storage import bulk
from tusk.storage import schema as s
from tusk.storage.content import PENDING_HASH, SMALL_FILE, FileContent, refs_hash

if TYPE_CHECKING:
    from tusk.pfs.files import Files

CAS_RETRIES = 20
# A put of at least this many files goes to worker processes (storage.bulk).
BULK_MIN_FILES = 2000
# A bulk put's units end after a destination whose CRC32 is UNIT_FILES-1 modulo UNIT_FILES:
# about every 1,024 files, at the same paths whatever else the put holds.
UNIT_FILES = 1024
# Whole units are sent to the workers in batches of at least this many files, so the queue's
# per-message cost is noise.
BATCH_FILES = 512


def check_writable(ref: CommitRef) -> None:
    """A write goes to a branch or an open commit, never to ``^N`` or ``.N`` of one."""
    if ref.ancestors or ref.index is not None:
        raise InvalidArgument(f"cannot write to {ref}: write to a branch or an open commit ID")


class FileSession:
    """One batch of file changes to a branch or an open commit; use as a context manager."""

    def __init__(self, svc: Files, ref: CommitRef, description: str = "") -> None:
        # Inside a transaction the façade has already pointed ``ref`` at the transaction's
        # commit (``Transactions.commit_ref_for_write``).
        check_writable(ref)
        self.svc = svc
        self.ref = ref
        self.description = description
        self.changes = staging.ChangeSet()
        self._base: trees.Tree | None = None
        self.commit: CommitInfo | None = None
        self._check_target(svc, ref)
        self._stack = ExitStack()
        self._stack.enter_context(svc.b.data_lock())
        self.writer = svc.b.writer()

    @staticmethod
    def _check_target(svc: Files, ref: CommitRef) -> None:
        with svc.b.db.read() as conn:  # fail fast on a missing repo or a finished commit ID
            repo = svc.catalog.repo_row(conn, ref.repo)
            if ref.commit_id is not None:
                row = svc.rows.resolve_commit(conn, ref)
                if row.state == FINISHED:
                    raise FailedPrecondition(
                        f"commit {ref.repo}@{row.commit_id} is finished and cannot change; write to"
                        " its branch to make a new commit"
                    )
            elif ref.branch is not None:
                br = svc.catalog.branch_row(conn, repo.id, ref.branch)
                if br is not None and svc.branches.upstream_ids(conn, br.id):
                    head = conn.execute(select(s.commits).where(s.commits.c.id == br.head_id)).one()
                    if head.state == FINISHED:
                        raise FailedPrecondition(
                            f"cannot write to {ref}: the branch has provenance, so its commits are"
                            " made by propagation"
                        )

    # -- writes -----------------------------------------------------------------------------

    def _add(self, path: str, content: FileContent, append: bool, datum: str = "default") -> None:
        self.changes.put(trees.Entry(path, content.size, content.hash, content.chunks, datum), append)

    def put_bytes(self, path: str, data: bytes, append: bool = False) -> None:
        path = normalize_path(path, allow_root=False)
        self._add(path, self.writer.write_bytes(data), append)

    def put_path(self, path: str, local: Path, append: bool = False) -> None:
        from tusk.pfs.sources import open_local, streams_only

        path = normalize_path(path, allow_root=False)
        if streams_only(local):  # a pipe or device: read as a stream, in bounded memory
            with open_local(local) as stream:
                self._add(path, self.writer.write_stream(stream), append)
            return
        self._add(path, self.writer.write_path(local), append)

    def put_stream(self, path: str, stream: BinaryIO, append: bool = False, progress=None) -> None:  # type: ignore[no-untyped-def]
        path = normalize_path(path, allow_root=False)
        self._add(path, self.writer.write_stream(stream, progress), append)

    def put_tar(self, stream: BinaryIO, dest_dir: str = "/", append: bool = False,
                progress=None) -> int:  # type: ignore[no-untyped-def]
        """Put the regular files of a (possibly gzipped) tar stream under ``dest_dir``, reading
        it once front to back; returns how many. Each member's name is its path below
        ``dest_dir``. This is ``--untar``, and how a remote client sends a directory."""
        from tusk.pfs.sources import iter_tar

        n = 0
        for path, member in iter_tar(stream, dest_dir):
            self.put_stream(path, member, append, progress)
            n += 1
        return n

    def put_many(self, items: Iterable[tuple[str, Path | str]], append: bool = False, progress=None,  # type: ignore[no-untyped-def]
                 normalized: bool = False) -> int:
        """Put many local files; returns how many.

        From ``BULK_MIN_FILES`` files on, worker processes read, hash and bundle them
        (``storage.bulk``); fewer go through a read-ahead thread pool, since forking would
        cost more than it saves. ``normalized``: destinations are already canonical (as
        ``sources.walk_local`` yields).
        """
        it = iter(items)
        head = list(islice(it, BULK_MIN_FILES))
        if len(head) >= BULK_MIN_FILES and bulk.supported(self.svc.b.db):
            workers = bulk.worker_count()
            if workers > 0:
                with gc_paused():
                    return self._put_bulk(chain(head, it), workers, append, progress, normalized)
        return self._put_threaded(chain(head, it), append, progress, normalized)

    def _put_bulk(self, items: Iterable[tuple[str, Path | str]], workers: int, append: bool,
                  progress, normalized: bool) -> int:  # type: ignore[no-untyped-def]
        crc, fspath = zlib.crc32, os.fspath
        n = 0
        pending: deque[list[str]] = deque()  # destinations of each submitted batch, in order
        dests: list[str] = []
        paths: list[str] = []
        ends: list[int] = []
        with bulk.BulkWriter(self.svc.b.objects, self.svc.b.db, workers) as pool:
            for dest, local in items:
                if not normalized:
                    dest = normalize_path(dest, allow_root=False)
                dests.append(dest)
                paths.append(local if type(local) is str else fspath(local))
                # A content-defined unit end (see storage.bulk): the cut points depend only on
                # the paths, so adding or changing one file moves no other unit's bundles.
                if crc(dest.encode()) % UNIT_FILES == UNIT_FILES - 1:
                    ends.append(len(paths))
                    if len(paths) >= BATCH_FILES:
                        pool.submit(paths, ends)
                        pending.append(dests)
                        dests, paths, ends = [], [], []
                        for batch in pool.ready():
                            n += self._land_batch(pending.popleft(), batch, append, progress)
            if paths:
                ends.append(len(paths))
                pool.submit(paths, ends)
                pending.append(dests)
            for batch in pool.drain():
                n += self._land_batch(pending.popleft(), batch, append, progress)
            index, packs = pool.seal()
        # From here the session owns the packs: ``close`` publishes and indexes them with the
        # commit, an error deletes them.
        self.writer.adopt(index, packs)
        return n

    def _land_batch(self, dests: list[str], batch: bulk.Batch, append: bool, progress) -> int:  # type: ignore[no-untyped-def]
        entry = trees.Entry
        if append or batch.others:
            put = self.changes.put
            for dest, (size, digest, chunks) in zip(dests, batch.metas(), strict=True):
                put(entry(dest, size, digest, chunks, "default"), append)
        else:  # the hot path: what ChangeSet.put does for a plain put, without the calls
            ops, op, kind = self.changes.ops, trees.Op, trees.PUT
            digests, bundles = batch.digests, batch.bundles
            at = 0
            for dest, size, b, off in zip(dests, batch.sizes, batch.bundle_ids, batch.offsets, strict=True):
                ops[dest] = op(kind, entry(dest, size, digests[at : at + 32], ((bundles[b], size, off),),
                                          "default"))
                at += 32
        if progress:  # a byte count: once per batch, not once per file
            progress(sum(batch.sizes))
        return len(dests)

    def _put_threaded(self, items: Iterable[tuple[str, Path | str]], append: bool, progress,  # type: ignore[no-untyped-def]
                      normalized: bool) -> int:
        """Reads run ahead on a thread pool so I/O overlaps hashing."""
        from concurrent.futures import ThreadPoolExecutor

        def load(batch: list[tuple[str, Path | str]]) -> list[tuple[str, Path | str, bytes | None]]:
            out = []
            for dest, local in batch:
                try:
                    fd = os.open(local, os.O_RDONLY)
                    try:
                        # Read exactly the file's size: asking for SMALL_FILE bytes would
                        # allocate (and page-fault) a 1 MiB buffer per file.
                        size = os.fstat(fd).st_size
                        data = _read_exact(fd, size) if size <= SMALL_FILE else None
                    finally:
                        os.close(fd)
                except OSError as e:
                    raise bulk.unreadable(os.fspath(local), e) from None
                out.append((dest, local, data))
            return out

        def batches() -> Iterator[list[tuple[str, Path | str]]]:
            batch: list[tuple[str, Path | str]] = []
            for dest, local in items:
                batch.append((dest if normalized else normalize_path(dest, allow_root=False), local))
                if len(batch) >= 64:
                    yield batch
                    batch = []
            if batch:
                yield batch

        n = 0
        window: deque = deque()
        with ThreadPoolExecutor(max_workers=2) as pool:
            # A bounded read-ahead window: overlap reads without holding every file in memory.
            for batch in batches():
                window.append(pool.submit(load, batch))
                if len(window) >= 8:
                    n += self._land(window.popleft().result(), append, progress)
            while window:
                n += self._land(window.popleft().result(), append, progress)
        return n

    def _land(self, loaded: list[tuple[str, Path | str, bytes | None]], append: bool, progress) -> int:  # type: ignore[no-untyped-def]
        writer, changes, entry = self.writer, self.changes, trees.Entry
        for dest, local, data in loaded:
            if data is not None:
                content = writer.write_bytes(data)
            else:
                try:
                    content = writer.write_path(local)
                except OSError as e:
                    raise bulk.unreadable(os.fspath(local), e) from None
            changes.put(entry(dest, content.size, content.hash, content.chunks, "default"), append)
            if progress:
                progress(content.size)
        return len(loaded)

    def delete(self, path: str, recursive: bool = False) -> None:
        path = normalize_path(path)
        is_file, is_dir = self._exists(path)
        if path == "/" or (is_dir and not is_file):
            if not recursive:
                raise InvalidArgument(f"{path} is a directory; use -r to delete it and everything in it")
            if not is_dir and path != "/":
                raise NotFound(f"{path} not found in {self.ref}")
            self.changes.delete_dir(dir_prefix(path))
            return
        if not is_file:
            raise NotFound(f"file {path} not found in {self.ref}")
        self.changes.delete(path)

    def copy(self, src: FileRef, dest: str, append: bool = False) -> int:
        """Copy a file or directory by reference (no bytes move); returns files copied."""
        dest = normalize_path(dest, allow_root=True)
        _row, tree = self.svc.read_view(src.commit)
        entry = tree.get(src.path) if src.path != "/" else None
        n = 0
        if entry is not None:
            target = dest if dest != "/" else "/" + src.path.rsplit("/", 1)[1]
            self.changes.put(entry._replace(path=target, datum="default"), append)
            return 1
        prefix = dir_prefix(src.path)
        for e in tree.scan_prefix(prefix):
            rel = e.path[len(prefix):]
            self.changes.put(e._replace(path=dir_prefix(dest) + rel, datum="default"), append)
            n += 1
        if n == 0:
            raise NotFound(f"{src.path} not found in {src.commit}")
        return n

    def _base_tree(self) -> trees.Tree:
        if self._base is None:
            with self.svc.b.db.read() as conn:
                repo = self.svc.catalog.repo_row(conn, self.ref.repo)
                if self.ref.commit_id is not None:
                    row = self.svc.rows.resolve_commit(conn, self.ref)
                else:
                    br = self.svc.catalog.branch_row(conn, repo.id, self.ref.branch or "master")
                    row = None if br is None else conn.execute(
                        select(s.commits).where(s.commits.c.id == br.head_id)).one()
                self._base = trees.Tree(self.svc.b.nodes, None) if row is None else self.svc.rows.view(conn, row)
        return self._base

    def _exists(self, path: str) -> tuple[bool, bool]:
        """(is a file, is a directory) in the base plus this session's changes."""
        op = self.changes.ops.get(path)
        deleted = any(path.startswith(p) for p in self.changes.deleted_dirs)
        base = self._base_tree()
        is_file = (op is not None and op.kind != trees.DELETE) or (
            op is None and not deleted and base.get(path) is not None
        )
        prefix = dir_prefix(path)
        is_dir = any(p.startswith(prefix) and o.kind != trees.DELETE for p, o in self.changes.ops.items())
        if not is_dir and not any(prefix.startswith(d) for d in self.changes.deleted_dirs):
            for e in base.scan_prefix(prefix):
                o = self.changes.ops.get(e.path)
                if o is None or o.kind != trees.DELETE:
                    is_dir = True
                    break
        return is_file, is_dir

    # -- landing ----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        try:
            if exc_type is None:
                self.close()
            else:
                self.writer.abort()
        finally:
            self._stack.close()

    def close(self) -> CommitInfo | None:
        """Land the changes; returns the commit they went into (None if there were none)."""
        with gc_paused():  # sorting and building trees make an object or two per changed path
            return self._land_changes()

    def _land_changes(self) -> CommitInfo | None:
        if not self.changes:
            self.writer.abort()
            return None
        chunk_rows, pack_rows = self.writer.seal()
        self._rehash_appends()
        svc, db = self.svc, self.svc.b.db
        ops = self.changes.sorted_ops()
        dels = sorted(self.changes.deleted_dirs)
        written = [p for p, op in ops if op.kind != trees.DELETE]
        for _attempt in range(CAS_RETRIES):
            with db.read() as conn:
                repo = svc.catalog.repo_row(conn, self.ref.repo)
                if self.ref.commit_id is not None:
                    target = svc.rows.resolve_commit(conn, self.ref)
                    branch = None
                else:
                    branch = svc.catalog.branch_row(conn, repo.id, self.ref.branch or "master")
                    target = None if branch is None else conn.execute(
                        select(s.commits).where(s.commits.c.id == branch.head_id)).one()
                if target is not None and target.state == OPEN:
                    return self._stage_into(target, chunk_rows, pack_rows)
                if target is None:
                    base = trees.Tree(svc.b.nodes, None)
                elif target.error:  # an errored commit's content never carries forward
                    base = svc.rows.base_tree(conn, target)
                else:
                    base = svc.rows.view(conn, target)
            res = _new_tree(svc.b.nodes, base, ops, dels)
            svc.rows.check_collisions(res, base, written)
            now = time.time()
            with db.tx() as conn:
                if branch is not None:
                    current = conn.execute(
                        select(s.branches.c.head_id).where(s.branches.c.id == branch.id)).scalar()
                    if current != branch.head_id:
                        continue  # lost the race: rebuild on the new head
                elif svc.catalog.branch_row(conn, repo.id, self.ref.branch or "master") is not None:
                    continue
                _index(db, conn, chunk_rows, pack_rows)
                db.insert_ignore(conn, s.tree_nodes, [{"hash": h, "data": d} for h, d in res.nodes.items()])
                cid = new_id()
                pk = svc.rows.new_commit(
                    conn, repo.id, self.ref.branch or "master", None if target is None else target.id,
                    USER, cid, now, finished=True, description=self.description,
                    tree=res.root, size=res.size, count=res.count,
                )
                if res.root is None:  # _new_commit copies the parent's tree when given None
                    conn.execute(s.commits.update().where(s.commits.c.id == pk).values(
                        tree=None, size_bytes=0, file_count=0))
                if branch is None:
                    conn.execute(s.branches.insert().values(
                        repo_id=repo.id, name=self.ref.branch or "master", head_id=pk,
                        created_at=now, updated_at=now))
                else:
                    svc.rows.move_head(conn, branch.id, branch.head_id, pk, now)
                    svc.branches.propagate(conn, branch.id, cid, now)
                self.commit = svc.rows.commit_info(conn, conn.execute(
                    select(s.commits).where(s.commits.c.id == pk)).one())
                return self.commit
        raise Conflict(f"{self.ref} kept moving while this change was written; run it again")

    def _rehash_appends(self) -> None:
        """Appended files composed before their bundles were sealed get their real hash now."""
        if not self.changes.appended:  # only appends can leave a pending hash
            return
        for path, op in list(self.changes.ops.items()):
            if op.entry is not None and op.entry.hash == PENDING_HASH:
                entry = op.entry._replace(hash=refs_hash(op.entry.chunks))
                self.changes.ops[path] = op._replace(entry=entry)

    def _stage_into(self, target, chunk_rows: list[dict], pack_rows: list[dict]) -> CommitInfo:  # type: ignore[no-untyped-def]
        db = self.svc.b.db
        with db.tx() as conn:
            row = conn.execute(select(s.commits).where(s.commits.c.id == target.id)).first()
            if row is None or row.state != OPEN:
                raise Conflict(f"commit {row.commit_id if row else target.commit_id} was finished or"
                               " deleted while this change was written; run it again")
            _index(db, conn, chunk_rows, pack_rows)
            staging.stage(conn, row.id, self.changes)
            self.commit = self.svc.rows.commit_info(conn, row)
            return self.commit


def _new_tree(nodes: trees.NodeStore, base: trees.Tree, ops: list[tuple[str, trees.Op]],
              dels: list[str]) -> trees.ApplyResult:
    """``trees.apply(nodes, base.root, ops, dels)``, taking the short way onto an empty tree.

    With no old entries, apply's merge only turns each op into its entry (an append onto
    nothing is its own entry) and the deletions have nothing to remove, so the result is
    ``trees.build`` of those entries: the same ranges and root, without a pass over every op.
    A first bulk put into a repo is exactly this case.
    """
    if base.root is None:
        return trees.build([op.entry for _, op in ops if op.kind != trees.DELETE and op.entry is not None])
    return trees.apply(nodes, base.root, ops, dels)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: for code that makes ~10^5 long-lived entries.

    Each such allocation counts towards a collection, and each collection walks every entry
    made so far; at 100,000 files that was a third of the parent's time in a bulk put. The
    entries form no cycles, so nothing is lost by collecting once afterwards instead.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_exact(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    while len(data) < size:  # short reads happen on some filesystems
        more = os.read(fd, size - len(data))
        if not more:
            break
        data += more
    return data


def _index(db, conn, chunk_rows: list[dict], pack_rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    if pack_rows:
        conn.execute(s.packs.insert(), pack_rows)
    db.insert_ignore(conn, s.chunks, chunk_rows)
