"""Bulk writes: many local files read, hashed and bundled by forked worker processes.

A put of tens of thousands of small files is bound by per-file Python work (open, read,
close, hash, bundle), and threads share one GIL. ``BulkWriter`` forks a few workers; each runs
its own ``ContentWriter`` that bundles the files it is given into its *own* pack in the object
store's scratch directory, dedups against the committed chunk index through its own read-only
connection, and sends back only per-file metadata (size, hash, bundle and offset, as columns).
No file bytes cross a process boundary.

Work is handed out in *units*: runs of consecutive files whose ends the caller picks by content
(a hash of the destination path), never "every N files". A unit's last bundle ends with the unit,
so bundle boundaries stay content-defined: re-putting the same files gives the same bundles
(deduplicated), and one added or changed file re-stores only the bundles of its unit that
follow it, exactly as in a single-process write. Which worker takes a unit does not matter.

Durability is the single-writer protocol, split across processes: a worker fsyncs its packs
when sealed but never publishes them; the session's writer ``adopt``s them, renames them into
the store and inserts their index rows in the commit's transaction. On any error (an
unreadable file, a worker that died, an interrupt) the workers are stopped and their scratch
packs deleted, so nothing is published and nothing committed.

Workers die with their parent (``die_with_parent``): a killed ``tusk put file`` leaves no
worker behind, and so nothing holding the data lock or writing into scratch. Their scratch files
and pack IDs name the *parent* as owner (``storage.scratch``), since it publishes them: GC
keeps them while the parent lives and reclaims them once it is gone.
"""

from __future__ import annotations

import array
import ctypes
import errno
import gc
import multiprocessing
import os
import pickle
import queue
import signal
import sqlite3
import stat
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, Self

from tusk.errors import NotFound, TuskError
from tusk.storage.content import BUNDLE_FILE, SMALL_FILE, ContentWriter
from tusk.storage.db import Database
from tusk.storage.objects import ObjectStore
from tusk.storage.scratch import owner_token

# (size, content hash, chunk refs) of one file.
FileMeta = tuple[int, bytes, tuple]


class Batch(NamedTuple):
    """What a worker wrote for one submitted batch, in columns.

    Columns rather than a tuple per file: unpickling 100,000 small tuples, lists and ints cost
    the collecting process more than building its entries from arrays does. File ``i`` of the
    batch is ``sizes[i]`` bytes with hash ``digests[32*i : 32*i+32]``, stored at
    ``offsets[i]`` in bundle ``bundles[bundle_ids[i]]``, unless it is in ``others`` (files
    that are not bundled: empty, medium and large ones), which gives its ``FileMeta``.
    """

    sizes: array.array
    digests: bytes
    bundle_ids: array.array
    offsets: array.array
    bundles: list[bytes]
    others: dict[int, FileMeta]

    def metas(self) -> Iterator[FileMeta]:
        """Each file's ``FileMeta`` in order (the plain, slower way to read a batch)."""
        digests, bundles, others = self.digests, self.bundles, self.others
        for i, (size, b, off) in enumerate(zip(self.sizes, self.bundle_ids, self.offsets, strict=True)):
            meta = others.get(i)
            yield meta if meta is not None else (
                size, digests[32 * i : 32 * i + 32], ((bundles[b], size, off),))


# A worker's packs start going to disk every this many bytes (in the background), so sealing
# them at the end of the put has little left to write: a bulk put's packs are ~100 MB for
# 100,000 files, and fsyncing that at the end cost ~0.17 s on the reference machine.
WORKER_FLUSH_EVERY = 8 << 20

# How long the collecting process waits on the result queue before checking its workers are
# still alive (a worker killed by the OOM killer sends nothing).
POLL_SECONDS = 0.5


