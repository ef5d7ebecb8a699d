"""The supervisor's process records: a pid and a start time name one process group, and
``stop_recorded`` kills that group (children included) but never a process that merely reuses
the pid."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tusk.pps import supervisor as sv

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")


@pytest.fixture
def group() -> Iterator[subprocess.Popen[bytes]]:
    """A session leader with a child that outlives it if only the leader is killed."""
    proc = subprocess.Popen(["sh", "-c", "sleep 100 & wait"], start_new_session=True)
    yield proc
    sv._signal_group(proc.pid, 9)
    proc.wait()


def _write(root: Path, pid: int, start: int) -> Path:
    path = sv.run_file(root, "default", "p")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": pid, "start": start}))
    return path


def _children_gone(pgid: int, since: int) -> bool:
    deadline = time.monotonic() + 5
    while sv._group_running(pgid, since):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_stop_recorded_kills_the_whole_group(tmp_path: Path,
                                             group: subprocess.Popen[bytes]) -> None:
    start = sv.start_time(group.pid)
    assert start > 0 and sv._group_running(group.pid, start)
    path = _write(tmp_path, group.pid, start)
    assert sv.stop_recorded(tmp_path, "default", "p") is True
    group.wait(timeout=5)
    assert _children_gone(group.pid, start)  # the backgrounded sleep went too
    assert not path.exists()
    assert sv.stop_recorded(tmp_path, "default", "p") is False  # nothing recorded any more


def test_a_reused_pid_is_left_alone(tmp_path: Path, group: subprocess.Popen[bytes]) -> None:
    start = sv.start_time(group.pid)
    _write(tmp_path, group.pid, start - 1)  # as if an earlier process had had this pid
    assert sv.stop_recorded(tmp_path, "default", "p") is False
    assert group.poll() is None


def test_an_unreadable_record_is_ignored(tmp_path: Path) -> None:
    path = sv.run_file(tmp_path, "default", "p")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert sv.stop_recorded(tmp_path, "default", "p") is False
