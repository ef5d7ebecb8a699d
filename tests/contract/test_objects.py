"""The ObjectStore contract: every backend (local directory, memory) behaves the same."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tusk.errors import NotFound
from tusk.storage.objects import LocalObjectStore, ObjectStore


def test_put_bytes_then_read_back(store: ObjectStore) -> None:
    store.put_bytes("packs/ab/abc", b"hello world")
    assert store.read("packs/ab/abc") == b"hello world"
    assert store.exists("packs/ab/abc")
    assert store.size("packs/ab/abc") == 11


def test_put_bytes_leaves_no_temporary_objects(store: ObjectStore) -> None:
    store.put_bytes("a/one", b"1" * 1000)
    store.put_bytes("b/two", b"")
    assert list(store.list()) == ["a/one", "b/two"]
    assert list(store.scratch_dir().iterdir()) == []


def test_put_file_consumes_the_file_and_stores_it(store: ObjectStore) -> None:
    src = store.scratch_dir() / "upload"
    src.write_bytes(b"payload" * 100)
    store.put_file("packs/xy/xyz", src)
    assert not src.exists()
    assert store.read("packs/xy/xyz") == b"payload" * 100
    assert list(store.list()) == ["packs/xy/xyz"]


def test_put_file_from_outside_the_scratch_dir(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "elsewhere.bin"
    src.write_bytes(b"\x00\x01\x02")
    store.put_file("k/v", src)
    assert not src.exists()
    assert store.read("k/v") == b"\x00\x01\x02"


def test_read_ranges(store: ObjectStore) -> None:
    data = bytes(range(256)) * 4
    store.put_bytes("r/x", data)
    assert store.read("r/x", 10, 5) == data[10:15]
    assert store.read("r/x", 1000) == data[1000:]
    assert store.read("r/x", 0, 0) == b""
    assert store.read("r/x", 1020, 100) == data[1020:]  # a range past the end is short
    assert store.read("r/x", 5000) == b""


def test_missing_objects_are_not_found(store: ObjectStore) -> None:
    assert not store.exists("no/such")
    with pytest.raises(NotFound):
        store.read("no/such")
    with pytest.raises(NotFound):
        store.read("no/such", 3, 4)
    with pytest.raises(NotFound):
        store.size("no/such")
    with pytest.raises(NotFound):
        store.mtime("no/such")


def test_delete_removes_and_deleting_missing_is_fine(store: ObjectStore) -> None:
    store.put_bytes("d/1", b"x")
    store.delete("d/1")
    assert not store.exists("d/1")
    assert list(store.list()) == []
    store.delete("d/1")
    store.delete("never/was")
    with pytest.raises(NotFound):
        store.read("d/1")


def test_list_filters_by_prefix_in_sorted_order(store: ObjectStore) -> None:
    for key in ["packs/b/2", "packs/a/10", "packs/a/2", "other/z", "packsX/1"]:
        store.put_bytes(key, key.encode())
    assert list(store.list()) == sorted(["packs/b/2", "packs/a/10", "packs/a/2", "other/z", "packsX/1"])
    assert list(store.list("packs/")) == ["packs/a/10", "packs/a/2", "packs/b/2"]
    assert list(store.list("packs/a/")) == ["packs/a/10", "packs/a/2"]
    assert list(store.list("nothing/")) == []


def test_rewriting_a_key_replaces_it_whole(store: ObjectStore) -> None:
    store.put_bytes("k", b"first version, longer")
    store.put_bytes("k", b"second")
    assert store.read("k") == b"second"
    assert store.size("k") == 6


def test_mtime_is_when_the_object_was_stored(store: ObjectStore) -> None:
    before = time.time()
    store.put_bytes("t/1", b"x")
    assert before - 2 <= store.mtime("t/1") <= time.time() + 2


@pytest.mark.parametrize(
    "key", ["", "/abs", "../escape", "a/../../b", "a//b", "a/./b", "trailing/", "nul\0byte"]
)
def test_bad_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        store.read(key)
    with pytest.raises(ValueError):
        store.exists(key)
    assert list(store.list()) == []


def test_local_store_never_writes_outside_its_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    for key in ["../outside", "/etc/passwd-copy", "a/../../outside2"]:
        with pytest.raises(ValueError):
            store.put_bytes(key, b"x")
    assert sorted(os.listdir(tmp_path)) == ["objects"]


def test_local_store_refuses_keys_in_its_scratch_dir(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    with pytest.raises(ValueError):
        store.put_bytes("tmp/x", b"x")  # would be hidden from list() and look like a temp file


def test_local_objects_are_plain_files_with_a_local_path(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put_bytes("packs/aa/aabb", b"bytes on disk")
    path = store.local_path("packs/aa/aabb")
    assert path is not None and path.read_bytes() == b"bytes on disk"
    # A second store on the same directory sees what the first wrote.
    assert LocalObjectStore(tmp_path / "objects").read("packs/aa/aabb") == b"bytes on disk"


def test_put_file_from_another_filesystem(store: ObjectStore, tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second filesystem (/dev/shm) to cross")
    src = shm / f"tusk-test-{os.getpid()}-{id(store)}"
    src.write_bytes(b"from afar")
    try:
        store.put_file("far/away", src)
        assert not src.exists()
        assert store.read("far/away") == b"from afar"
        assert list(store.list()) == ["far/away"]
    finally:
        src.unlink(missing_ok=True)
