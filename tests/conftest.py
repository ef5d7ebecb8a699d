"""Shared fixtures: a real PFS service on a fresh root (SQLite file + local object store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tusk.pfs.service import PfsService


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PfsService]:
    """A PfsService opened on an empty root under ``tmp_path``."""
    # The root's own config must decide the backends, not the developer's environment.
    monkeypatch.delenv("TUSK_METADATA_URL", raising=False)
    monkeypatch.delenv("TUSK_OBJECT_URL", raising=False)
    service = PfsService.open(tmp_path / "root")
    yield service
    service.close()
