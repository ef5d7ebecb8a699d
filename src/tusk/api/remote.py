"""The services over HTTP: ``RemotePfs`` and ``RemotePps`` have the methods of ``PfsService``
and ``PpsService`` (the allow-list of ``methods.py``) and return the same dataclasses, so the
CLI and the SDK use either without knowing which they hold.

Arguments are bound to the real method's signature here, so a wrong call fails before it is
sent, and go over the wire as keyword arguments. A server error comes back as the same
``TuskError`` class with the same message. Uploads and downloads stream in pieces of
``PIECE`` bytes.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Self

from tusk import errors
from tusk.api import codec
from tusk.api.methods import (
    BYTES,
    CALL,
    PFS_METHODS,
    PPS_METHODS,
    SESSION,
    STREAM,
    TRANSACTION_HEADER,
)

PIECE = 1 << 20


def _raise_for(status: int, body: bytes) -> None:
    try:
        err = json.loads(body)["error"]
        kind, message = str(err.get("type", "")), str(err.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        kind, message = "", body.decode("utf-8", "replace").strip()[:200] or f"HTTP {status}"
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.TuskError):
        raise cls(message)
    if status == 401:
        raise errors.TuskError(f"server refused the request: {message}")
    raise errors.TuskError(f"server error: {message}" if status >= 500 else message)


class Connection:
    """One HTTP connection pool to a server, with its address and auth token."""

    def __init__(self, address: str, auth_token: str | None = None) -> None:
        import httpx

        address = address.rstrip("/")
        if "://" not in address:
            address = "http://" + address
        self.address = address
        headers = {"Authorization": f"Bearer {auth_token}"} if auth_token else {}
        # Waits (wait commit/job) may take as long as a pipeline runs: no read timeout.
        self.http = httpx.Client(base_url=address, headers=headers,
                                 timeout=httpx.Timeout(None, connect=10.0))

    def _send(self, path: str, *, json_body: Any = None, content: Any = None,
              params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
              stream: bool = False) -> Any:
        import httpx

        req = self.http.build_request("POST", path, json=json_body, content=content, params=params,
                                      headers=headers)
        try:
            resp = self.http.send(req, stream=stream)
        except httpx.TransportError as e:
            raise errors.TuskError(f"cannot reach the tusk server at {self.address}: {e}") from None
        if resp.status_code >= 400:
            body = resp.read()
            resp.close()
            _raise_for(resp.status_code, body)
        return resp

    def call(self, path: str, kwargs: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        resp = self._send(path, json_body=codec.encode(kwargs), headers=headers)
        return codec.decode(resp.json()["result"])

    def stream_items(self, path: str, kwargs: dict[str, Any],
                     headers: dict[str, str] | None = None) -> Iterator[Any]:
        resp = self._send(path, json_body=codec.encode(kwargs), headers=headers, stream=True)
        try:
            for line in resp.iter_lines():
                if not line:
                    continue
                msg = json.loads(line)
                if "error" in msg:
                    _raise_for(500 if msg["error"].get("type") == "InternalError" else 400,
                               line.encode())
                yield codec.decode(msg["item"])
        finally:
            resp.close()

    def stream_bytes(self, path: str, kwargs: dict[str, Any],
                     headers: dict[str, str] | None = None) -> Iterator[bytes]:
        resp = self._send(path, json_body=codec.encode(kwargs), headers=headers, stream=True)
        try:
            yield from resp.iter_bytes(PIECE)
        finally:
            resp.close()

    def upload(self, path: str, params: dict[str, Any], pieces: Iterable[bytes]) -> Any:
        resp = self._send(path, content=pieces, params=params,
                          headers={"Content-Type": "application/octet-stream"})
        return codec.decode(resp.json()["result"])

    def health(self) -> dict[str, Any]:
        import httpx

        try:
            resp = self.http.get("/v1/health")
        except httpx.TransportError as e:
            raise errors.TuskError(f"cannot reach the tusk server at {self.address}: {e}") from None
        return resp.json()

    def close(self) -> None:
        self.http.close()


def _not_remote(what: str) -> errors.TuskError:
    try:
        import click

        ctx = click.get_current_context(silent=True)
        what = f"'{ctx.command_path}'" if ctx is not None else what
    except ImportError:
        pass
    return errors.FailedPrecondition(
        f"{what} is not available against a server yet; run it on the server's machine"
        " (unset TUSK_ADDRESS or 'tusk context use local')")


class _Remote:
    """Shared by the two proxies: method lookup through the allow-list."""

    _domain: str
    _methods: dict[str, str]
    _cls: type
    remote = True

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transaction: str | None = None

    @property
    def b(self) -> Any:
        """The backend exists only on the server: commands that need it say so in one line."""
        raise _not_remote("this command")

    def _headers(self) -> dict[str, str] | None:
        return {TRANSACTION_HEADER: self.transaction} if self.transaction else None

    def _kwargs(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        sig = inspect.signature(getattr(self._cls, name))
        try:
            bound = sig.bind(None, *args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{name}(): {e}") from None
        out = dict(bound.arguments)
        out.pop(next(iter(sig.parameters)))  # self
        return out

    def __getattr__(self, name: str) -> Any:
        kind = self._methods.get(name)
        if kind is None or kind == SESSION:
            raise AttributeError(f"{type(self).__name__} has no method {name!r}")
        path = f"/v1/{self._domain}/{name}"

        def method(*args: Any, **kwargs: Any) -> Any:
            kw = self._kwargs(name, args, kwargs)
            if kind == CALL:
                return self.conn.call(path, kw, self._headers())
            if kind == STREAM:
                return self.conn.stream_items(path, kw, self._headers())
            if kind == BYTES:
                return self.conn.stream_bytes(path, kw, self._headers())
            raise AssertionError(kind)

        method.__name__ = name
        method.__doc__ = getattr(self._cls, name).__doc__
        return method


class RemotePfs(_Remote):
    """``PfsService`` on a server."""

    _domain = "pfs"
    _methods = PFS_METHODS
    wait_hook: Callable[[], None] | None = None  # the server's controller does the work

    def __init__(self, conn: Connection) -> None:
        from tusk.pfs.service import PfsService

        self._cls = PfsService
        super().__init__(conn)

    def modify(self, ref: Any, description: str = "") -> RemoteFileSession:
        kw = {"ref": ref, "description": description}
        sid = self.conn.call("/v1/pfs/modify", kw, self._headers())
        return RemoteFileSession(self.conn, sid)

    def close(self) -> None:
        self.conn.close()


class RemotePps(_Remote):
    """``PpsService`` on a server."""

    _domain = "pps"
    _methods = PPS_METHODS

    def __init__(self, pfs: RemotePfs) -> None:
        from tusk.pps.service import PpsService

        self._cls = PpsService
        self.pfs = pfs
        super().__init__(pfs.conn)

    def _headers(self) -> dict[str, str] | None:
        return self.pfs._headers()


def _pieces(stream: BinaryIO, progress: Callable[[int], None] | None) -> Iterator[bytes]:
    while True:
        piece = stream.read(PIECE)
        if not piece:
            return
        if progress:
            progress(len(piece))
        yield piece


def _open_local(local: Path | str) -> BinaryIO:
    try:
        return open(local, "rb")
    except OSError as e:
        raise errors.InvalidArgument(f"{local}: {e.strerror}") from None


def tar_stream(items: Iterable[tuple[str, Path | str]],
               progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """A POSIX (pax) tar of local files named by their destination paths, made piece by piece:
    headers from ``tarfile``, contents read ``PIECE`` bytes at a time, so memory stays flat
    however large the files are."""
    import tarfile

    pending = bytearray()
    for dest, local in items:
        with _open_local(local) as f:
            size = os.fstat(f.fileno()).st_size
            info = tarfile.TarInfo(dest.lstrip("/"))
            info.size, info.mode = size, 0o644
            pending += info.tobuf(tarfile.PAX_FORMAT)
            left = size
            while left:
                piece = f.read(min(PIECE, left))
                if not piece:
                    raise errors.Conflict(f"{local}: the file shrank while it was being sent")
                left -= len(piece)
                pending += piece
                if len(pending) >= PIECE:
                    yield bytes(pending)
                    pending.clear()
            pending += bytes(-size % tarfile.BLOCKSIZE)
        if progress:
            progress(size)
    pending += bytes(2 * tarfile.BLOCKSIZE)  # the end-of-archive marker
    yield bytes(pending)


class RemoteFileSession:
    """A ``FileSession`` held by the server: the same write methods, one commit at ``close``."""

    def __init__(self, conn: Connection, sid: str) -> None:
        self.conn = conn
        self.sid = sid
        self.commit: Any = None
        self._open = True

    def _op(self, op: str, kwargs: dict[str, Any]) -> Any:
        return self.conn.call(f"/v1/sessions/{self.sid}/{op}", kwargs)

    def put_stream(self, path: str, stream: BinaryIO, append: bool = False, progress=None) -> None:  # type: ignore[no-untyped-def]
        self.conn.upload(f"/v1/sessions/{self.sid}/put_stream",
                         {"path": path, "append": "true" if append else "false"},
                         _pieces(stream, progress))

    def put_bytes(self, path: str, data: bytes, append: bool = False) -> None:
        import io

        self.put_stream(path, io.BytesIO(data), append)

    def put_path(self, path: str, local: Path, append: bool = False) -> None:
        try:
            with open(local, "rb") as f:
                self.put_stream(path, f, append)
        except OSError as e:
            raise errors.InvalidArgument(f"{local}: {e.strerror}") from None

    def put_tar(self, stream: BinaryIO, dest_dir: str = "/", append: bool = False,
                progress=None) -> int:  # type: ignore[no-untyped-def]
        """Send a tar stream as it is; the server unpacks it into this session."""
        return int(self.conn.upload(f"/v1/sessions/{self.sid}/put_tar",
                                    {"dest": dest_dir, "append": "true" if append else "false"},
                                    _pieces(stream, progress)))

    def put_many(self, items: Iterable[tuple[str, Path | str]], append: bool = False, progress=None,  # type: ignore[no-untyped-def]
                 normalized: bool = False) -> int:
        """Many local files in one request: a tar stream made as it is sent (``tar_stream``)."""
        return int(self.conn.upload(f"/v1/sessions/{self.sid}/put_tar",
                                    {"dest": "/", "append": "true" if append else "false"},
                                    tar_stream(items, progress)))

    def delete(self, path: str, recursive: bool = False) -> None:
        self._op("delete", {"path": path, "recursive": recursive})

    def copy(self, src: Any, dest: str, append: bool = False) -> int:
        return int(self._op("copy", {"src": src, "dest": dest, "append": append}))

    def close(self) -> Any:
        self._open = False
        self.commit = self._op("close", {})
        return self.commit

    def abort(self) -> None:
        if self._open:
            self._open = False
            try:
                self._op("abort", {})
            except errors.TuskError:
                pass  # the server dropped it already

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if exc_type is None:
            self.close()
        else:
            self.abort()