def worker_count() -> int:
    """Workers for a bulk put: one per CPU we may run on, at most two, 0 to disable.

    Two measured best on the 2-vCPU reference machine (the parent process still walks the
    source tree and builds the tree entries). ``TUSK_PUT_WORKERS`` overrides it.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return 0  # workers must inherit the session: spawning would re-import all of tusk
    env = os.environ.get("TUSK_PUT_WORKERS")
    if env is not None and env.strip().isdigit():
        return int(env)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return 0 if cpus < 2 else 2


def supported(db: Database) -> bool:
    """Whether a worker can open its own connection to ``db`` (not an in-memory SQLite)."""
    if not db.is_sqlite:
        return True
    path = _sqlite_path(db.url)
    return path is not None and path != ":memory:"


def unreadable(local: str, err: OSError) -> TuskError:
    """The one-line error for a source file that cannot be read (same in every put path)."""
    if isinstance(err, FileNotFoundError):
        return NotFound(f"{local}: no such file (was it removed while putting?)")
    return TuskError(f"{local}: cannot read ({err.strerror or err})")


def _sqlite_path(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    return make_url(url).database or None


class ChunkProbe:
    """A worker's own read-only view of the chunk index: whether a chunk is stored already."""

    def __init__(self, url: str) -> None:
        self._sqlite: sqlite3.Connection | None = None
        self._engine: Any = None
        if url.startswith("sqlite"):
            path = _sqlite_path(url)
            assert path is not None
            # Never the parent's connection: SQLite connections must not cross a fork.
            uri = f"file:{urllib.parse.quote(path)}?mode=ro"
            self._sqlite = sqlite3.connect(uri, uri=True, isolation_level=None)
            self._sqlite.execute("PRAGMA busy_timeout=60000")
        else:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            self._engine = create_engine(url, poolclass=NullPool)
            self._conn = self._engine.connect()

    def __call__(self, digest: bytes) -> bool:
        if self._sqlite is not None:
            row = self._sqlite.execute("SELECT 1 FROM chunks WHERE hash = ? LIMIT 1", (digest,))
            return row.fetchone() is not None
        from sqlalchemy import text

        res = self._conn.execute(text("SELECT 1 FROM chunks WHERE hash = :h LIMIT 1"), {"h": digest})
        found = res.first() is not None
        self._conn.rollback()  # no long-lived snapshot: see chunks committed meanwhile
        return found

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._engine is not None:
            self._conn.close()
            self._engine.dispose()


