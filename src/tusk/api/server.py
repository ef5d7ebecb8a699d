"""The HTTP API: a thin RPC layer over the same service methods the CLI calls.

``POST /v1/pfs/<method>`` and ``POST /v1/pps/<method>`` take the method's keyword arguments as
a JSON object, checked against the method's request model (``request_models.py``, made from
its signature, so the OpenAPI schema describes every body) before the service is called, and
answer ``{"result": ...}`` (``codec.py``); only the methods listed in ``methods.py`` exist. Iterators answer JSON lines (``{"item": ...}`` each, ``{"error": ...}``
if one fails mid-way); ``read_file`` answers the file's bytes as they are read. Writes go
through write sessions: ``POST /v1/pfs/modify`` opens one, ``/v1/sessions/<id>/put_stream``
feeds a request body straight into the session's chunk writer, ``close`` lands the commit.
Neither side holds a file in memory. Errors answer ``{"error": {"type", "message"}}`` with the
status from ``errors.HTTP_STATUS``, a refused body a 400 naming the argument
(``responses.py``); an unexpected exception is a 500 with one line, and the server keeps
serving. With a token, every call but ``/v1/health`` (and the OpenAPI schema
and docs, which describe but do not touch data) needs ``Authorization: Bearer <token>``.
The web console's page and assets (``console.py``) are public too; the calls it makes are not.
"""

from __future__ import annotations

import copy
import hmac
import inspect
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import anyio.from_thread
from fastapi import Body, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from tusk.api import codec
from tusk.api.console import is_console_path, mount_console
from tusk.api.methods import (
    BYTES,
    CALL,
    PFS_METHODS,
    PPS_METHODS,
    SESSION,
    STREAM,
    TRANSACTION_HEADER,
)
from tusk.api.request_models import (
    SESSION_MODELS,
    Arguments,
    arguments,
    models,
)
from tusk.api.responses import (
    BYTES_RESPONSES,
    RAW_BODY,
    STREAM_RESPONSES,
    BytesResponse,
    NdjsonResponse,
    call_responses,
    error_response,
    install_handlers,
)
from tusk.api.result_models import named_result, result_model, result_type
from tusk.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from pathlib import Path

    from tusk.pfs.files import FileSession
    from tusk.pfs.service import PfsService

