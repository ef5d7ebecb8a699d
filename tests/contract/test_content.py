"""Content storage (chunking, packs, dedup) over every ObjectStore implementation.

Each test writes through a real ``ContentWriter`` into a real SQLite index and reads back
through ``ContentReader``; the object store is parametrized (local directory, memory).
"""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

import pytest

from tusk.config import RootConfig
from tusk.errors import NotFound
from tusk.pfs.gc import collect_garbage
from tusk.storage import schema
from tusk.storage.backend import Backend, DbNodeStore
from tusk.storage.content import SMALL_FILE, ContentReader, ContentWriter, FileContent
from tusk.storage.db import Database
from tusk.storage.objects import ObjectStore

MIB = 1 << 20


def rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def index(db: Database, writer: ContentWriter) -> tuple[list[dict], list[dict]]:
    """Seal a write session and record its rows, as a commit's transaction does."""
    chunk_rows, pack_rows = writer.seal()
    with db.tx() as conn:
        if pack_rows:
            conn.execute(schema.packs.insert(), pack_rows)
        db.insert_ignore(conn, schema.chunks, chunk_rows)
    return chunk_rows, pack_rows


def pack_bytes(store: ObjectStore) -> int:
    return sum(store.size(k) for k in store.list("packs/"))


def test_small_file_is_one_chunk_and_reads_back(store: ObjectStore, db: Database) -> None:
    w = ContentWriter(store, db)
    fc = w.write_bytes(b"hello, tusk")
    assert fc.size == 11
    assert len(fc.chunks) == 1
    index(db, w)
    assert ContentReader(store, db).read_bytes(fc.chunks) == b"hello, tusk"


def test_a_file_at_the_small_limit_is_still_one_chunk(store: ObjectStore, db: Database) -> None:
    w = ContentWriter(store, db)
    fc = w.write_bytes(rand(SMALL_FILE, 1))
    assert len(fc.chunks) == 1


def test_empty_file_stores_nothing(store: ObjectStore, db: Database) -> None:
    w = ContentWriter(store, db)
    fc = w.write_bytes(b"")
    assert (fc.size, fc.chunks) == (0, ())
    chunk_rows, pack_rows = index(db, w)
    assert chunk_rows == [] and pack_rows == []
    assert list(store.list()) == []
    assert ContentReader(store, db).read_bytes(fc.chunks) == b""


def test_large_file_is_cut_into_chunks_and_reads_back_identical(
    store: ObjectStore, db: Database, tmp_path: Path
) -> None:
    data = rand(5 * MIB, 2)
    w = ContentWriter(store, db)
    fc = w.write_bytes(data)
    assert fc.size == len(data)
    assert len(fc.chunks) >= 3
    assert sum(r[1] for r in fc.chunks) == len(data)
    index(db, w)
    reader = ContentReader(store, db)
    assert reader.read_bytes(fc.chunks) == data

    out = tmp_path / "out.bin"
    with open(out, "wb") as f:
        assert reader.copy_to_fd(fc.chunks, f.fileno()) == len(data)
    assert out.read_bytes() == data

    # Reading from an offset in the middle of a chunk.
    off = fc.chunks[0][1] + 12345  # 12345 bytes into the second chunk
    assert b"".join(reader.iter_bytes(fc.chunks, off)) == data[off:]
    with open(tmp_path / "tail.bin", "wb") as f:
        assert reader.copy_to_fd(fc.chunks, f.fileno(), off) == len(data) - off
    assert (tmp_path / "tail.bin").read_bytes() == data[off:]


@pytest.mark.parametrize("n", [100, 300_000, 3 * MIB])
def test_bytes_path_and_stream_give_the_same_content(
    store: ObjectStore, db: Database, tmp_path: Path, n: int
) -> None:
    data = rand(n, n)
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    w = ContentWriter(store, db)
    written = [w.write_bytes(data), w.write_path(local), w.write_stream(io.BytesIO(data))]
    index(db, w)
    assert {(fc.size, fc.hash) for fc in written} == {(n, written[0].hash)}
    reader = ContentReader(store, db)
    for fc in written:
        assert reader.read_bytes(fc.chunks) == data


