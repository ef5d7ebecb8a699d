"""What the HTTP API answers, and how the OpenAPI schema describes it.

Every error is ``{"error": {"type", "message"}}`` with one line and the status of
``errors.HTTP_STATUS``; so are FastAPI's own refusals (a body that fails its request model, an
unknown route, a wrong HTTP method), turned into that shape here with the line of
``request_errors``. An exception that is not a ``TuskError`` is a bug: a 500 with one line,
the traceback in the server's log. The ``*_RESPONSES`` tables document each kind of route's
answers, so a schema-driven client (or fuzzer) knows the statuses and media types to expect.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from tusk.api.request_errors import one_line
from tusk.errors import Busy, TuskError, http_class, http_status

# A refused or failed request: the error's class (as the SDK raises it) and one line. Written
# out rather than a model's ``$ref``: FastAPI files a model under the route's own media type,
# and a streaming route's errors are still JSON.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error", "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["type", "message"], "properties": {
        "type": {"type": "string", "description": "the error's class, e.g. NotFound"},
        "message": {"type": "string", "description": "one line: what is wrong, how to fix it"},
    }}},
}


class NdjsonResponse(StreamingResponse):
    media_type = "application/x-ndjson"


class BytesResponse(StreamingResponse):
    media_type = "application/octet-stream"


_ERRORS = {"4XX": {"description": "refused: the error's one line says why",
                   "content": {"application/json": {"schema": ERROR_SCHEMA}}}}
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": 'one JSON line per item, {"item": ...}; {"error": ...} ends it if one'
                         " fails mid-way",
          "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}, **_ERRORS}
BYTES_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the file's bytes, as they are read",
          "content": {"application/octet-stream": {"schema": {"type": "string",
                                                               "format": "binary"}}}}, **_ERRORS}
RAW_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary"}}}}}


def call_responses(result: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """What a route answering one JSON value documents: ``result``'s shape, or an error."""
    return {200: {"model": result, "description": "the result"}, **_ERRORS}


def error_body(err: TuskError) -> dict[str, Any]:
    return {"error": {"type": http_class(err).__name__, "message": err.message}}


def error_response(err: BaseException) -> JSONResponse:
    """The answer for an exception raised while serving a request."""
    if isinstance(err, TuskError):
        retry = {"Retry-After": "1"} if isinstance(err, Busy) else None
        return JSONResponse(error_body(err), status_code=http_status(err), headers=retry)
    traceback.print_exception(err, file=sys.stderr)  # a bug: the server log keeps the traceback
    text = f"internal error: {type(err).__name__}: {err}".splitlines()[0]
    return JSONResponse({"error": {"type": "InternalError", "message": text}}, status_code=500)


def _refused(status: int, kind: str, message: str, headers: dict[str, str] | None = None
             ) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status,
                        headers=headers)


def install_handlers(app: FastAPI, names: dict[str, str]) -> None:
    """Answer FastAPI's own refusals in the API's error shape. ``names`` maps a route's path
    template to the name a refused body's line starts with (its method's)."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        template = getattr(request.scope.get("route"), "path", request.url.path)
        method = names.get(template) or template.rstrip("/").rsplit("/", 1)[-1]
        errors = []
        for e in exc.errors():
            loc = tuple(e.get("loc", ()))
            strip = bool(loc) and loc[0] in ("body", "query", "path", "header")
            errors.append({**e, "loc": loc[1:] if strip else loc})
        return _refused(400, "InvalidArgument", one_line(method, errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        path = request.url.path
        if exc.status_code == 404:
            return _refused(404, "NotFound", f"no API route {path} (the methods are listed at /docs)")
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("allow") or (exc.headers or {}).get("Allow") or "POST"
            return _refused(405, "InvalidArgument",
                            f"{request.method} {path} is not allowed: use {allowed}",
                            headers=exc.headers)
        return _refused(exc.status_code, "InvalidArgument", f"{path}: {exc.detail}",
                        headers=exc.headers)
