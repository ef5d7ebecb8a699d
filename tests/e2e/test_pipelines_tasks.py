"""Datums as durable tasks: crashes cost only what was in flight, and workers share a job.

Each datum appends a line to a host file (the ``process`` runtime can reach it): the datum's
name and the process that ran it (the user code's parent is the worker). Counting the lines
shows how often the user's code ran for each datum, and on which worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, spec, until

pytestmark = pytest.mark.e2e

RECORD = 'echo "$(basename $in) $PPID" >> "$RUNS"; '


def runs(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        name, _, pid = line.partition(" ")
        if pid.strip().isdigit():  # a line being written is ignored until it is whole
            out.append((name, int(pid)))
    return out


def worker_pids(p: Pipes) -> list[int]:
    """Worker processes serving this test's root (``tusk.pps.worker`` or ``tusk worker``)."""
    want = f"TUSK_ROOT={p.root}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (b"tusk.pps.worker" in argv or b"worker" in argv[1:3]) and want in env:
            pids.append(int(d.name))
    return pids


def start_controller(p: Pipes) -> subprocess.Popen[bytes]:
    return subprocess.Popen([p.t.exe, "controller", "--idle", "10"], env=p.t.env, cwd=p.t.cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(name="p")
def p_fixture(tusk: Any, tmp_path: Path) -> Any:
    p = Pipes(tusk, runner="process")
    p.t.env["TUSK_NO_CONTROLLER"] = "1"  # the tests start (and kill) controllers themselves
    yield p
    for pid in worker_pids(p) + p.controller_pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_the_controller_killed_three_times_reruns_at_most_parallelism_datums_per_kill(
        p: Pipes, tmp_path: Path) -> None:
    n, parallelism, kills = 500, 2, 3
    record = tmp_path / "runs.txt"
    p.repo("in", {f"f{i:03d}": str(i) for i in range(n)})
    p.create(spec("copy", pfs_input("in"), bash(RECORD + "cp $in /pfs/out/"),
                  parallelism_spec={"constant": parallelism},
                  transform={"env": {"RUNS": str(record)}}))
    for k in range(1, kills + 1):
        ctl = start_controller(p)
        try:
            until(lambda k=k: len(runs(record)) >= k * n // (kills + 1), timeout=120,
                  what=f"{k * n // (kills + 1)} datums to run", every=0.02)
        finally:
            kill9(ctl)
        (job,) = p.jobs("-p", "copy")
        assert job["state"] == "RUNNING"  # killed mid-job
    del p.t.env["TUSK_NO_CONTROLLER"]
    p.wait("copy@master", timeout=180)

    (job,) = p.jobs("-p", "copy")
    assert job["state"] == "SUCCESS" and (job["processed"], job["total"]) == (n, n)
    assert p.text_tree("copy@master") == {f"/f{i:03d}": str(i) for i in range(n)}
    counts = Counter(name for name, _ in runs(record))
    assert set(counts) == {f"f{i:03d}" for i in range(n)}
    again = sum(c - 1 for c in counts.values())
    assert again <= parallelism * kills, counts.most_common(8)


def test_a_worker_killed_mid_datum_costs_that_datum_one_attempt(p: Pipes, tmp_path: Path) -> None:
    record = tmp_path / "runs.txt"
    p.t.env["TUSK_LEASE_SECONDS"] = "2"  # an expired lease puts the task back soon
    p.repo("in", {"slow": "1", "a": "2", "b": "3"})
    # 'slow' sleeps on its first run only, long enough to be killed mid-datum.
    script = RECORD + ('if [ "$(basename $in)" = slow ] && [ ! -e "$RUNS.slept" ]; then '
                       'touch "$RUNS.slept"; sleep 20; fi; cp $in /pfs/out/')
    p.create(spec("copy", pfs_input("in"), bash(script), transform={"env": {"RUNS": str(record)}},
                  datum_tries=2))
    ctl = start_controller(p)
    try:
        until(lambda: (tmp_path / "runs.txt.slept").exists(), what="'slow' to start", every=0.02)
        (pid,) = {pid for name, pid in runs(record) if name == "slow"}
        assert pid in worker_pids(p)
        os.kill(pid, signal.SIGKILL)
        del p.t.env["TUSK_NO_CONTROLLER"]
        p.wait("copy@master", timeout=90)
    finally:
        if ctl.poll() is None:
            kill9(ctl)
    (job,) = p.jobs("-p", "copy")
    assert job["state"] == "SUCCESS"
    assert p.text_tree("copy@master") == {"/slow": "1", "/a": "2", "/b": "3"}
    by_file = {d["files"][0]: d for d in p.datums("copy", job["id"])}
    assert by_file["in:/slow"]["attempts"] == 2  # the lost worker's attempt counts
    assert by_file["in:/a"]["attempts"] == by_file["in:/b"]["attempts"] == 1
    counts = Counter(name for name, _ in runs(record))
    assert counts == {"slow": 2, "a": 1, "b": 1}


def test_a_datum_whose_worker_is_lost_on_its_only_try_fails_and_says_why(
        p: Pipes, tmp_path: Path) -> None:
    record = tmp_path / "runs.txt"
    p.t.env["TUSK_LEASE_SECONDS"] = "2"
    p.repo("in", {"slow": "1", "a": "2"})
    script = RECORD + 'if [ "$(basename $in)" = slow ]; then sleep 20; fi; cp $in /pfs/out/'
    p.create(spec("copy", pfs_input("in"), bash(script), transform={"env": {"RUNS": str(record)}},
                  datum_tries=1))
    ctl = start_controller(p)
    try:
        until(lambda: any(name == "slow" for name, _ in runs(record)), what="'slow' to start",
              every=0.02)
        (pid,) = {pid for name, pid in runs(record) if name == "slow"}
        os.kill(pid, signal.SIGKILL)
        del p.t.env["TUSK_NO_CONTROLLER"]
        p.wait("copy@master", timeout=90, ok=False)
    finally:
        if ctl.poll() is None:
            kill9(ctl)
    (job,) = p.jobs("-p", "copy")
    assert job["state"] == "FAILURE"
    by_file = {d["files"][0]: d for d in p.datums("copy", job["id"])}
    assert by_file["in:/slow"]["state"] == "FAILED"
    assert "worker was lost" in by_file["in:/slow"]["reason"]
    assert by_file["in:/a"]["state"] == "SUCCESS"
    assert Counter(name for name, _ in runs(record)) == {"slow": 1, "a": 1}


def test_workers_started_by_hand_share_a_job_with_the_controllers(p: Pipes, tmp_path: Path) -> None:
    record = tmp_path / "runs.txt"
    n = 12
    del p.t.env["TUSK_NO_CONTROLLER"]
    hands = [subprocess.Popen([p.t.exe, "worker", "--idle", "60"], env=p.t.env, cwd=p.t.cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    try:
        until(lambda: len(worker_pids(p)) == 2, what="the hand-started workers")
        p.repo("in", {f"f{i:02d}": str(i) for i in range(n)})
        p.create(spec("copy", pfs_input("in"), bash(RECORD + "sleep 0.3; cp $in /pfs/out/"),
                      transform={"env": {"RUNS": str(record)}}))  # parallelism 1: one own worker
        p.wait("copy@master", timeout=90)
        (job,) = p.jobs("-p", "copy")
        assert job["state"] == "SUCCESS"
        assert p.text_tree("copy@master") == {f"/f{i:02d}": str(i) for i in range(n)}
        seen = runs(record)
        assert sorted(name for name, _ in seen) == [f"f{i:02d}" for i in range(n)]  # once each
        by_hand = {pid for _, pid in seen} & {h.pid for h in hands}
        assert len(by_hand) == 2, f"datums ran on {Counter(pid for _, pid in seen)}"
    finally:
        for h in hands:
            h.send_signal(signal.SIGTERM)
        for h in hands:
            assert h.wait(15) == 0, h.stderr.read() if h.stderr else ""


def test_tusk_worker_refuses_bad_arguments_in_one_line(p: Pipes) -> None:
    got = subprocess.run([p.t.exe, "worker", "--idle", "soon"], env=p.t.env, cwd=p.t.cwd,
                         capture_output=True, text=True, check=False)
    assert got.returncode != 0 and got.stderr.count("\n") == 1
    assert "--idle" in got.stderr
