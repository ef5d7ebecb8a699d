"""File content as deduplicated chunks in pack files.

A file's bytes become chunks named by their blake3 hash and stored once:

* large files are cut by FastCDC (content-defined, so an edit moves few boundaries);
* medium files are one chunk;
* small files are *bundled*: consecutive small files of a write share one chunk (a bundle)
  and each refers to its slice of it, as Pachyderm batches small files. Bundle boundaries are
  content-defined on the files' hashes, so re-putting the same files yields the same bundles
  (deduplicated) and one changed file re-stores only its bundle. 100,000 small files cost a few
  hundred index rows, not 100,000.

A chunk reference is ``(digest, length, offset)``: ``length`` bytes starting ``offset`` bytes into
the chunk. Chunks are appended to *pack* objects rather than stored one object each; the
``chunks`` table maps a chunk hash to (pack, offset, length).

Write protocol (crash-safe): a ``ContentWriter`` appends to a temp file, fsyncs it and renames
it into the object store when the pack is sealed; the index rows it returns are inserted by the
caller in the *same* metadata transaction that records the commit. A crash before that
transaction leaves only an unreferenced pack, which garbage collection removes.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import blake3
from pyfastcdc import FastCDC
from sqlalchemy import select

from tusk.errors import NotFound
from tusk.storage import schema
from tusk.storage.db import Database
from tusk.storage.objects import ObjectStore
from tusk.storage.read_ahead import ReadAhead
from tusk.storage.scratch import new_pack_id, owner_token
from tusk.storage.write_behind import WriteBehind

# Files up to this size are one chunk: cutting them buys no dedup worth its cost.
SMALL_FILE = 1 << 20
# Files below this size are bundled with their neighbours into shared chunks.
BUNDLE_FILE = 256 << 10
BUNDLE_MAX = 4 << 20
BUNDLE_AVG_FILES = 256
CDC_AVG = 1 << 20  # pyfastcdc: min = avg/4, max = avg*4
PACK_LIMIT = 256 << 20
# Full packs sealing at once. fsyncs of several files run in parallel on this disk where one
# file's fsync is one stream of writeback (docs/benchmarks.md).
SEAL_THREADS = 4
LOOKUP_BATCH = 500
READ_AHEAD_MIN = 32 << 20  # a get reads ahead (read_ahead) only for files at least this big

EMPTY_HASH = blake3.blake3(b"").digest()

ChunkRef = tuple  # (blake3 digest, length, offset into the chunk)


@dataclass(frozen=True, slots=True)
class FileContent:
    """What a write produced: the chunk list and the derived whole-file identity."""

    size: int
    hash: bytes
    chunks: tuple[ChunkRef, ...]


def content_hash(chunks: Iterable[ChunkRef]) -> bytes:
    """The content hash of a file made of whole chunks: blake3 over the chunk digests.

    Cheap (never re-reads the bytes) and deterministic, because chunking is. Small bundled
    files hash their bytes directly; appended files hash their chunk slices (see ``refs_hash``).
    """
    refs = list(chunks)
    if not refs:
        return EMPTY_HASH
    h = blake3.blake3()
    for ref in refs:
        h.update(ref[0])
    return h.digest()


# Stands in for the hash of an appended file whose bundled pieces are not sealed yet; the write
# session replaces it (``refs_hash``) once the bundles have their digests.
PENDING_HASH = b"\x00" * 32


def refs_hash(chunks: Iterable[ChunkRef]) -> bytes:
    """The content hash of an appended file: blake3 over its chunk slices, in order.

    It depends only on the final list of slices, so it is the same however the appends were
    grouped into commits.
    """
    h = blake3.blake3(b"appended")
    for ref in chunks:
        if ref[0] is None:
            return PENDING_HASH
        h.update(ref[0])
        h.update(ref[1].to_bytes(8, "little"))
        h.update(ref[2].to_bytes(8, "little"))
    return h.digest()


def make_content(chunks: Iterable[ChunkRef]) -> FileContent:
    refs = tuple(chunks)
    return FileContent(size=sum(r[1] for r in refs), hash=content_hash(refs), chunks=refs)


def pack_key(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}"


# Start flushing a pack to disk in the background every this many bytes, so the disk works
# while we chunk and hash, and the fsync that seals the pack has little left to do.
FLUSH_EVERY = 64 << 20


@dataclass
class _Pack:
    key: str
    path: Path
    file: BinaryIO
    size: int = 0
    flushed_at: int = 0
    flusher: threading.Thread | None = None

    def flush_in_background(self) -> None:
        if self.flusher is not None and self.flusher.is_alive():
            return
        self.flushed_at = self.size
        fd = self.file.fileno()
        self.flusher = threading.Thread(target=os.fdatasync, args=(fd,), daemon=True)
        self.flusher.start()

    def wait(self) -> None:
        if self.flusher is not None:
            self.flusher.join()


@dataclass
class ContentWriter:
    """Writes chunks for one write session (one commit); call ``seal()`` then index the rows.

    A bulk-write worker process (``storage.bulk``) runs one too, configured with its own
    ``scratch_prefix``, its own dedup probe (``known``) and ``defer_publish``: it seals its
    packs (fsync) but leaves them in scratch, and the session's writer ``adopt``s them, so the
    publishing rename and the index rows stay with the one process that commits.
    """

    store: ObjectStore
    db: Database | None
    # Names packs in the scratch dir (a bulk put finds its own); default "<owner>-pack".
    scratch_prefix: str | None = None
    # The process that will publish and index this writer's packs (``scratch``): this one,
    # or a bulk put's session for its workers. GC never reclaims a live owner's packs.
    owner: str | None = None
    known: Callable[[bytes], bool] | None = None  # dedup probe; defaults to the metadata DB
    defer_publish: bool = False
    threaded_hash: bool = True  # False in forked workers: a thread pool does not survive fork
    flush_every: int = FLUSH_EVERY
    _pack: _Pack | None = None
    _index: dict[bytes, tuple[str, int, int]] = field(default_factory=dict)
    # The open bundle is the first ``_fill`` bytes of one buffer reused for every bundle of
    # the session: growing a fresh bytearray per bundle page-faulted its memory in anew each
    # time, which cost more than hashing the files.
    _buf: bytearray | None = None
    _view: memoryview | None = None
    _fill: int = 0
    _slots: list[list] = field(default_factory=list)  # refs into the open bundle, filled at close
    _small: dict[bytes, list] = field(default_factory=dict)  # small-file hash -> its slot
    _packs: list[tuple[str, int]] = field(default_factory=list)
    _pending: list[tuple[str, Path, int]] = field(default_factory=list)  # sealed, not published
    _behind: WriteBehind | None = None  # the pack writes of large files (write_behind)
    _sealer: ThreadPoolExecutor | None = None  # seals full packs while the next one fills
    _sealing: list[Future] = field(default_factory=list)
    bytes_written: int = 0
    bytes_deduped: int = 0

    # -- public API ---------------------------------------------------------------------------

    def write_bytes(self, data: bytes | memoryview) -> FileContent:
        n = len(data)
        if n == 0:
            return FileContent(0, EMPTY_HASH, ())
        if n < BUNDLE_FILE:
            return self._add_bundled(bytes(data))
        if n <= SMALL_FILE:
            return make_content([self._add_chunk(data)])
        return make_content(self._add_chunk(c.data) for c in FastCDC(avg_size=CDC_AVG).cut_buf(data))

    def write_path(self, path: Path | str) -> FileContent:
        size = os.path.getsize(path)
        if size <= SMALL_FILE:
            with open(path, "rb") as f:
                return self.write_bytes(f.read())
        if self.threaded_hash:  # not in forked workers: no threads there
            return self._write_mapped(path)
        return make_content(
            self._add_chunk(c.data) for c in FastCDC(avg_size=CDC_AVG).cut_file(str(path))
        )

    def _write_mapped(self, path: Path | str) -> FileContent:
        """A large file cut from a read-only mapping, its new chunks written behind: the pack
        writes run on a thread (``write_behind``) while the next chunks are cut and hashed, and
        another thread reads the source ahead of the cutting (``read_ahead``). The mapping
        stays open until those writes are done, since they read from it."""
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            ahead = ReadAhead.of_file(f.fileno())
            view = memoryview(mm)
            refs = []
            try:
                for c in FastCDC(avg_size=CDC_AVG).cut_buf(view):
                    refs.append(self._add_chunk(c.data, behind=True))
                    ahead.advance(c.offset + c.length)
            finally:
                ahead.close()
                self._drain_behind()
                try:
                    view.release()
                    mm.close()
                except BufferError:  # a chunk view is still referenced: it closes when collected
                    pass
        return make_content(refs)

    def write_stream(self, stream: BinaryIO, progress: Callable[[int], None] | None = None) -> FileContent:
        head = stream.read(SMALL_FILE + 1)
        if len(head) <= SMALL_FILE:
            if progress:
                progress(len(head))
            return self.write_bytes(head)
        refs = []
        for c in FastCDC(avg_size=CDC_AVG).cut_stream(_Prepend(head, stream)):
            refs.append(self._add_chunk(c.data))
            if progress:
                progress(c.length)
        return make_content(refs)

    def seal(self) -> tuple[list[dict], list[dict]]:
        """Close the open bundle and pack; return (chunk index rows, pack rows) to insert."""
        self._close_bundle()
        self._close_pack()
        self._stop_behind()
        for key, path, size in self._pending:  # adopted packs: already durable, now named
            self.store.put_file(key, path)
            self._packs.append((key, size))
        self._pending = []
        chunk_rows = [
            {"hash": h, "pack": k, "offset": o, "length": n} for h, (k, o, n) in self._index.items()
        ]
        chunk_rows.sort(key=lambda r: r["hash"])  # sorted inserts are several times faster
        now = time.time()
        pack_rows = [{"key": k, "size": s, "created_at": now} for k, s in self._packs]
        return chunk_rows, pack_rows

    def abort(self) -> None:
        if self._behind is not None:
            try:
                self._behind.drain()
            except OSError:
                pass  # the pack is deleted below anyway
            self._stop_behind()
        if self._pack is not None:
            self._pack.wait()
            self._pack.file.close()
            self._pack.path.unlink(missing_ok=True)
            self._pack = None
        try:
            self._wait_sealing()
        except OSError:
            pass  # an orphaned pack is for GC to reclaim
        for _key, path, _size in self._pending:
            path.unlink(missing_ok=True)
        self._pending = []

    def detach(self) -> tuple[dict[bytes, tuple[str, int, int]], list[tuple[str, Path, int]]]:
        """Seal without publishing: (chunk index, sealed packs left in scratch) for ``adopt``."""
        self._close_bundle()
        self._close_pack()
        self._stop_behind()
        index, pending = self._index, self._pending
        self._index, self._pending = {}, []
        return index, pending

    def adopt(self, index: dict[bytes, tuple[str, int, int]], packs: list[tuple[str, Path, int]]) -> None:
        """Take over chunks another writer stored (``detach``): they are published by ``seal``
        and indexed with this session's rows, or deleted by ``abort``."""
        self._pending.extend(packs)
        for digest, where in index.items():
            # A chunk both wrote keeps the first copy; the other is dead bytes GC reclaims.
            self._index.setdefault(digest, where)

    def end_unit(self) -> None:
        """End the open bundle here, and let no later file share a slice written before.

        A bulk worker calls it at each content-defined unit end: what a unit's bundles hold
        then depends only on that unit's files, never on which worker wrote which unit before.
        """
        self._close_bundle()
        self._small.clear()

    # -- internals ----------------------------------------------------------------------------

    def _add_bundled(self, data: bytes) -> FileContent:
        digest, slot = self.add_small(data)
        return FileContent(len(data), digest, (slot,))

    def add_small(self, data: bytes) -> tuple[bytes, list]:
        """Bundle one non-empty file under ``BUNDLE_FILE`` bytes; ``(hash, slot)``.

        The slot is the file's one chunk reference ``[bundle digest, length, offset]``; its
        digest is filled in when the bundle closes. Plain values rather than a ``FileContent``:
        this is a bulk put's hot path.
        """
        n = len(data)
        digest = blake3.blake3(data).digest()
        seen = self._small.get(digest)
        if seen is not None:  # the same small file again in this write: share its slice
            self.bytes_deduped += n
            return digest, seen
        view = self._view
        if view is None:
            view = self._bundle_view()
        start = self._fill
        view[start : start + n] = data
        # The slot's digest is the bundle's, known only when the bundle closes; the list is
        # shared with the entry, so closing the bundle completes every reference at once.
        slot = [None, n, start]
        self._fill = fill = start + n
        self._slots.append(slot)
        self._small[digest] = slot
        if digest[0] == 0 or fill >= BUNDLE_MAX:  # content-defined boundary
            self._close_bundle()
        return digest, slot

    def _bundle_view(self) -> memoryview:
        if self._view is None:
            # A file under BUNDLE_FILE is only added while the bundle is under BUNDLE_MAX.
            self._buf = bytearray(BUNDLE_MAX + BUNDLE_FILE)
            self._view = memoryview(self._buf)
        return self._view

    def _close_bundle(self) -> None:
        if not self._slots:
            return
        assert self._view is not None
        ref = self._add_chunk(self._view[: self._fill])
        for slot in self._slots:
            slot[0] = ref[0]
        self._fill = 0
        self._slots = []

    def _add_chunk(self, data: bytes | memoryview, behind: bool = False) -> ChunkRef:
        threads = blake3.blake3.AUTO if self.threaded_hash and len(data) > (1 << 20) else 1
        digest = blake3.blake3(data, max_threads=threads).digest()
        if digest in self._index or self._known(digest):
            self.bytes_deduped += len(data)
        else:
            self._append(digest, data, behind)
        return (digest, len(data), 0)

    def _known(self, digest: bytes) -> bool:
        """Whether a chunk is already stored (committed by anyone)."""
        if self.known is not None:
            return self.known(digest)
        assert self.db is not None
        return self.db.has_key(schema.chunks, "hash", digest)

    def _append(self, digest: bytes, data: bytes | memoryview, behind: bool = False) -> None:
        if self._pack is None:
            owner = self.owner or owner_token()
            pack_id = new_pack_id(owner)
            prefix = self.scratch_prefix or f"{owner}-pack"
            path = self.store.scratch_dir() / f"{prefix}-{pack_id}"
            # Closed by _close_pack (or abort): a pack outlives this call by design.
            self._pack = _Pack(pack_key(pack_id), path, open(path, "wb", buffering=0))  # noqa: SIM115
        pack = self._pack
        if behind:
            if self._behind is None:
                self._behind = WriteBehind()
            self._behind.submit(pack.file, memoryview(data))
        else:
            self._drain_behind()  # queued writes land first: offsets follow the queue's order
            pack.file.write(data)
        self._index[digest] = (pack.key, pack.size, len(data))
        pack.size += len(data)
        self.bytes_written += len(data)
        if pack.size >= PACK_LIMIT:
            self._close_pack(last=False)
        elif pack.size - pack.flushed_at >= self.flush_every:
            pack.flush_in_background()

    def _drain_behind(self) -> None:
        if self._behind is not None:
            self._behind.drain()

    def _stop_behind(self) -> None:
        if self._behind is not None:
            self._behind.close()
            self._behind = None

    def _close_pack(self, last: bool = True) -> None:
        """Seal the open pack. A full pack mid-write (``last`` false) is sealed on a thread
        while the next one fills; the last one is sealed here, after waiting for the others."""
        self._drain_behind()  # every byte queued for this pack is in it before the fsync
        pack = self._pack
        if pack is not None:
            self._pack = None
            # Recorded now, in this thread; abort deletes pending packs, GC orphaned published ones.
            if self.defer_publish:
                self._pending.append((pack.key, pack.path, pack.size))
            else:
                self._packs.append((pack.key, pack.size))
            if not last and self.threaded_hash:  # no threads in forked workers
                if self._sealer is None:
                    self._sealer = ThreadPoolExecutor(SEAL_THREADS, thread_name_prefix="tusk-seal")
                self._sealing.append(self._sealer.submit(self._seal_pack, pack))
                return
            self._seal_pack(pack)
        if last:
            self._wait_sealing()

    def _seal_pack(self, pack: _Pack) -> None:
        # The sealing fsync: the pack's bytes are durable before any commit can name them.
        pack.wait()
        os.fsync(pack.file.fileno())
        pack.file.close()
        if not self.defer_publish:
            self.store.put_file(pack.key, pack.path)

    def _wait_sealing(self) -> None:
        """Wait for the packs sealing on threads; raise the first failure."""
        sealing, self._sealing = self._sealing, []
        errors = [f.exception() for f in sealing]
        if self._sealer is not None:
            self._sealer.shutdown()
            self._sealer = None
        for e in errors:
            if e is not None:
                raise e


