"""Helpers shared by the command modules: opening the service and common options."""

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
        from tusk.pfs.service import PfsService

        _service = PfsService.open()
        _service.wait_hook = _throttled_kick
    return _service


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
        from tusk.pps.service import PpsService

        _pps = PpsService(pfs())
    return _pps


def kick() -> None:
    """Make sure a controller will process what the command just changed (embedded mode)."""
    import os

    if os.environ.get("TUSK_NO_CONTROLLER"):
        return
    from sqlalchemy import select

    from tusk.storage import schema

    svc = pfs()
    with svc.b.db.read() as conn:
        t = schema.branch_triggers
        if (conn.execute(select(schema.pipelines.c.id).limit(1)).first() is None and
                conn.execute(select(t.c.branch_id).where(t.c.cron_spec != "").limit(1)).first() is None):
            return  # nothing a controller could do: no pipelines, no cron triggers
    from tusk.pps.controller import ensure_running

    ensure_running(svc.b.root)


def project_option(f: Callable) -> Callable:
    return click.option(
        "--project", default=None, metavar="PROJECT",
        help="Project of the repo (default: 'default'; or write project/repo).",
    )(f)
