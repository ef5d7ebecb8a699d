"""File content as deduplicated chunks in pack files.

A file's bytes are cut into chunks (whole for small files, FastCDC content-defined cuts for
large ones, so an edit moves few boundaries), each chunk is named by its blake3 hash and
stored once. Chunks are appended to *pack* objects rather than stored one object each, so
100,000 small files cost one object, not 100,000 inodes. The ``chunks`` table maps a chunk
hash to (pack, offset, length).

Write protocol (crash-safe): a ``ContentWriter`` appends to a temp file, fsyncs it and renames
it into the object store when the pack is sealed; the index rows it returns are inserted by the
caller in the *same* metadata transaction that records the commit. A crash before that
transaction leaves only an unreferenced pack, which garbage collection removes.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator
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

# Files up to this size are one chunk: cutting them buys no dedup worth its cost.
SMALL_FILE = 1 << 20
CDC_AVG = 1 << 20  # pyfastcdc: min = avg/4, max = avg*4
PACK_LIMIT = 256 << 20
# Small chunks wait in memory so their dedup lookups can be batched.
PENDING_BYTES = 16 << 20
PENDING_COUNT = 4096
LOOKUP_BATCH = 500

EMPTY_HASH = blake3.blake3(b"").digest()

ChunkRef = tuple[bytes, int]  # (blake3 digest, length)


@dataclass(frozen=True, slots=True)
class FileContent:
    """What a write produced: the chunk list and the derived whole-file identity."""

    size: int
    hash: bytes
    chunks: tuple[ChunkRef, ...]


def content_hash(chunks: Iterable[ChunkRef]) -> bytes:
    """A file's content hash: blake3 over its chunk hashes (cheap; never re-reads the bytes).

    Chunking is deterministic, so the same bytes written whole always get the same hash;
    appended files may hash differently from the same bytes written at once, which only makes
    pipelines conservatively reprocess.
    """
    refs = list(chunks)
    if not refs:
        return EMPTY_HASH
    h = blake3.blake3()
    for digest, _length in refs:
        h.update(digest)
    return h.digest()


def make_content(chunks: Iterable[ChunkRef]) -> FileContent:
    refs = tuple(chunks)
    return FileContent(size=sum(n for _, n in refs), hash=content_hash(refs), chunks=refs)


def pack_key(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}"


@dataclass
class _Pack:
    key: str
    path: Path
    file: BinaryIO
    size: int = 0


@dataclass
class ContentWriter:
    """Writes chunks for one write session (one commit); call ``seal()`` then index the rows."""

    store: ObjectStore
    db: Database
    _pack: _Pack | None = None
    _index: dict[bytes, tuple[str, int, int]] = field(default_factory=dict)
    _pending: dict[bytes, bytes] = field(default_factory=dict)
    _pending_bytes: int = 0
    _packs: list[tuple[str, int]] = field(default_factory=list)
    bytes_written: int = 0
    bytes_deduped: int = 0

    # -- public API ---------------------------------------------------------------------------

    def write_bytes(self, data: bytes | memoryview) -> FileContent:
        if len(data) <= SMALL_FILE:
            return make_content([self._add_small(bytes(data))] if len(data) else [])
        return make_content(self._add_large(c.data) for c in FastCDC(avg_size=CDC_AVG).cut_buf(data))

    def write_path(self, path: Path) -> FileContent:
        size = os.path.getsize(path)
        if size <= SMALL_FILE:
            with open(path, "rb") as f:
                return self.write_bytes(f.read())
        return make_content(
            self._add_large(c.data) for c in FastCDC(avg_size=CDC_AVG).cut_file(str(path))
        )

    def write_stream(self, stream: BinaryIO, progress: callable | None = None) -> FileContent:  # type: ignore[valid-type]
        head = stream.read(SMALL_FILE + 1)
        if len(head) <= SMALL_FILE:
            if progress:
                progress(len(head))
            return self.write_bytes(head)
        chained = _Prepend(head, stream)
        refs = []
        for c in FastCDC(avg_size=CDC_AVG).cut_stream(chained):
            refs.append(self._add_large(c.data))
            if progress:
                progress(c.length)
        return make_content(refs)

    def seal(self) -> tuple[list[dict], list[dict]]:
        """Flush and close the current pack; return (chunk index rows, pack rows) to insert."""
        self._flush_pending()
        self._close_pack()
        chunk_rows = [
            {"hash": h, "pack": k, "offset": o, "length": n} for h, (k, o, n) in self._index.items()
        ]
        chunk_rows.sort(key=lambda r: r["hash"])  # sorted inserts are several times faster
        now = time.time()
        pack_rows = [{"key": k, "size": s, "created_at": now} for k, s in self._packs]
        return chunk_rows, pack_rows

    def abort(self) -> None:
        if self._pack is not None:
            self._pack.file.close()
            self._pack.path.unlink(missing_ok=True)
            self._pack = None

    # -- internals ----------------------------------------------------------------------------

    def _add_small(self, data: bytes) -> ChunkRef:
        digest = blake3.blake3(data).digest()
        if digest not in self._index and digest not in self._pending:
            self._pending[digest] = data
            self._pending_bytes += len(data)
            if self._pending_bytes >= PENDING_BYTES or len(self._pending) >= PENDING_COUNT:
                self._flush_pending()
        return digest, len(data)

    def _add_large(self, data: memoryview) -> ChunkRef:
        digest = blake3.blake3(data, max_threads=blake3.blake3.AUTO).digest()
        if digest not in self._index and digest not in self._pending:
            if self._known([digest]):
                self.bytes_deduped += len(data)
            else:
                self._append(digest, data)
        else:
            self.bytes_deduped += len(data)
        return digest, len(data)

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        known = self._known(list(self._pending))
        for digest, data in self._pending.items():
            if digest in known:
                self.bytes_deduped += len(data)
            else:
                self._append(digest, data)
        self._pending.clear()
        self._pending_bytes = 0

    def _known(self, digests: list[bytes]) -> set[bytes]:
        """Which of these chunks are already stored (committed by anyone)."""
        found: set[bytes] = set()
        col = schema.chunks.c.hash
        with self.db.read() as conn:
            for i in range(0, len(digests), LOOKUP_BATCH):
                batch = digests[i : i + LOOKUP_BATCH]
                found.update(conn.execute(select(col).where(col.in_(batch))).scalars())
        return found

    def _append(self, digest: bytes, data: bytes | memoryview) -> None:
        if self._pack is None:
            pack_id = uuid.uuid4().hex
            path = self.store.scratch_dir() / f"pack-{pack_id}"
            self._pack = _Pack(pack_key(pack_id), path, open(path, "wb", buffering=0))
        pack = self._pack
        pack.file.write(data)
        self._index[digest] = (pack.key, pack.size, len(data))
        pack.size += len(data)
        self.bytes_written += len(data)
        if pack.size >= PACK_LIMIT:
            self._close_pack()

    def _close_pack(self) -> None:
        pack = self._pack
        if pack is None:
            return
        self._pack = None
        # The one fsync of this pack: its bytes are durable before any commit can name them.
        os.fsync(pack.file.fileno())
        pack.file.close()
        self.store.put_file(pack.key, pack.path)
        self._packs.append((pack.key, pack.size))


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
            raise NotFound(
                f"chunk {missing[0].hex()[:16]} is missing from the store; run 'tusk fsck'"
            )
        return out

    def iter_bytes(self, chunks: Iterable[ChunkRef], offset: int = 0) -> Iterator[bytes]:
        refs = list(chunks)
        where = self.locate(d for d, _ in refs)
        pos = 0
        for digest, length in refs:
            if pos + length <= offset:
                pos += length
                continue
            key, off, n = where[digest]
            skip = max(0, offset - pos)
            yield self.store.read(key, off + skip, n - skip)
            pos += length

    def read_bytes(self, chunks: Iterable[ChunkRef]) -> bytes:
        return b"".join(self.iter_bytes(chunks))

    def copy_to_fd(self, chunks: Iterable[ChunkRef], fd: int, offset: int = 0) -> int:
        """Write a file's bytes to ``fd`` using kernel copies where the store is local."""
        refs = list(chunks)
        where = self.locate(d for d, _ in refs)
        written = 0
        fds: dict[str, int] = {}
        try:
            pos = 0
            for digest, length in refs:
                if pos + length <= offset:
                    pos += length
                    continue
                skip = max(0, offset - pos)
                pos += length
                key, off, n = where[digest]
                local = self.store.local_path(key)
                if local is None:
                    written += _write_all(fd, self.store.read(key, off + skip, n - skip))
                    continue
                if key not in fds:
                    fds[key] = os.open(local, os.O_RDONLY)
                written += _copy_range(fds[key], fd, off + skip, n - skip)
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