def test_large_files_written_behind_land_in_order_across_packs(
    store: ObjectStore, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large file's chunks are written by the write-behind thread while direct writes (a
    medium file between two large ones) go in between, and packs roll over mid-file: every
    chunk must still read back from the offset the index recorded."""
    from tusk.storage import content

    monkeypatch.setattr(content, "PACK_LIMIT", 3 * MIB)
    big1, medium, big2 = rand(9 * MIB, 21), rand(700_000, 22), rand(7 * MIB, 23)
    (tmp_path / "big1").write_bytes(big1)
    (tmp_path / "big2").write_bytes(big2)
    w = ContentWriter(store, db)
    written = [w.write_path(tmp_path / "big1"), w.write_bytes(medium), w.write_path(tmp_path / "big2")]
    assert w.bytes_written == len(big1) + len(medium) + len(big2)
    _, pack_rows = index(db, w)
    assert len(pack_rows) >= 5  # it rolled over several times
    reader = ContentReader(store, db)
    for fc, data in zip(written, (big1, medium, big2), strict=True):
        assert reader.read_bytes(fc.chunks) == data
    assert [fc.hash for fc in written] == [w2.hash for w2 in (
        ContentWriter(store, db).write_bytes(d) for d in (big1, medium, big2))]


def test_a_failed_write_behind_is_raised_and_aborts_cleanly(tmp_path: Path) -> None:
    from tusk.storage.write_behind import WriteBehind

    wb = WriteBehind()
    with open(tmp_path / "ok.bin", "wb", buffering=0) as ok:
        wb.submit(ok, memoryview(b"first"))
        closed = open(tmp_path / "closed.bin", "wb", buffering=0)  # noqa: SIM115
        closed.close()
        wb.submit(closed, memoryview(b"second"))  # writing to a closed file fails
        with pytest.raises(ValueError):
            wb.drain()
        wb.submit(ok, memoryview(b"third"))  # the writer goes on after reporting the error
        wb.drain()
    wb.close()
    assert (tmp_path / "ok.bin").read_bytes() == b"firstthird"


def test_abort_while_full_packs_are_sealing_leaves_nothing_after_gc(
    store: ObjectStore, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full packs seal on threads while the next fills; an abort waits for them, deletes what
    is still in scratch, and leaves published ones as orphans that GC frees."""
    from tusk.storage import content

    monkeypatch.setattr(content, "PACK_LIMIT", 2 * MIB)
    (tmp_path / "big").write_bytes(rand(11 * MIB, 31))
    w = ContentWriter(store, db)
    w.write_path(tmp_path / "big")
    w.abort()
    assert list(store.scratch_dir().iterdir()) == []
    with db.tx() as conn:
        assert conn.execute(schema.chunks.select()).first() is None
    collect_garbage(_backend(store, db, tmp_path), orphan_grace=0)
    assert list(store.list("packs/")) == []