class BulkWriter:
    """A pool of forked writer processes for one bulk put; use as a context manager.

    ``submit`` a batch of whole units, read their results back in submission order with
    ``ready`` (what has arrived) or ``drain`` (everything), then ``seal`` and hand what it
    returns to the session's ``ContentWriter.adopt``. Leaving the ``with`` block without
    sealing (an exception) stops the workers and deletes their packs.
    """

    def __init__(self, store: ObjectStore, db: Database, workers: int) -> None:
        ctx = multiprocessing.get_context("fork")  # children inherit imports: ~ms, not ~0.5 s
        self.store = store
        self._owner = owner_token()
        self._prefix = f"{self._owner}-bulk-{uuid.uuid4().hex[:12]}"
        self._tasks: Any = ctx.Queue()
        self._results: Any = ctx.Queue()
        self._submitted = 0
        self._next = 0
        self._arrived: dict[int, Batch] = {}
        self._sealed = False
        self._procs = [
            ctx.Process(
                target=_worker_main,
                args=(self._tasks, self._results, store, db.url, self._prefix, os.getpid(),
                      self._owner),
                name=f"tusk-put-{i}",
                daemon=True,
            )
            for i in range(workers)
        ]
        try:
            for p in self._procs:
                p.start()
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if exc_type is not None or not self._sealed:
            self.abort()

    @property
    def outstanding(self) -> int:
        """Batches submitted whose results have not been read yet."""
        return self._submitted - self._next

    def submit(self, paths: list[str], unit_ends: list[int]) -> None:
        """Queue files ``paths`` (local paths), cut into units ending before each ``unit_ends``."""
        self._tasks.put((self._submitted, paths, unit_ends))
        self._submitted += 1

    def ready(self) -> Iterator[Batch]:
        """Results that have arrived, in submission order, without waiting."""
        while True:
            try:
                self._receive(self._results.get_nowait())
            except queue.Empty:
                break
        yield from self._in_order()

    def drain(self) -> Iterator[Batch]:
        """Every remaining result, in submission order, waiting as needed."""
        while self._next < self._submitted:
            yield from self._in_order()
            if self._next < self._submitted:
                self._receive(self._wait())

    def seal(self) -> tuple[dict[bytes, tuple[str, int, int]], list[tuple[str, Path, int]]]:
        """Have every worker seal its packs (fsync); the merged index and the sealed packs."""
        if self.outstanding:
            raise RuntimeError("seal() before every submitted batch was read back")
        for _ in self._procs:
            self._tasks.put(None)
        index: dict[bytes, tuple[str, int, int]] = {}
        packs: list[tuple[str, Path, int]] = []
        for _ in self._procs:
            kind, *body = self._wait()
            if kind != "sealed":
                raise RuntimeError(f"bulk put worker sent {kind} while sealing")
            part, sealed = body
            for digest, where in part.items():
                index.setdefault(digest, where)
            packs.extend(sealed)
        for p in self._procs:
            p.join()
        self._sealed = True
        self._close_queues()
        return index, packs

    def abort(self) -> None:
        """Stop the workers and delete every pack they wrote (sealed or not)."""
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join(timeout=10)
        self._close_queues()
        scratch = self.store.scratch_dir()
        for f in scratch.glob(f"{self._prefix}-*"):
            f.unlink(missing_ok=True)

    # -- internals ----------------------------------------------------------------------------

    def _close_queues(self) -> None:
        for q in (self._tasks, self._results):
            q.close()
            q.cancel_join_thread()  # never block exit on a queue a killed worker left full

    def _receive(self, msg: tuple) -> None:
        kind = msg[0]
        if kind == "done":
            self._arrived[msg[1]] = msg[2]
        elif kind == "error":
            raise msg[1]
        else:
            raise RuntimeError(f"bulk put worker sent {kind} unasked")

    def _in_order(self) -> Iterator[Batch]:
        while self._next in self._arrived:
            yield self._arrived.pop(self._next)
            self._next += 1

    def _wait(self) -> tuple:
        """The next message from any worker; a worker that died without a word is an error."""
        while True:
            try:
                msg = self._results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                for p in self._procs:
                    if p.exitcode not in (None, 0):
                        raise TuskError(
                            f"a put worker process died (exit code {p.exitcode}); nothing was committed"
                        ) from None
                continue
            if msg[0] == "error":
                raise msg[1]
            return msg


# -- the worker side ------------------------------------------------------------------------------


PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux), and exit now if the
    parent is already gone (it may have died before we asked). Elsewhere the worker's own
    polling of its parent (``_worker_main``) is the fallback."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(0)


def _worker_main(tasks: Any, results: Any, store: ObjectStore, db_url: str, prefix: str,
                 parent: int, owner: str) -> None:
    die_with_parent(parent)
    # Ctrl-C goes to the whole process group; the parent decides, and stops us if it must.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A short-lived process that makes few cycles: the collector would only walk (and so copy,
    # page by page) the parent's objects we inherited.
    gc.disable()
    probe: ChunkProbe | None = None
    writer: ContentWriter | None = None
    try:
        probe = ChunkProbe(db_url)
        writer = ContentWriter(store, None, scratch_prefix=f"{prefix}-{uuid.uuid4().hex[:8]}",
                               owner=owner, known=probe, defer_publish=True, threaded_hash=False,
                               flush_every=WORKER_FLUSH_EVERY)
        while True:
            try:
                task = tasks.get(timeout=1)
            except queue.Empty:
                if os.getppid() != parent:  # orphaned (the parent was killed): stop quietly
                    writer.abort()
                    return
                continue
            if task is None:
                results.put(("sealed", *writer.detach()))
                return
            seq, paths, ends = task
            results.put(("done", seq, write_units(writer, paths, ends)))
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
        if writer is not None:
            writer.abort()
        results.put(("error", _portable(e)))
    finally:
        if probe is not None:
            probe.close()


