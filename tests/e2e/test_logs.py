"""User-code logs: ``tusk logs`` (filters, JSON lines, follow) and ``tusk inspect datum``.

Every line user code prints is kept per datum with a timestamp and its stream. ``tusk logs``
selects lines by pipeline, job, datum and input file, prints them as text or JSON lines, and
with ``-f --job`` follows a running job until it ends. A failed datum's last stderr lines show
in ``inspect datum`` and, shortened, in the datum's and the job's failure reason.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime

import pytest
from pipeline_helpers import (  # noqa: F401
    Pipes,
    bash,
    pfs_input,
    pipes_fixture,
    process_pipes_fixture,
    spec,
)

pytestmark = pytest.mark.e2e

# One stdout and one stderr line per datum, naming the datum's file.
PRINT = bash("n=$(basename $in); echo out $n; echo err $n >&2; cp $in /pfs/out/$n")


def parse(line: str) -> tuple[datetime, str, str, str]:
    ts, job, datum, text = line.split(" ", 3)
    return datetime.fromisoformat(ts), job, datum, text


def wait_for_job(p: Pipes, pipeline: str, job_id: str, timeout: float = 30) -> dict:
    """Poll until the job exists and is running (it is created when the controller sees it)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        jobs = [j for j in p.jobs("-p", pipeline) if j["id"] == job_id]
        if jobs and jobs[0]["state"] == "RUNNING":
            return jobs[0]
        time.sleep(0.1)
    raise AssertionError(f"job {pipeline}@{job_id} did not start running")


@pytest.mark.parametrize("runner", ["default", "process"])
def test_logs_are_timestamped_and_filter_by_job_datum_and_input(pipes: Pipes, runner: str) -> None:
    p = pipes
    if runner == "process":
        p.t.env["TUSK_RUNNER"] = "process"
    p.repo("in", {"a.txt": "a", "b.txt": "b"})
    p.create(spec("echo", pfs_input("in"), PRINT))
    p.wait("echo@master")
    first = p.job("echo")["id"]

    lines = p.logs("echo").splitlines()
    assert len(lines) == 4, lines
    for line in lines:
        ts, job8, datum12, _ = parse(line)
        assert abs(time.time() - ts.timestamp()) < 120
        assert job8 == first[:8] and len(datum12) == 12
    assert sorted(parse(ln)[3] for ln in lines) == [
        "err a.txt", "err b.txt", "out a.txt", "out b.txt"]

    c = p.put("in", {"c.txt": "c"})
    p.wait(c)
    # --job: only the second job's datum (a.txt and b.txt were skipped there).
    second = p.logs("echo", "--job", c).splitlines()
    assert sorted(parse(ln)[3] for ln in second) == ["err c.txt", "out c.txt"]
    assert len(p.logs("echo").splitlines()) == 6
    # --datum by ID prefix.
    ids = {d["files"][0]: d["id"] for d in p.datums("echo", first)}
    only_b = p.logs("echo", "--datum", ids["in:/b.txt"][:10]).splitlines()
    assert sorted(parse(ln)[3] for ln in only_b) == ["err b.txt", "out b.txt"]
    assert {parse(ln)[2] for ln in only_b} == {ids["in:/b.txt"][:12]}
    # --inputs by input file path; several paths must all be inputs of the datum.
    assert sorted(parse(ln)[3] for ln in p.logs("echo", "--inputs", "/b.txt").splitlines()) == [
        "err b.txt", "out b.txt"]
    assert p.logs("echo", "--inputs", "/a.txt,/b.txt") == ""
    assert p.logs("echo", "--inputs", "/c.txt", "--job", first) == ""

    # --raw and -o json: one JSON object per line.
    raw = [json.loads(ln) for ln in p.logs("echo", "--raw", "--job", first).splitlines()]
    assert len(raw) == 4
    assert all(set(r) >= {"pipeline", "job", "datum", "ts", "stream", "line"} for r in raw)
    assert {(r["stream"], r["line"]) for r in raw} == {
        ("stdout", "out a.txt"), ("stderr", "err a.txt"),
        ("stdout", "out b.txt"), ("stderr", "err b.txt")}
    assert {r["pipeline"] for r in raw} == {"echo"} and {r["job"] for r in raw} == {first}
    assert {r["datum"] for r in raw} == set(ids.values())
    as_json = p.logs("echo", "-o", "json", "--job", first).splitlines()
    assert [json.loads(ln) for ln in as_json] == raw

    # User errors: one line, non-zero exit.
    assert "pipeline nope not found" in p.t.fail("logs", "-p", "nope")
    assert "not found" in p.t.fail("logs", "-p", "echo", "--job", "0" * 32)


