"""Fixtures of the fault suite: the e2e ``tusk`` fixture (the real executable on a fresh root)
and the knobs that bound how long the suite runs.

``TUSK_FAULT_TRIALS`` sets how many random kill points each crash test tries (default small
enough for CI on two cores; ``bench/soak.py`` runs hundreds).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_E2E = Path(__file__).resolve().parent.parent / "e2e"
sys.path.insert(0, str(_E2E))  # server_helpers, pipeline_helpers

_spec = importlib.util.spec_from_file_location("tusk_e2e_conftest", _E2E / "conftest.py")
assert _spec is not None and _spec.loader is not None
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)

Tusk = _e2e.Tusk


@pytest.fixture
def tusk(tmp_path: Path) -> Tusk:
    return _e2e._make(tmp_path)
