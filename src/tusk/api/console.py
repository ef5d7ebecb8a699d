"""Serving the web console: the page at ``/`` and its assets under ``/console/``.

The console's files are public (they hold no data), so the bearer-auth middleware lets
``is_console_path`` paths through; every ``/v1`` call the page makes still needs the token.
Only the files named in ``ASSETS`` are served (no directory access), with a strict
Content-Security-Policy: the page loads nothing but its own script, style and the images it
builds from API responses (``blob:`` URLs).

Downloads stream to disk through one-use links: a plain link cannot carry the bearer token,
so the page asks ``POST /v1/console/download_link`` (with the token) for a link to one file,
``/console/download/<nonce>/<name>``, which works once, within ``LINK_TTL`` seconds. The
browser then saves the file as it arrives; nothing holds it in memory.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any
from urllib.parse import quote

from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from tusk.api.request_models import DownloadLinkRequest
from tusk.console import STATIC_DIR

PREFIX = "/console/"
DOWNLOADS = "/console/download/"
LINK_TTL = 60.0  # seconds a download link stays usable (it is used once, at once)
ASSETS: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:;"
       " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_console_path(path: str) -> bool:
    """Whether ``path`` is one of the console's public files (served without the token)."""
    return path in ("/", "/index.html", "/favicon.ico") or path.startswith(DOWNLOADS) or (
        path.startswith(PREFIX) and path[len(PREFIX):] in ASSETS)


class DownloadLinks:
    """One-use, short-lived links to files, handed to a page that holds the token."""

    def __init__(self) -> None:
        self._links: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    def make(self, ref: Any) -> str:
        nonce = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._links = {k: v for k, v in self._links.items() if v[1] > now}  # drop expired
            self._links[nonce] = (ref, now + LINK_TTL)
        return nonce

    def take(self, nonce: str) -> Any | None:
        with self._lock:
            ref, until = self._links.pop(nonce, (None, 0.0))
        return ref if until > time.monotonic() else None


def console_url(host: str, port: int, token: str | None) -> str:
    """The address to open in a browser; the token rides in the fragment (never sent to a
    server, so it stays out of access logs), and the page moves it to sessionStorage."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"#token={token}" if token else "")


def mount_console(app: Any, pfs: Any, error_response: Any, names: dict[str, str]) -> None:
    """Add the console's routes to the FastAPI ``app``; ``pfs`` serves the downloads,
    ``error_response`` turns an exception into the API's error answer, and ``names`` gets the
    name a refused body's line starts with."""
    from tusk.api.responses import call_responses
    from tusk.api.result_models import named_result
    from tusk.errors import InvalidArgument
    from tusk.pfs.refs import CommitRef, FileRef

    links = DownloadLinks()

    def download_link(body: DownloadLinkRequest) -> Response:
        """A one-use link that streams one file (``ref``: a FileRef), for a browser download."""
        try:
            ref = body.ref.value()
            info = pfs.inspect_file(ref)
            if info.type != "file":
                raise InvalidArgument(f"{info.path} is a directory: only files download")
            # Pin the commit: the link gives the bytes the page showed, even if the branch moves.
            pinned = FileRef(CommitRef(ref.commit.repo, None, info.commit), info.path)
            name = info.path.rsplit("/", 1)[-1]
            return JSONResponse({"result": f"{DOWNLOADS}{links.make(pinned)}/{quote(name)}"})
        except Exception as e:  # noqa: BLE001 (no request may take the server down)
            return error_response(e)

    def download(nonce: str, name: str) -> Response:
        ref = links.take(nonce)
        if ref is None:
            return Response(b"this download link was used already or has expired: download again"
                            b" from the console\n", status_code=404, media_type="text/plain")
        try:
            size = pfs.inspect_file(ref).size
            chunks = pfs.read_file(ref)
        except Exception as e:  # noqa: BLE001 (no request may take the server down)
            return error_response(e)
        headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
                   "Content-Length": str(size), "Cache-Control": "no-store",
                   "X-Content-Type-Options": "nosniff"}
        return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)

    def page() -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                            headers=HEADERS)

    def favicon() -> Response:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type=ASSETS["favicon.svg"],
                            headers=HEADERS)

    def asset(name: str) -> Response:
        if name not in ASSETS:
            return Response(b"not found", status_code=404, media_type="text/plain")
        return FileResponse(STATIC_DIR / name, media_type=ASSETS[name], headers=HEADERS)

    for path in ("/", "/index.html"):
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
    app.add_api_route(PREFIX + "{name}", asset, methods=["GET"], include_in_schema=False)
    app.add_api_route("/v1/console/download_link", download_link, methods=["POST"],
                      tags=["console"], response_model=None, responses=call_responses(named_result("console", "download_link", str)))
    names["/v1/console/download_link"] = "download_link"
    app.add_api_route(DOWNLOADS + "{nonce}/{name}", download, methods=["GET"],
                      include_in_schema=False)