def test_follow_prints_lines_while_the_job_runs_and_returns_when_it_ends(
        process_pipes: Pipes) -> None:
    # The process runner, so the datum can wait for a file the test creates: it prints, then
    # blocks until told to go on, so "the job is still running" does not depend on timing.
    p = process_pipes
    go = p.root.parent / "go"
    p.repo("in")
    p.create(spec("slow", pfs_input("in"), bash(
        f"echo first; for i in $(seq 600); do [ -e {go} ] && break; sleep 0.1; done;"
        " echo second >&2")))
    c = p.put("in", {"x.txt": "x"})
    wait_for_job(p, "slow", c)
    proc = subprocess.Popen([p.t.exe, "logs", "-p", "slow", "--job", c, "-f"], env=p.t.env,
                            cwd=p.t.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.rstrip().endswith(" first"), line
        # Follow streams: the first line is out while the job still runs.
        assert p.job("slow", c)["state"] == "RUNNING"
        assert proc.poll() is None  # and keeps going while the job runs
        go.touch()
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert rest.rstrip().endswith(" second")
    assert p.job("slow", c)["state"] == "SUCCESS"  # it returned because the job ended


def test_failed_datum_shows_its_last_stderr_lines(pipes: Pipes) -> None:
    p = pipes
    p.repo("in", {"ok.txt": "fine", "bad.txt": "broken"})
    p.create(spec("check", pfs_input("in"), bash(
        "n=$(basename $in); for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo $n problem $i >&2; done;"
        " echo done $n; [ $n != bad.txt ] || exit 2"), datum_tries=1))
    p.wait("check@master", ok=False)
    job = p.job("check")
    assert job["state"] == "FAILURE"
    tail = "bad.txt problem 10 | bad.txt problem 11 | bad.txt problem 12"
    assert tail in job["reason"] and "problem 9" not in job["reason"]
    assert tail in p.raw("inspect", "job", f"check@{job['id']}")["reason"]
    bad = next(d for d in p.datums("check", job["id"]) if d["files"] == ["in:/bad.txt"])
    assert bad["reason"] == f"exit code 2; stderr: {tail}"

    text = p.ok("inspect", "datum", f"check@{job['id']}", bad["id"][:8])
    assert "FAILED" in text and "in:/bad.txt" in text and "exit code 2" in text
    assert "Last stderr (10 lines):" in text
    assert "bad.txt problem 3\n" in text and "bad.txt problem 2\n" not in text
    info = p.raw("inspect", "datum", f"check@{job['id']}", bad["id"])
    assert info["state"] == "FAILED" and info["attempts"] == 1
    assert info["stderr"] == [f"bad.txt problem {i}" for i in range(3, 13)]

    ok = next(d for d in p.datums("check", job["id"]) if d["files"] == ["in:/ok.txt"])
    ok_text = p.ok("inspect", "datum", f"check@{job['id']}", ok["id"])
    assert "SUCCESS" in ok_text and "Last stderr" not in ok_text

    assert "not found" in p.t.fail("inspect", "datum", f"check@{job['id']}", "zzzz")
    assert "pipeline@<job id>" in p.t.fail("inspect", "datum", "check", bad["id"])