def _portable(e: BaseException) -> BaseException:
    """``e`` if it survives pickling as itself, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(e).__name__}: {e}")


def write_units(writer: ContentWriter, paths: list[str], ends: list[int]) -> Batch:
    """Write local files into ``writer``, closing its bundle at each unit end.

    Files are opened relative to their directory's descriptor: sources come sorted, so most
    share the previous file's directory, and the kernel then resolves one name, not a path.
    """
    n = len(paths)
    sizes = array.array("q", bytes(8 * n))
    digests = bytearray(32 * n)
    slots: list[list | None] = [None] * n
    others: dict[int, FileMeta] = {}
    add_small = writer.add_small
    open_, lseek, pread, close = os.open, os.lseek, os.pread, os.close
    # O_NOATIME: reading a file to store it should not dirty its inode (the first read of a
    # freshly written file otherwise updates its atime: ~1 us a file). Only the owner may ask;
    # for anyone else the kernel refuses it and we drop it for the rest of the batch.
    noatime = getattr(os, "O_NOATIME", 0)
    flags = os.O_RDONLY | os.O_CLOEXEC | noatime
    cur_dir: str | None = None
    dir_fd = -1
    start = 0
    try:
        for end in ends:
            for i in range(start, end):
                local = paths[i]
                parent, sep, name = local.rpartition("/")
                if parent != cur_dir:
                    if dir_fd >= 0:
                        close(dir_fd)
                        dir_fd = -1
                    cur_dir = parent
                    try:
                        dir_fd = open_(parent or ("/" if sep else "."), os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY)
                    except OSError as e:
                        raise unreadable(local, e) from None
                # Only the reads are in the try: an error writing the pack is not the source's.
                try:
                    try:
                        fd = open_(name, flags, dir_fd=dir_fd)
                    except PermissionError:
                        if not flags & noatime:
                            raise
                        flags &= ~noatime
                        fd = open_(name, flags, dir_fd=dir_fd)
                    try:
                        # The size from the end offset: an int, where fstat builds a whole
                        # stat_result. Reads are positional, so the offset does not matter, and
                        # into new bytes: cheaper here than readv into the bundle buffer.
                        size = lseek(fd, 0, os.SEEK_END)
                        if size < BUNDLE_FILE:
                            data = pread(fd, size, 0)  # a directory fails here: EISDIR
                            if len(data) < size:
                                data = _read_rest(fd, data, size)
                        else:
                            size = _regular_size(fd)  # the rare path: check it is a file
                            data = _read_rest(fd, b"", size) if size <= SMALL_FILE else None
                    finally:
                        close(fd)
                except OSError as e:
                    raise unreadable(local, e) from None
                if size < BUNDLE_FILE and data:
                    digest, slot = add_small(data)
                    sizes[i] = len(data)
                    digests[32 * i : 32 * i + 32] = digest
                    slots[i] = slot  # completed when its bundle closes
                else:
                    fc = writer.write_path(local) if data is None else writer.write_bytes(data)
                    others[i] = (fc.size, fc.hash, fc.chunks)
            writer.end_unit()
            start = end
    finally:
        if dir_fd >= 0:
            close(dir_fd)
    # Every bundle is closed (units end with the batch), so every slot has its digest now.
    ids: dict[bytes, int] = {}
    bundle_ids = array.array("I", bytes(4 * n))
    offsets = array.array("q", bytes(8 * n))
    for i, slot in enumerate(slots):
        if slot is not None:
            bundle_ids[i] = ids.setdefault(slot[0], len(ids))
            offsets[i] = slot[2]
    return Batch(sizes, bytes(digests), bundle_ids, offsets, list(ids), others)



def _read_rest(fd: int, data: bytes, size: int) -> bytes:
    """``data`` (the file's first bytes) plus the rest up to ``size``, or to an earlier end."""
    while len(data) < size:  # short reads happen on some filesystems
        more = os.pread(fd, size - len(data), len(data))
        if not more:
            break
        data += more
    return data


def _regular_size(fd: int) -> int:
    """The size of the regular file open at ``fd`` (``lseek`` is meaningless on others)."""
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    return st.st_size
