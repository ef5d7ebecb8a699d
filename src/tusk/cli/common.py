"""Helpers shared by the command modules: opening the service and common options.

With a server address (``TUSK_ADDRESS`` or a context, see ``tusk context``) ``pfs()`` and
``pps()`` are HTTP proxies (``tusk.api.remote``) with the same methods, so commands run
unchanged against a server.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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


def revive() -> None:
    """After a read command: if a job is in flight and no controller runs (it was killed),
    start one, so work never waits for the user's next change (embedded mode)."""
    import os

    if os.environ.get("TUSK_NO_CONTROLLER") or is_remote():
        return
    from tusk.pps.launch import ensure_running_if_in_flight

    ensure_running_if_in_flight(pfs())


def project_option(f: Callable) -> Callable:
    return click.option(
        "--project", default=None, metavar="PROJECT",
        help="Project of the repo (default: 'default'; or write project/repo).",
    )(f)


# -- numeric options ---------------------------------------------------------------------------
# Every number a user types is range-checked here, where click names the option in its one-line
# error: past these bounds SQLite (64-bit integers) and the clock's timeouts raise OverflowError.

MAX_INT64 = 2**63 - 1
MAX_SECONDS = 1e9  # ~31 years; threading's timeouts stop at ~9.2e9 s


def count(min: int = 0) -> click.IntRange:
    """A whole number from ``min`` up to what SQLite can store (counts, offsets, depths)."""
    return click.IntRange(min, MAX_INT64)


class Seconds(click.ParamType):
    """A finite, non-negative number of seconds (``--timeout``, ``--idle``)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
            self.fail(f"{value!r} is out of range: give seconds from 0 to {MAX_SECONDS:.0f}"
                      " (leave the option out for no limit)", param, ctx)
        return seconds


SECONDS = Seconds()
