"""Fixtures for contract suites: every implementation of a Protocol runs the same tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tusk.storage.db import Database
from tusk.storage.objects import LocalObjectStore, MemoryObjectStore, ObjectStore

STORES = ["local", "memory"]


def make_store(kind: str, base: Path) -> ObjectStore:
    if kind == "local":
        return LocalObjectStore(base / "objects")
    if kind == "memory":
        return MemoryObjectStore(base / "scratch")
    raise AssertionError(kind)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each ObjectStore implementation in turn."""
    return make_store(request.param, tmp_path)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A fresh SQLite metadata database in a real file."""
    d = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    yield d
    d.dispose()
