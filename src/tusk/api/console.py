"""Serving the web console: the page at ``/`` and its assets under ``/console/``.

The console's files are public (they hold no data), so the bearer-auth middleware lets
``is_console_path`` paths through; every ``/v1`` call the page makes still needs the token.
Only the files named in ``ASSETS`` are served (no directory access), with a strict
Content-Security-Policy: the page loads nothing but its own script, style and the images it
builds from API responses (``blob:`` URLs).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import FileResponse, Response

from tusk.console import STATIC_DIR

PREFIX = "/console/"
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
    return path in ("/", "/index.html", "/favicon.ico") or (
        path.startswith(PREFIX) and path[len(PREFIX):] in ASSETS)


def console_url(host: str, port: int, token: str | None) -> str:
    """The address to open in a browser; the token rides in the fragment (never sent to a
    server, so it stays out of access logs), and the page moves it to sessionStorage."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"#token={token}" if token else "")


def mount_console(app: Any) -> None:
    """Add the console's routes to the FastAPI ``app``."""

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
