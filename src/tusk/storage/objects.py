"""Object stores: where immutable, content-addressed bytes live.

An object store maps string keys (``packs/ab/abcd...``) to immutable byte strings. Objects are
written once, atomically (a reader sees the whole object or nothing), and never modified; only
garbage collection deletes them. Everything above this module goes through the ``ObjectStore``
Protocol, so the local directory used by the embedded default and the S3 backend used at scale
are interchangeable. ``MemoryObjectStore`` is an in-memory twin for fast unit tests.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from tusk.errors import NotFound
from tusk.storage.scratch import scratch_name


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

    def mtime(self, key: str) -> float:
        """When the object was stored (seconds since the epoch); GC's grace for young orphans."""

    def delete(self, key: str) -> None:
        """Remove an object; removing a missing object is not an error."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix``, in sorted order."""

    def scratch_dir(self) -> Path:
        """A local directory for temporary files that ``put_file`` can consume cheaply."""

    def local_path(self, key: str) -> Path | None:
        """The object's path on this machine if it has one (for zero-copy reads), else None."""


SCRATCH = "tmp"  # LocalObjectStore's scratch directory; no key may live under it


def check_key(key: str) -> str:
    """Refuse keys that are not plain relative ``a/b/c`` names (ValueError names the key).

    Every part must be non-empty and not ``.`` or ``..`` (so a key can never escape the store
    or name the same object two ways), and the scratch directory's name is reserved.
    """
    parts = key.split("/")
    if "\0" in key or any(p in ("", ".", "..") for p in parts) or parts[0] == SCRATCH:
        raise ValueError(f"bad object key {key!r}")
    return key


class LocalObjectStore:
    """Objects as files under a directory; atomic by write-to-temp then rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / SCRATCH
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def scratch_dir(self) -> Path:
        return self._tmp

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._path(key)  # refuse a bad key before writing anything
        tmp = self._tmp / scratch_name("put")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self.put_file(key, tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, key: str, path: Path) -> None:
        dest = self._path(key)
        new_dirs = not dest.parent.is_dir()
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._replace(path, dest)
        # The rename is durable only once its directory is synced (and a new directory's parent).
        _fsync_dir(dest.parent)
        if new_dirs:
            for d in dest.parent.parents:
                _fsync_dir(d)
                if d == self.root:
                    break

    def _replace(self, path: Path, dest: Path) -> None:
        # rename is atomic on one filesystem; the scratch dir lives under the same root.
        try:
            os.replace(path, dest)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            # A file from another filesystem: copy it into scratch first, then rename.
            tmp = self._tmp / scratch_name("copy")
            try:
                shutil.copyfile(path, tmp)
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            os.unlink(path)

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

    def mtime(self, key: str) -> float:
        try:
            return self._path(key).stat().st_mtime
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
            if rel == SCRATCH:
                dirnames[:] = []
                continue
            base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            keys.extend(base + name for name in filenames if (base + name).startswith(prefix))
        return iter(sorted(keys))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MemoryObjectStore:
    """An in-memory twin of the local store, for unit tests (scratch files still use a dir)."""

    def __init__(self, scratch: Path) -> None:
        self._objects: dict[str, bytes] = {}
        self._mtimes: dict[str, float] = {}
        self._lock = threading.Lock()
        self._scratch = Path(scratch)
        self._scratch.mkdir(parents=True, exist_ok=True)

    def scratch_dir(self) -> Path:
        return self._scratch

    def local_path(self, key: str) -> Path | None:
        return None

    def put_bytes(self, key: str, data: bytes) -> None:
        check_key(key)
        with self._lock:
            self._objects[key] = bytes(data)
            self._mtimes[key] = time.time()

    def put_file(self, key: str, path: Path) -> None:
        check_key(key)
        data = Path(path).read_bytes()
        os.unlink(path)
        self.put_bytes(key, data)

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        check_key(key)
        try:
            data = self._objects[key]
        except KeyError:
            raise NotFound(f"object {key} not found in memory store") from None
        end = len(data) if length is None else offset + length
        return data[offset:end]

    def exists(self, key: str) -> bool:
        return check_key(key) in self._objects

    def size(self, key: str) -> int:
        return len(self.read(key))

    def mtime(self, key: str) -> float:
        try:
            return self._mtimes[check_key(key)]
        except KeyError:
            raise NotFound(f"object {key} not found in memory store") from None

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)
            self._mtimes.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in list(self._objects) if k.startswith(prefix)))


def open_object_store(url: str) -> ObjectStore:
    """The object store for a backend URL (``file:///path``; ``s3://`` arrives with its issue)."""
    if url.startswith("file://"):
        return LocalObjectStore(Path(url[len("file://"):]))
    from tusk.errors import InvalidArgument

    raise InvalidArgument(f"object store URL {url!r} is not supported; use file:///path")
