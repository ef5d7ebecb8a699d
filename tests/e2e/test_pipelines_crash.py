"""A controller killed with SIGKILL in the middle of a job loses nothing.

The test runs the controller itself in the foreground (``tusk controller --idle 5``, with
``TUSK_NO_CONTROLLER`` keeping the CLI from starting one in the background), kills it once a
few slow datums have started, and then lets an ordinary ``tusk wait commit`` start a new
controller, which must finish the job with complete output and no duplicates.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e

N = 6


def wait_for(condition, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("runner", ["default", "process"])
def test_controller_killed_mid_job(pipes: Pipes, runner: str) -> None:
    """With the process runner the killed controller's datums live on as orphans; they must
    not disturb the next controller's run of the same job."""
    p = pipes
    if runner == "process":
        p.t.env["TUSK_RUNNER"] = "process"
    p.t.env["TUSK_NO_CONTROLLER"] = "1"
    p.repo("in", {f"f{i}": str(i) for i in range(N)})
    p.create(spec("slow", pfs_input("in"),
                  bash("sleep 0.5; echo $(( $(cat $in) * 10 )) > /pfs/out/$(basename $in)")))
    assert p.controller_pids() == []  # nothing runs until we start it

    ctl = subprocess.Popen([p.t.exe, "controller", "--idle", "5"], env=p.t.env, cwd=p.t.cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        logs = p.root / "logs" / "default" / "slow"

        def started() -> int:
            return sum(1 for _ in logs.rglob("*.log")) if logs.exists() else 0

        wait_for(lambda: started() >= 2, "two datums to start")
        os.kill(ctl.pid, signal.SIGKILL)
        ctl.wait()
    finally:
        if ctl.poll() is None:
            ctl.kill()
            ctl.wait()
    (job,) = p.jobs("-p", "slow")
    assert job["state"] == "RUNNING"  # killed mid-job: nothing was finished
    assert p.raw("inspect", "commit", "slow@master")["state"] != "FINISHED"

    # Any command that kicks the controller starts a new one, which finishes the job.
    del p.t.env["TUSK_NO_CONTROLLER"]
    p.wait("slow@master")
    (job,) = p.jobs("-p", "slow")
    assert job["state"] == "SUCCESS"
    assert (job["processed"], job["total"]) == (N, N)
    assert p.text_tree("slow@master") == {f"/f{i}": f"{i * 10}\n" for i in range(N)}
    datums = p.datums("slow", job["id"])
    assert len(datums) == N and {d["state"] for d in datums} == {"SUCCESS"}
    assert len({d["id"] for d in datums}) == N
    assert not any(Path(p.root / "work").glob("*/*/pfs/out/*"))  # scratch cleaned up


def test_a_read_command_replaces_a_killed_controller(pipes: Pipes) -> None:
    """After kill -9 of the background controller mid-job, read commands alone (no change, no
    wait) bring a new controller, which finishes the job."""
    p = pipes
    p.repo("in", {f"f{i}": str(i) for i in range(N)})
    p.create(spec("slow", pfs_input("in"), bash("sleep 0.4; cp $in /pfs/out/")))
    logs = p.root / "logs" / "default" / "slow"
    wait_for(lambda: logs.exists() and sum(1 for _ in logs.rglob("*.log")) >= 2,
             "two datums to start")
    for pid in p.controller_pids():
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: p.controller_pids() == [], "the controller to die")

    def finished() -> bool:
        (job,) = p.jobs("-p", "slow")  # 'tusk list job': a read command
        return job["state"] == "SUCCESS"

    wait_for(finished, "the job to finish through read commands alone", timeout=60)
    assert p.text_tree("slow@master") == {f"/f{i}": str(i) for i in range(N)}
