"""The controller's worker pool: it tops workers up, and gives up on workers that die at start."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tusk.errors import FailedPrecondition
from tusk.pfs.refs import parse_commit, parse_repo
from tusk.pfs.service import PfsService
from tusk.pps.controller import Controller
from tusk.pps.service import PpsService
from tusk.pps.spec import parse_spec
from tusk.pps.task_run import WorkerPool

DIES = [sys.executable, "-c", "import sys; sys.exit(3)"]  # a worker that cannot start


def test_workers_that_die_as_they_start_are_given_up_on_with_a_reason(tmp_path: Path) -> None:
    pool = WorkerPool(tmp_path, 5.0, argv=DIES)
    deadline = time.monotonic() + 30
    with pytest.raises(FailedPrecondition, match=r"3 worker processes in a row exited as they "
                                                 r"started \(exit code 3\); see .*controller.log"):
        while time.monotonic() < deadline:
            pool.ensure(1)
            time.sleep(0.05)
    pool.close()


def test_workers_that_exit_when_idle_are_simply_replaced(tmp_path: Path) -> None:
    pool = WorkerPool(tmp_path, 5.0, argv=[sys.executable, "-c", "pass"])
    for _ in range(20):
        pool.ensure(1)  # never raises: exiting 0 is a worker going idle
        time.sleep(0.05)
    pool.close()


def test_a_job_whose_workers_cannot_start_fails_and_says_why(svc: PfsService,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUSK_RUNNER", "process")
    monkeypatch.delenv("TUSK_WORKERS", raising=False)
    svc.create_repo(parse_repo("in"))
    with svc.modify(parse_commit("in@master")) as fs:
        fs.put_bytes("/a", b"1")
    pps = PpsService(svc)
    ctl = Controller(svc, verbose=False)
    assert ctl.jobs.use_tasks
    ctl.jobs.pool = WorkerPool(svc.b.root, 5.0, argv=DIES)
    pps.create_pipeline(parse_spec({"pipeline": {"name": "copy"},
                                    "input": {"pfs": {"repo": "in", "glob": "/*"}},
                                    "transform": {"cmd": ["cp", "/pfs/in/a", "/pfs/out/"]}}, "t"))
    for _ in range(20):
        if not ctl.step():
            break
    (job,) = pps.list_jobs("copy")
    assert job.state == "FAILURE"
    assert "worker processes in a row exited as they started" in job.reason
    (d,) = pps.list_datums("copy", job.id)
    assert d.state == "FAILED" and "controller.log" in d.reason