PUBLIC_PATHS = {"/v1/health", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"}
SESSION_IDLE = 3600.0  # an abandoned write session is aborted after this many idle seconds


class _BearerAuth:
    """ASGI middleware: refuse requests without the server's token (constant-time compare)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in PUBLIC_PATHS and not is_console_path(path):
            got = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(got, self.expected):
                msg = "missing or wrong auth token: set TUSK_AUTH_TOKEN or the context's --auth-token"
                resp = JSONResponse({"error": {"type": "Unauthorized", "message": msg}}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _BodyStream:
    """The request body as a blocking binary stream, for a sync endpoint (runs in a worker thread).

    Reads pull the next pieces from the event loop as they arrive, so the body never sits in
    memory whole; uvicorn stops reading the socket while we have not taken what it has.
    """

    def __init__(self, request: Request) -> None:
        self._it = request.stream().__aiter__()
        self._buf = bytearray()
        self._done = False

    async def _next(self) -> bytes:
        return await self._it.__anext__()

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._buf) < n):
            try:
                piece = anyio.from_thread.run(self._next)
            except StopAsyncIteration:
                self._done = True
                break
            self._buf += piece
        if n < 0 or n >= len(self._buf):
            out = bytes(self._buf)
            self._buf.clear()
        else:
            out = bytes(self._buf[:n])
            del self._buf[:n]
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Session:
    def __init__(self, fs: FileSession) -> None:
        self.fs = fs
        self.lock = threading.Lock()
        self.used = time.monotonic()


class Api:
    """The server's state: the root's service and the open write sessions."""

    def __init__(self, pfs: PfsService) -> None:
        self.pfs = pfs
        self.sessions: dict[str, _Session] = {}
        self.lock = threading.Lock()

    def pfs_for(self, request: Request) -> PfsService:
        """A per-request view of the service carrying the caller's transaction, if any."""
        svc = copy.copy(self.pfs)
        svc.transaction = request.headers.get(TRANSACTION_HEADER) or None
        return svc

    def target(self, domain: str, request: Request) -> Any:
        svc = self.pfs_for(request)
        if domain == "pfs":
            return svc
        from tusk.pps.service import PpsService

        return PpsService(svc)

    # -- sessions --------------------------------------------------------------------------------

    def open_session(self, fs: FileSession) -> str:
        sid = uuid.uuid4().hex
        with self.lock:
            self.sessions[sid] = _Session(fs)
            stale = [k for k, s in self.sessions.items() if time.monotonic() - s.used > SESSION_IDLE]
        for k in stale:
            self.end_session(k, abort=True)
        return sid

    def session(self, sid: str) -> _Session:
        with self.lock:
            s = self.sessions.get(sid)
        if s is None:
            raise NotFound(f"write session {sid} not found (it was closed or timed out)")
        s.used = time.monotonic()
        return s

    def end_session(self, sid: str, abort: bool) -> Any:
        with self.lock:
            s = self.sessions.pop(sid, None)
        if s is None:
            raise NotFound(f"write session {sid} not found (it was closed or timed out)")
        with s.lock:
            if abort:
                s.fs.__exit__(InvalidArgument, None, None)
                return None
            s.fs.__exit__(None, None, None)  # lands the changes (or raises), then unlocks
            return s.fs.commit


def _json_lines(first: Any, rest: Iterator[Any]) -> Iterator[bytes]:
    yield (json.dumps({"item": codec.encode(first)}) + "\n").encode()
    try:
        for item in rest:
            yield (json.dumps({"item": codec.encode(item)}) + "\n").encode()
    except Exception as e:  # noqa: BLE001 (the status is sent already: the error is the last line)
        body = json.loads(error_response(e).body)
        yield (json.dumps(body) + "\n").encode()


_END = object()


def _endpoint(api: Api, domain: str, name: str, kind: str,
              model: type[Arguments]) -> Callable[..., Response]:
    # ``transaction`` is declared for the schema; the per-request service reads the header.
    def endpoint(request: Request, body: Arguments | None = None,
                 transaction: str | None = None) -> Response:
        try:
            svc = api.target(domain, request)
            result = getattr(svc, name)(**arguments(body))
            if kind == SESSION:
                return JSONResponse({"result": api.open_session(result)})
            if kind == BYTES:
                return BytesResponse(result)
            if kind == STREAM:
                it = iter(result)
                first = next(it, _END)  # errors before the first item get their own status
                if first is _END:
                    return Response(b"", media_type=NdjsonResponse.media_type)
                return NdjsonResponse(_json_lines(first, it))
            return JSONResponse({"result": codec.encode(result)})
        except Exception as e:  # noqa: BLE001 (no request may take the server down)
            return error_response(e)

    endpoint.__name__ = f"{domain}_{name}"
    endpoint.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        _param("request", Request), body_parameter(model),
        _param("transaction", str | None, _TXN_HEADER),
    ], return_annotation=Response)
    return endpoint


def _param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation,
                             default=default)


def body_parameter(model: type[BaseModel]) -> inspect.Parameter:
    """The ``body`` parameter FastAPI reads a route's request model from. A method whose
    arguments all have defaults may be called without a body."""
    if any(f.is_required() for f in model.model_fields.values()):
        return _param("body", model, Body(...))
    return _param("body", model, Body(default=None))


_TXN_HEADER: Any = Header(default=None, alias=TRANSACTION_HEADER,
                          description="run the call inside this transaction (see start_transaction)")


def _describe(cls: type, name: str) -> tuple[str, str]:
    method = getattr(cls, name)
    doc = inspect.getdoc(method) or ""
    sig = str(inspect.signature(method)).replace("(self, ", "(").replace("(self)", "()")
    summary = doc.splitlines()[0] if doc else name.replace("_", " ")
    return summary, f"`{name}{sig}`\n\n{doc}\n\nBody: a JSON object of these keyword arguments."


