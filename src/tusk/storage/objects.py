"""Object stores: where immutable, content-addressed bytes live.

An object store maps string keys (``packs/ab/abcd...``) to immutable byte strings. Objects are
written once, atomically (a reader sees the whole object or nothing), and never modified; only
garbage collection deletes them. Everything above this module goes through the ``ObjectStore``
Protocol, so the local directory used by the embedded default and the S3 backend used at scale
are interchangeable. ``MemoryObjectStore`` is an in-memory twin for fast unit tests.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from tusk.errors import NotFound


@runtime_checkable
class ObjectStore(Protocol):
    """The contract every object backend meets (see tests/contract/test_objects.py)."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically."""

    def put_file(self, key: str, path: Path) -> None:
        """Store the local file ``path`` under ``key`` atomically; the file is consumed."""

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes ``[offset, offset+length)`` of an object (to the end if ``length`` is None)."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None:
        """Remove an object; removing a missing object is not an error."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix``, in sorted order."""

    def scratch_dir(self) -> Path:
        """A local directory for temporary files that ``put_file`` can consume cheaply."""

    def local_path(self, key: str) -> Path | None:
        """The object's path on this machine if it has one (for zero-copy reads), else None."""


class LocalObjectStore:
    """Objects as files under a directory; atomic by write-to-temp then rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad object key {key!r}")
        return self.root / key

    def scratch_dir(self) -> Path:
        return self._tmp

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        tmp = self._tmp / uuid.uuid4().hex
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.put_file(key, tmp)

    def put_file(self, key: str, path: Path) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # rename is atomic on one filesystem; the scratch dir lives under the same root.
        os.replace(path, dest)

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                if offset:
                    f.seek(offset)
                return f.read() if length is None else f.read(length)
        except FileNotFoundError:
            raise NotFound(f"object {key} not found in {self.root}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"object {key} not found in {self.root}") from None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def list(self, prefix: str = "") -> Iterator[str]:
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            if rel == "tmp":
                dirnames[:] = []
                continue
            base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            keys.extend(base + name for name in filenames if (base + name).startswith(prefix))
        return iter(sorted(keys))


class MemoryObjectStore:
    """An in-memory twin of the local store, for unit tests (scratch files still use a dir)."""

    def __init__(self, scratch: Path) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._scratch = Path(scratch)
        self._scratch.mkdir(parents=True, exist_ok=True)

    def scratch_dir(self) -> Path:
        return self._scratch

    def local_path(self, key: str) -> Path | None:
        return None

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._lock:
            self._objects[key] = bytes(data)

    def put_file(self, key: str, path: Path) -> None:
        data = Path(path).read_bytes()
        os.unlink(path)
        self.put_bytes(key, data)

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            data = self._objects[key]
        except KeyError:
            raise NotFound(f"object {key} not found in memory store") from None
        end = len(data) if length is None else offset + length
        return data[offset:end]

    def exists(self, key: str) -> bool:
        return key in self._objects

    def size(self, key: str) -> int:
        return len(self.read(key))

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in list(self._objects) if k.startswith(prefix)))


def open_object_store(url: str) -> ObjectStore:
    """The object store for a backend URL (``file:///path``; ``s3://`` arrives with its issue)."""
    if url.startswith("file://"):
        return LocalObjectStore(Path(url[len("file://"):]))
    from tusk.errors import InvalidArgument

    raise InvalidArgument(f"object store URL {url!r} is not supported; use file:///path")
