"""Where put-file content comes from: local files and directories, URLs, list files, tars.

Each source is turned into (destination path, opener) pairs following pachctl's destination
rules: a destination ending in '/' is a directory to put into; no destination means the
source's base name; a recursive directory keeps its relative layout under the destination.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import urllib.parse
from collections.abc import Iterator
from operator import attrgetter
from pathlib import Path
from typing import BinaryIO

from tusk.errors import InvalidArgument, NotFound
from tusk.pfs.names import GLOB_CHARS, MAX_PATH_BYTES, normalize_path


class SourceReader(io.RawIOBase):
    """A put's source stream whose read failures are the user's error, naming the source.

    ``/proc/self/mem``, a vanished network share or a reset connection fail in ``read``; the
    store's own failures (a full disk) stay what they are, since only reads go through here.
    """

    def __init__(self, stream: BinaryIO, name: str) -> None:
        super().__init__()
        self._stream = stream
        self.name_ = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        try:
            if hasattr(self._stream, "readinto"):
                return self._stream.readinto(buffer)  # type: ignore[attr-defined]
            data = self._stream.read(len(buffer))
        except OSError as e:
            raise _unreadable(self.name_, e) from None
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except OSError as e:
            raise _unreadable(self.name_, e) from None

    def close(self) -> None:
        if self._stream is not _stdin():
            self._stream.close()
        super().close()


def _stdin() -> BinaryIO:
    import sys

    return sys.stdin.buffer


def _unreadable(name: str, e: OSError) -> InvalidArgument:
    return InvalidArgument(f"cannot read {name}: {e.strerror or e}")


def open_local(path: str | Path) -> SourceReader:
    """A local file, device or pipe opened for a put, read errors naming it."""
    try:
        return SourceReader(open(path, "rb"), str(path))  # closed with the reader
    except OSError as e:
        raise _unreadable(str(path), e) from None


def streams_only(path: str | Path) -> bool:
    """Whether a local source must be streamed rather than sized and mapped: a pipe, a device
    (``/dev/zero`` never ends) or a file whose size says nothing (``/proc``'s report 0)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise _unreadable(str(path), e) from None
    return not stat.S_ISREG(st.st_mode) or st.st_size == 0


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def join_dest(dest_dir: str, name: str) -> str:
    return normalize_path(dest_dir.rstrip("/") + "/" + name)


def destination(source: str, dest: str | None, many: bool, full_path: bool = False) -> str:
    """Where one source file lands (pachctl's rules)."""
    if full_path and not is_url(source):
        return normalize_path(os.path.abspath(source))
    if is_url(source):
        base = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(source).path))
    else:
        base = os.path.basename(source.rstrip("/"))
    if dest is None or dest == "" or dest == "/":
        if source == "-":
            raise InvalidArgument("name a destination path for stdin: repo@branch:/path")
        if not base:
            raise InvalidArgument(f"{source} has no file name; name a destination: repo@branch:/path")
        return normalize_path("/" + base)
    if dest.endswith("/") or many:
        if source == "-":
            raise InvalidArgument("stdin needs a file destination, not a directory")
        if not base:
            raise InvalidArgument(f"{source} has no file name; name a destination: repo@branch:/path")
        return join_dest(dest, base)
    return normalize_path(dest)


def walk_local(src: Path | str, dest_dir: str) -> Iterator[tuple[str, str]]:
    """Files below a local directory as (normalized destination, local path), sorted.

    Uses ``os.scandir`` file types rather than a ``stat`` per file: on a large tree the stats
    cost more than reading the files. Names are checked a directory at a time, since a bulk put
    spends its whole per-file budget in a few microseconds.
    """
    src = str(src)
    if not os.path.exists(src):
        raise NotFound(f"{src}: no such file or directory")
    base = normalize_path(dest_dir)
    base = "" if base == "/" else base
    if os.path.isfile(src):
        yield base + "/" + _checked_name(os.path.basename(src), src), src
        return
    for batch in _walk(src, base):
        yield from batch