def create_app(pfs: PfsService | None, token: str | None) -> Any:
    """The ASGI application over one opened root (``token``: None serves without auth).

    With ``pfs`` None it has the routes and their models but serves nothing: enough to read
    its OpenAPI schema (the fuzz test does, to parametrize before a server runs)."""
    from tusk.pfs.service import PfsService
    from tusk.pps.service import PpsService

    api = Api(pfs)
    app = FastAPI(title="tusk", version=_version(),
                  description="Pachyderm-style data versioning and pipelines. Each route calls "
                              "the service method of the same name (see the tusk SDK).")

    names: dict[str, str] = {}  # route -> the name its refusals start with

    @app.get("/v1/health", tags=["server"], response_model=Health)
    def health() -> dict[str, Any]:
        """Whether the server answers, and its version."""
        return {"ok": True, "version": _version()}

    for domain, table, cls in (("pfs", PFS_METHODS, PfsService), ("pps", PPS_METHODS, PpsService)):
        for name, kind in table.items():
            summary, description = _describe(cls, name)
            model = models(domain)[name]
            path = f"/v1/{domain}/{name}"
            names[path] = name
            response_class: type[Response] = JSONResponse
            if kind == CALL:
                responses = call_responses(result_model(domain, cls, name))
            elif kind == SESSION:  # the session's ID
                responses = call_responses(named_result(domain, name, str))
            elif kind == STREAM:
                responses, response_class = STREAM_RESPONSES, NdjsonResponse
            else:
                responses, response_class = BYTES_RESPONSES, BytesResponse
            app.add_api_route(path, _endpoint(api, domain, name, kind, model),
                              methods=["POST"], summary=summary, description=description,
                              tags=[domain], response_model=None, responses=responses,
                              response_class=response_class)

    @app.post("/v1/sessions/{sid}/put_stream", tags=["sessions"], response_model=None,
              responses=_session_responses("put_stream"), openapi_extra=RAW_BODY)
    def put_stream(sid: str, path: str, request: Request, append: bool = False) -> Response:
        """Write the request body (streamed, any size) to ``path`` in the session's commit."""
        try:
            s = api.session(sid)
            with s.lock:
                s.fs.put_stream(path, _BodyStream(request), append)  # type: ignore[arg-type]
            return JSONResponse({"result": None})
        except Exception as e:  # noqa: BLE001 (no request may take the server down)
            return error_response(e)

    @app.post("/v1/sessions/{sid}/put_tar", tags=["sessions"], response_model=None,
              responses=_session_responses("put_tar"), openapi_extra=RAW_BODY)
    def put_tar(sid: str, request: Request, dest: str = "/", append: bool = False) -> Response:
        """Put every regular file of the tar stream in the request body (optionally gzipped)
        under ``dest``: one request for a whole directory. Answers how many files it put."""
        try:
            s = api.session(sid)
            with s.lock:
                n = s.fs.put_tar(_BodyStream(request), dest, append)  # type: ignore[arg-type]
            return JSONResponse({"result": n})
        except Exception as e:  # noqa: BLE001 (no request may take the server down)
            return error_response(e)

    def session_op(sid: str, op: str, body: BaseModel | None) -> Response:
        try:
            if op in ("close", "abort"):
                return JSONResponse({"result": codec.encode(api.end_session(sid, op == "abort"))})
            s = api.session(sid)
            with s.lock:
                result = getattr(s.fs, op)(**arguments(body))
            return JSONResponse({"result": codec.encode(result)})
        except Exception as e:  # noqa: BLE001 (no request may take the server down)
            return error_response(e)

    for op in ("delete", "copy", "close", "abort"):
        path = f"/v1/sessions/{{sid}}/{op}"
        model = SESSION_MODELS.get(op, NoArguments)
        names[path] = op
        app.add_api_route(path, _session_endpoint(session_op, op, model), methods=["POST"],
                          tags=["sessions"], response_model=None,
                          responses=_session_responses(op),
                          summary=_SESSION_OPS[op])

    # The web console's page and assets (public; its /v1 calls are not) and its downloads.
    mount_console(app, pfs, error_response, names)
    install_handlers(app, names)
    return _BearerAuth(app, token) if token else app


