"""Helpers shared by the command modules: opening the service and common options.

With a server address (``TUSK_ADDRESS`` or a context, see ``tusk context``) ``pfs()`` and
``pps()`` are HTTP proxies (``tusk.api.remote``) with the same methods, so commands run
unchanged against a server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from tusk.pfs.service import PfsService

_service: PfsService | None = None


def pfs() -> PfsService:
    """The PFS service of the current root (opened once per process)."""
    global _service
    if _service is None:
        from tusk.config import current_context

        ctx = current_context()
        if ctx.address is not None:
            from tusk.api.remote import Connection, RemotePfs

            _service = RemotePfs(Connection(ctx.address, ctx.auth_token))  # type: ignore[assignment]
            return _service  # type: ignore[return-value]
        from tusk.pfs.service import PfsService

        _service = PfsService.open()
        _service.wait_hook = _throttled_kick
    return _service


def is_remote() -> bool:
    """Whether commands go to a server (its own controller runs the jobs)."""
    return getattr(pfs(), "remote", False)


_last_kick = 0.0


def _throttled_kick() -> None:
    """While a command waits, check every few seconds that a controller is still running."""
    import time

    global _last_kick
    if time.monotonic() - _last_kick > 3.0:
        _last_kick = time.monotonic()
        kick()


_pps = None


def pps():  # type: ignore[no-untyped-def]
    """The PPS service over the same root."""
    global _pps
    if _pps is None:
        if is_remote():
            from tusk.api.remote import RemotePps

            _pps = RemotePps(pfs())  # type: ignore[arg-type]
            return _pps
        from tusk.pps.service import PpsService

        _pps = PpsService(pfs())
    return _pps


def kick() -> None:
    """Make sure a controller will process what the command just changed (embedded mode)."""
    import os

    if os.environ.get("TUSK_NO_CONTROLLER") or is_remote():
        return
    from tusk.pps.launch import ensure_running_if_needed

    ensure_running_if_needed(pfs())


def project_option(f: Callable) -> Callable:
    return click.option(
        "--project", default=None, metavar="PROJECT",
        help="Project of the repo (default: 'default'; or write project/repo).",
    )(f)