def _walk(local_dir: str, dest: str) -> Iterator[list[tuple[str, str]]]:
    """The files of ``local_dir`` and below, in runs of consecutive files of one directory.

    Runs rather than single files: each file then passes through one generator, not one per
    directory level.
    """
    with os.scandir(local_dir) as it:
        entries = sorted(it, key=_entry_name)
    _check_names(entries)
    prefix = dest + "/"
    if (len(prefix) + 255) * 4 > MAX_PATH_BYTES:  # deep enough that a name could break the limit
        for e in entries:
            normalize_path(prefix + e.name)
    run: list[tuple[str, str]] = []
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            if run:
                yield run
                run = []
            yield from _walk(e.path, prefix + e.name)
        elif e.is_file():  # follows a symlink to a file; sockets and broken links are not data
            run.append((prefix + e.name, e.path))
    if run:
        yield run


_entry_name = attrgetter("name")


def _check_names(entries: list[os.DirEntry]) -> None:
    """Refuse a directory holding a name that cannot be a PFS path component.

    One test over all the names joined; only a directory that fails it is looked at name by
    name, for the precise error. scandir never returns "." or "..".
    """
    joined = "".join([e.name for e in entries])
    if not joined.isprintable() or not GLOB_CHARS.isdisjoint(joined):
        for e in entries:
            _checked_name(e.name, e.path)


def _checked_name(name: str, local: str) -> str:
    if not name.isprintable() or not GLOB_CHARS.isdisjoint(name):
        normalize_path("/" + name)  # raises the precise error
    if name in (".", ".."):
        raise InvalidArgument(f"{local}: bad file name")
    return name


def open_source(item: str) -> SourceReader:
    """A put's source by name: '-' (stdin, left open), a URL or a local file."""
    if item == "-":
        return SourceReader(_stdin(), "stdin")
    if is_url(item):
        return SourceReader(open_url(item), item)
    return open_local(item)


def open_url(url: str) -> BinaryIO:
    # Imported here: urllib.request costs ~25 ms, which every 'tusk put file' would pay.
    import urllib.error
    import urllib.request

    try:
        return urllib.request.urlopen(url, timeout=60)  # http(s) only: see is_url
    except urllib.error.HTTPError as e:
        raise NotFound(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise InvalidArgument(f"{url}: cannot fetch ({reason})") from None


MAX_LIST_BYTES = 64 << 20  # a million sources; and /dev/zero is not read to its end


def read_list_file(path: str) -> list[str]:
    """Sources named one per line in a list file (``-i``); blank lines and '#' comments skipped."""
    try:
        if path == "-":
            data = _stdin().read(MAX_LIST_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_LIST_BYTES + 1)
    except FileNotFoundError:
        raise NotFound(f"list file {path}: no such file") from None
    except IsADirectoryError:
        raise InvalidArgument(f"list file {path} is a directory; give a file of sources") from None
    except OSError as e:
        raise _unreadable(f"list file {path}", e) from None
    if len(data) > MAX_LIST_BYTES:
        raise InvalidArgument(f"list file {path} is larger than {MAX_LIST_BYTES >> 20} MiB")
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        raise InvalidArgument(
            f"list file {path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def iter_tar(stream: BinaryIO, dest_dir: str) -> Iterator[tuple[str, BinaryIO]]:
    """Regular files of a (possibly gzipped) tar stream as (destination, member stream)."""
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                f = tar.extractfile(member)
                if f is None:
                    continue
                # Drop only "." and empty parts ("./a", "/a"): a leading dot is part of a name.
                name = "/".join(p for p in member.name.split("/") if p not in ("", "."))
                if name:
                    yield join_dest(dest_dir, name), f
    except tarfile.TarError as e:
        raise InvalidArgument(f"not a readable tar archive ({e})") from None
