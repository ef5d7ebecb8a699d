"""Whole files by content hash, for cheap repeated materialisation of datum inputs.

A file's bytes are written here once (``<root>/cache/<hh>/<content hash>``, mode 0444, by an
atomic rename) and hard-linked into every datum workspace that reads them. Because one inode
serves many datums and pipelines, nothing may ever change it:

* the sandbox binds inputs read-only and runs user code with no capability (and, under root,
  as a user that does not own the file), so it can neither write, chmod nor remount them;
* the process runner, which isolates nothing, gets copies, never links;
* ``verify`` (run by ``tusk fsck``) compares every cached file with the store and removes any
  that differ, so a file damaged by other means is reported and then rebuilt on next use.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import blake3

ABANDONED = 3600.0  # a temporary file older than this has no live writer


class ContentCache:
    """Whole files by content hash under ``root``."""

    def __init__(self, root: Path, reader: Any) -> None:
        self.root = root
        self.reader = reader
        root.mkdir(parents=True, exist_ok=True)

    def path_for(self, entry: Any) -> Path:
        h = entry.hash.hex()
        path = self.root / h[:2] / h
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{h}.{uuid.uuid4().hex[:8]}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                self.reader.copy_to_fd(entry.chunks, fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        return path


def cached_hashes(root: Path) -> dict[bytes, Path]:
    """Content hash -> cached file, for every complete file in the cache at ``root``."""
    found: dict[bytes, Path] = {}
    if not root.is_dir():
        return found
    for sub in root.iterdir():
        if not sub.is_dir():
            continue
        for f in sub.iterdir():
            if f.name.startswith("."):
                continue  # a file still being written (or left by a kill: see verify)
            try:
                found[bytes.fromhex(f.name)] = f
            except ValueError:
                continue
    return found


def verify(root: Path, chunks_of: Callable[[set[bytes]], dict[bytes, Iterable[Any]]],
           read: Callable[[Iterable[Any]], Iterator[bytes]]) -> list[str]:
    """Check every cached file against the store; remove and report the ones that differ.

    ``chunks_of(hashes)`` gives the chunk list of each content hash the store still knows;
    ``read(chunks)`` yields a file's bytes from the store. A cached file whose content the
    store no longer holds is simply dropped (it can never be asked for again), as are
    half-written temporary files.
    """
    problems: list[str] = []
    files = cached_hashes(root)
    known = chunks_of(set(files)) if files else {}
    for h, path in sorted(files.items()):
        chunks = known.get(h)
        if chunks is None:
            path.unlink(missing_ok=True)  # stale: nothing in the store has this content now
            continue
        want = blake3.blake3()
        try:
            for piece in read(chunks):
                want.update(piece)
        except Exception:  # noqa: BLE001, S112 - the store check reports unreadable chunks
            continue
        got = blake3.blake3()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                got.update(block)
        if got.digest() != want.digest():
            problems.append(f"input cache file {h.hex()[:16]} differs from the store; "
                            "removed (it is rebuilt when next used)")
            path.unlink(missing_ok=True)
    stale = time.time() - ABANDONED
    for sub in root.iterdir() if root.is_dir() else ():
        for f in sub.glob(".*") if sub.is_dir() else ():
            try:
                if f.stat().st_mtime < stale:
                    f.unlink()  # left by a writer killed mid-copy
            except FileNotFoundError:
                pass
    return problems