class Health(BaseModel):
    ok: bool
    version: str


class NoArguments(Arguments):
    """An operation without arguments: an empty object, or no body."""


def _session_responses(op: str) -> dict[int | str, dict[str, Any]]:
    from tusk.pfs.model import CommitInfo

    results: dict[str, Any] = {"put_stream": None, "put_tar": int, "delete": None, "copy": int,
                               "close": CommitInfo | None, "abort": None}
    return call_responses(named_result("session", op, result_type(results[op])))


_SESSION_OPS = {
    "delete": "Delete a path in the session's commit (recursive: a directory).",
    "copy": "Copy a file or directory from any commit into the session's commit.",
    "close": "Land the session's changes as one commit; answers the commit.",
    "abort": "Drop the session's changes.",
}


def _session_endpoint(run: Callable[[str, str, BaseModel | None], Response], op: str,
                      model: type[Arguments]) -> Callable[..., Response]:
    def endpoint(sid: str, body: Arguments | None = None) -> Response:
        return run(sid, op, body)

    endpoint.__name__ = f"session_{op}"
    endpoint.__doc__ = _SESSION_OPS[op]
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [_param("sid", str), body_parameter(model)], return_annotation=Response)
    return endpoint


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tusk")
    except PackageNotFoundError:
        return "0"


def serve(host: str, port: int, token: str | None, say: Callable[[str], None] = print) -> None:
    """Run the root's controller and the HTTP API until interrupted (one server per root).

    The API answers at once. When a background controller (started by the CLI after a change)
    holds the root's controller lock, it is asked to exit between two jobs and this server's
    controller takes the lock then, on its own thread (``_ControllerThread``).
    """
    import uvicorn

    from tusk.errors import Busy
    from tusk.pfs.service import PfsService
    from tusk.pps.launch import release, try_serve_lock

    pfs = PfsService.open()
    root = pfs.b.root
    serve_fd = try_serve_lock(root)
    if serve_fd is None:
        raise Busy(f"another 'tusk serve' already runs for {root} (two servers on one root would"
                   " be two controllers); stop it first, or serve another root")
    try:
        controller = _ControllerThread(root, say)
        app = create_app(pfs, token)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                               access_log=False, timeout_graceful_shutdown=5))
        controller.start()
        try:
            say(f"tusk serve: listening on http://{host}:{port} (root {root}); API docs at /docs")
            server.run()
        finally:
            controller.stop()
    finally:
        release(serve_fd)


class _ControllerThread:
    """The server's controller, on a thread: takes the controller lock (waiting for a
    background controller to hand it over), then runs until the server stops."""

    def __init__(self, root: Path, say: Callable[[str], None]) -> None:
        from tusk.pps.launch import request_handover, try_lock

        self.root = root
        self.stop_event = threading.Event()
        self.fd = try_lock(root)
        if self.fd is None:
            request_handover(root)
            say("tusk serve: a background controller holds this root; it is asked to exit after"
                " its current job, and this server's controller takes over then")
        self.ctl = None
        self.thread = threading.Thread(target=self._run, name="tusk-controller", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        from tusk.pfs.service import PfsService
        from tusk.pps.controller import Controller
        from tusk.pps.launch import end_handover, try_lock

        while self.fd is None and not self.stop_event.is_set():
            self.fd = try_lock(self.root)
            if self.fd is None:
                self.stop_event.wait(0.1)
        end_handover(self.root)
        if self.fd is None:
            return  # the server stopped before the hand-over
        self.ctl = Controller(PfsService.open(self.root))
        while not self.stop_event.is_set():
            try:
                self.ctl.serve(idle=0, lock_fd=None, stop=self.stop_event)
            except Exception:  # noqa: BLE001 (a controller bug must not take the API down; log and go on)
                traceback.print_exc()
                self.stop_event.wait(1.0)

    def stop(self) -> None:
        from tusk.pps.launch import end_handover, release

        self.stop_event.set()
        self.thread.join(timeout=10)
        if self.ctl is not None:
            self.ctl.supervisor.stop_all()
        end_handover(self.root)
        if self.fd is not None and not self.thread.is_alive():
            release(self.fd)
