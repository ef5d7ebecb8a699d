"""The unpacked-image cache is reclaimed by gc (``ImageStore.prune``): what no job in flight
runs, and what an unpack killed midway left, once past the grace period."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tusk.images.store import ImageStore


def make(root: Path, name: str, size: int, age: float = 0.0) -> Path:
    d = root / "images" / name
    (d / "rootfs" / "bin").mkdir(parents=True)
    (d / "rootfs" / "bin" / "tool").write_bytes(b"x" * size)
    if age:
        old = time.time() - age
        os.utime(d, (old, old))
    return d


def test_prune_keeps_images_in_use_and_young_ones_and_removes_the_rest(tmp_path: Path) -> None:
    used = make(tmp_path, "a" * 64, 10, age=7200)
    unused = make(tmp_path, "b" * 64, 100, age=7200)
    leftover = make(tmp_path, ".tmp-123456789abc", 1000, age=7200)  # an unpack killed midway
    young = make(tmp_path, "c" * 64, 5)
    store = ImageStore(tmp_path)
    assert store.prune({"sha256:" + "a" * 64}, grace=3600) == (2, 1100)
    assert used.exists() and young.exists()
    assert not unused.exists() and not leftover.exists()
    assert store.prune(set(), grace=0) == (2, 15)
    assert os.listdir(tmp_path / "images") == []


def test_prune_of_a_root_without_images(tmp_path: Path) -> None:
    assert ImageStore(tmp_path).prune(set(), grace=0) == (0, 0)