def test_a_pack_that_fails_to_seal_on_a_thread_fails_the_seal(
    store: ObjectStore, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tusk.storage import content

    monkeypatch.setattr(content, "PACK_LIMIT", 2 * MIB)
    calls = []
    real_put = store.put_file

    def put_file(key: str, path: Path) -> None:
        calls.append(key)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_put(key, path)

    monkeypatch.setattr(store, "put_file", put_file)
    (tmp_path / "big").write_bytes(rand(9 * MIB, 32))
    w = ContentWriter(store, db)
    w.write_path(tmp_path / "big")
    with pytest.raises(OSError, match="No space left"):
        w.seal()
    w.abort()
    assert len(calls) >= 3  # the failure came from a pack sealed mid-write, not the last one


def test_a_large_file_copies_out_identical_from_any_offset_with_read_ahead(
    store: ObjectStore, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``get file`` copies slices out of several packs while a thread reads the next ones
    ahead; every byte must arrive in order, from the start or from an offset."""
    import os

    from tusk.storage import content

    monkeypatch.setattr(content, "PACK_LIMIT", 3 * MIB)
    monkeypatch.setattr(content, "READ_AHEAD_MIN", MIB)  # so this file is read ahead
    data = rand(10 * MIB, 41)
    (tmp_path / "big").write_bytes(data)
    w = ContentWriter(store, db)
    fc = w.write_path(tmp_path / "big")
    index(db, w)
    reader = ContentReader(store, db)
    for start in (0, 5 * MIB + 123):
        out = tmp_path / f"out{start}"
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            assert reader.copy_to_fd(fc.chunks, fd, start) == len(data) - start
        finally:
            os.close(fd)
        assert out.read_bytes() == data[start:]


def test_identical_content_in_a_later_session_stores_no_new_bytes(
    store: ObjectStore, db: Database
) -> None:
    small, large = rand(4000, 3), rand(3 * MIB, 4)
    w1 = ContentWriter(store, db)
    first = (w1.write_bytes(small), w1.write_bytes(large))
    index(db, w1)
    stored = pack_bytes(store)
    assert stored == len(small) + len(large)

    w2 = ContentWriter(store, db)
    second = (w2.write_bytes(small), w2.write_bytes(large))
    chunk_rows, pack_rows = index(db, w2)
    assert second == first
    assert w2.bytes_written == 0
    assert w2.bytes_deduped == len(small) + len(large)
    assert (chunk_rows, pack_rows) == ([], [])
    assert pack_bytes(store) == stored


@pytest.mark.parametrize("n", [300_000, 2 * MIB])  # one whole chunk; several CDC chunks
def test_duplicates_within_one_session_are_written_once(
    store: ObjectStore, db: Database, n: int
) -> None:
    data = rand(n, 5)
    w = ContentWriter(store, db)
    copies = [w.write_bytes(data) for _ in range(3)]
    index(db, w)
    assert w.bytes_written == n
    assert w.bytes_deduped == 2 * n
    assert pack_bytes(store) == n
    assert ContentReader(store, db).read_bytes(copies[2].chunks) == data


def test_small_duplicates_within_one_session_are_written_once(
    store: ObjectStore, db: Database
) -> None:
    small = rand(5000, 8)
    w = ContentWriter(store, db)
    for _ in range(3):
        w.write_bytes(small)
    index(db, w)
    assert w.bytes_written == len(small)
    assert pack_bytes(store) == len(small)


def test_many_small_files_share_one_pack(store: ObjectStore, db: Database) -> None:
    w = ContentWriter(store, db)
    contents = [w.write_bytes(f"file number {i}\n".encode() * 10) for i in range(300)]
    chunk_rows, pack_rows = index(db, w)
    assert len(pack_rows) == 1
    assert len(list(store.list("packs/"))) == 1
    assert 1 <= len(chunk_rows) < 300  # small files may share chunks too (bundles)
    assert all(len(fc.chunks) == 1 for fc in contents)
    reader = ContentReader(store, db)
    assert reader.read_bytes(contents[123].chunks) == b"file number 123\n" * 10


def test_an_insert_in_the_middle_restores_only_a_few_chunks(store: ObjectStore, db: Database) -> None:
    original = rand(8 * MIB, 9)
    w1 = ContentWriter(store, db)
    a = w1.write_bytes(original)
    index(db, w1)

    edited = original[: 4 * MIB] + b"a few new bytes" + original[4 * MIB :]
    w2 = ContentWriter(store, db)
    b = w2.write_bytes(edited)
    index(db, w2)
    new_chunks = {r[0] for r in b.chunks} - {r[0] for r in a.chunks}
    assert 1 <= len(new_chunks) <= 2
    assert len(b.chunks) >= 4
    assert w2.bytes_written < len(edited) // 3
    assert w2.bytes_written + w2.bytes_deduped == len(edited)
    assert ContentReader(store, db).read_bytes(b.chunks) == edited


def test_reading_unindexed_chunks_is_not_found(store: ObjectStore, db: Database) -> None:
    w = ContentWriter(store, db)
    fc = w.write_bytes(b"never indexed")
    w.seal()
    with pytest.raises(NotFound):
        ContentReader(store, db).read_bytes(fc.chunks)


def test_abort_discards_the_open_pack(store: ObjectStore, db: Database) -> None:
    w = ContentWriter(store, db)
    w.write_bytes(rand(2 * MIB, 10))  # large chunks go straight into the pack file
    w.abort()
    assert list(store.list()) == []
    assert list(store.scratch_dir().iterdir()) == []


def _backend(store: ObjectStore, db: Database, root: Path) -> Backend:
    return Backend(RootConfig(root, db.url, "test://"), db, store, DbNodeStore(db))


def test_gc_removes_a_sealed_pack_that_was_never_indexed(
    store: ObjectStore, db: Database, tmp_path: Path
) -> None:
    b = _backend(store, db, tmp_path)
    w = ContentWriter(store, db)
    w.write_bytes(b"written, sealed, then the process died")
    w.seal()  # ... and the commit transaction never ran
    assert len(list(store.list("packs/"))) == 1

    collect_garbage(b)  # default grace: a young orphan may belong to a writer in flight
    assert len(list(store.list("packs/"))) == 1

    collect_garbage(b, orphan_grace=0)
    assert list(store.list("packs/")) == []


def test_gc_grace_is_measured_from_when_the_pack_was_stored(
    store: ObjectStore, db: Database, tmp_path: Path
) -> None:
    b = _backend(store, db, tmp_path)
    w = ContentWriter(store, db)
    w.write_bytes(b"orphan")
    w.seal()
    time.sleep(0.05)
    collect_garbage(b, orphan_grace=60)
    assert len(list(store.list("packs/"))) == 1
    collect_garbage(b, orphan_grace=0.01)
    assert list(store.list("packs/")) == []


def test_content_identity_depends_only_on_bytes(store: ObjectStore, db: Database) -> None:
    w = ContentWriter(store, db)
    x, y = w.write_bytes(b"same"), w.write_bytes(b"same")
    z = w.write_bytes(b"different")
    assert isinstance(x, FileContent)
    assert x.hash == y.hash != z.hash
    assert (x.size, z.size) == (4, 9)