class _Prepend:
    """A stream that yields ``head`` then the rest of ``stream`` (for sniffing small inputs)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readinto(self, buf: memoryview) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        if hasattr(self._stream, "readinto"):
            return self._stream.readinto(buf) or 0
        data = self._stream.read(len(buf))
        buf[: len(data)] = data
        return len(data)


class ContentReader:
    """Reads files back from their chunk lists."""

    def __init__(self, store: ObjectStore, db: Database) -> None:
        self.store = store
        self.db = db

    def locate(self, digests: Iterable[bytes]) -> dict[bytes, tuple[str, int, int]]:
        wanted = list(dict.fromkeys(digests))
        out: dict[bytes, tuple[str, int, int]] = {}
        t = schema.chunks
        with self.db.read() as conn:
            for i in range(0, len(wanted), LOOKUP_BATCH):
                batch = wanted[i : i + LOOKUP_BATCH]
                for h, k, o, n in conn.execute(
                    select(t.c.hash, t.c.pack, t.c.offset, t.c.length).where(t.c.hash.in_(batch))
                ):
                    out[h] = (k, o, n)
        missing = [d for d in wanted if d not in out]
        if missing:
            name = missing[0].hex()[:16] if isinstance(missing[0], bytes) else "(unsealed)"
            raise NotFound(f"chunk {name} is missing from the store; run 'tusk fsck'")
        return out

    def iter_bytes(self, chunks: Iterable[ChunkRef], start: int = 0) -> Iterator[bytes]:
        """A file's bytes from byte ``start`` on, one chunk slice at a time."""
        for key, off, n in self._slices(chunks, start):
            yield self.store.read(key, off, n)

    def _slices(self, chunks: Iterable[ChunkRef], start: int) -> Iterator[tuple[str, int, int]]:
        """(pack, offset, length) pieces covering the file from byte ``start``."""
        refs = list(chunks)
        where = self.locate(r[0] for r in refs)
        pos = 0
        for ref in refs:
            length = ref[1]
            if pos + length <= start:
                pos += length
                continue
            skip = max(0, start - pos)
            pos += length
            key, off, _n = where[ref[0]]
            yield key, off + ref[2] + skip, length - skip

    def read_bytes(self, chunks: Iterable[ChunkRef]) -> bytes:
        return b"".join(self.iter_bytes(chunks))

    def copy_to_fd(self, chunks: Iterable[ChunkRef], fd: int, start: int = 0) -> int:
        """Write a file's bytes to ``fd`` using kernel copies where the store is local, with the
        next slices read ahead (``read_ahead``) while the current one is copied."""
        written = 0
        fds: dict[str, int] = {}
        slices = list(self._slices(chunks, start))
        try:
            local: list[tuple[int, int, int]] = []  # (pack fd, offset, length) for read-ahead
            for key, off, n in slices:
                path = self.store.local_path(key)
                if path is not None:
                    if key not in fds:
                        fds[key] = os.open(path, os.O_RDONLY)
                    local.append((fds[key], off, n))
            # Not for small files: a thread per file would cost more than the kernel's own
            # read-ahead loses (workspaces materialize many small files).
            ahead = ReadAhead(local) if sum(r[2] for r in local) >= READ_AHEAD_MIN else None
            done = 0
            try:
                for key, off, n in slices:
                    if key in fds:
                        done += _copy_range(fds[key], fd, off, n)
                        if ahead is not None:
                            ahead.advance(done)
                    else:
                        written += _write_all(fd, self.store.read(key, off, n))
            finally:
                if ahead is not None:
                    ahead.close()
            written += done
        finally:
            for f in fds.values():
                os.close(f)
        return written


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _copy_range(src: int, dst: int, offset: int, length: int) -> int:
    done = 0
    while done < length:
        try:
            n = os.sendfile(dst, src, offset + done, length - done)
        except OSError:
            # sendfile can refuse some fd kinds; fall back to pread + write.
            data = os.pread(src, min(1 << 20, length - done), offset + done)
            n = _write_all(dst, data)
        if n == 0:
            raise NotFound("pack file is shorter than its index says; run 'tusk fsck'")
        done += n
    return done
