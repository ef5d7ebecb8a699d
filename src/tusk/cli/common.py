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
    return _service


def project_option(f: Callable) -> Callable:
    return click.option(
        "--project", default=None, metavar="PROJECT",
        help="Project of the repo (default: 'default'; or write project/repo).",
    )(f)
