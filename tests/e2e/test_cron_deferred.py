"""Inputs over time, end to end: cron inputs and deferred processing.

* A cron input (``@every 2s``) ticks on its own: each tick is a commit to the cron repo with a
  file named after the tick time, and each makes a job. ``run cron`` ticks at once.
  ``overwrite`` keeps only the latest tick file.
* Deferred processing: data lands on ``staging``, the pipeline reads ``master`` and writes to
  ``output_branch: dev``; nothing runs until ``create branch data@master --head staging``.
"""

from __future__ import annotations

import time
from datetime import datetime
from itertools import pairwise

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, process_pipes_fixture, spec  # noqa: F401
from pipeline_helpers import until as _until

pytestmark = pytest.mark.e2e



def _cron(name: str, every: str = "@every 2s", overwrite: bool = False) -> dict:
    return spec(name, {"cron": {"name": "tick", "spec": every, "overwrite": overwrite}},
                bash("cp /pfs/tick/* /pfs/out/"))


def test_cron_ticks_three_times_and_run_cron_forces_a_tick(process_pipes: Pipes) -> None:
    p = process_pipes
    p.create(_cron("clock"))
    # The cron repo is <pipeline>_<input name>; every tick is one commit there and one job.
    files = _until(lambda: len(p.raw("list", "file", "clock_tick@master")) >= 3 and
                   p.raw("list", "file", "clock_tick@master"), what="three ticks")
    names = sorted(f["path"].lstrip("/") for f in files)
    times = [datetime.fromisoformat(n) for n in names]
    assert all(b > a for a, b in pairwise(times))
    p.wait("clock@master")
    _until(lambda: sum(j["state"] == "SUCCESS" for j in p.jobs("-p", "clock")) >= 4, what="jobs")
    ticks = p.text_tree("clock@master")
    assert len(ticks) >= 3  # no overwrite: every tick file stays, one datum each

    p.ok("stop", "pipeline", "clock")
    before = len(p.raw("list", "file", "clock_tick@master"))
    time.sleep(3)
    assert len(p.raw("list", "file", "clock_tick@master")) == before  # stopped: no ticks
    assert "stopped" in p.t.fail("run", "cron", "clock")
    p.ok("start", "pipeline", "clock")
    out = p.ok("run", "cron", "clock")
    assert out.startswith("clock_tick: /")
    forced = out.split(": ", 1)[1].strip()
    assert forced in [f["path"] for f in p.raw("list", "file", "clock_tick@master")]


def test_cron_overwrite_keeps_only_the_latest_tick(process_pipes: Pipes) -> None:
    p = process_pipes
    p.create(_cron("latest", "@every 1h", overwrite=True))
    p.wait("latest@master")
    p.ok("run", "cron", "latest")
    p.wait("latest@master")
    first = list(p.text_tree("latest@master"))
    time.sleep(1.1)  # tick names have one-second resolution
    p.ok("run", "cron", "latest")
    p.wait("latest@master")
    second = list(p.text_tree("latest@master"))
    assert len(first) == 1 and len(second) == 1 and first != second
    assert len(p.raw("list", "file", "latest_tick@master")) == 1
    assert "not found" in p.t.fail("run", "cron", "nonexistent")
    p.repo("plain", {"a": "a"})
    p.create(spec("plainpipe", pfs_input("plain"), bash("true")))
    assert "no cron input" in p.t.fail("run", "cron", "plainpipe")


def test_deferred_processing_with_output_branch(process_pipes: Pipes) -> None:
    p = process_pipes
    p.ok("create", "repo", "data")
    p.ok("create", "branch", "data@staging")
    p.create(spec("later", pfs_input("data", branch="master"), bash("cp $data /pfs/out/"),
                  output_branch="dev"))
    p.wait("later@dev")
    first_jobs = len(p.jobs("-p", "later"))

    p.put("data", {"a.txt": "a"}, branch="staging")
    p.put("data", {"b.txt": "b"}, branch="staging")
    time.sleep(1.5)
    assert len(p.jobs("-p", "later")) == first_jobs  # staging is not what the pipeline reads
    assert p.text_tree("later@dev") == {}

    p.ok("create", "branch", "data@master", "--head", "staging")
    p.wait("later@dev")
    assert len(p.jobs("-p", "later")) == first_jobs + 1  # one job for the moved head
    assert p.text_tree("later@dev") == {"/a.txt": "a", "/b.txt": "b"}
    assert "dev" in [b["name"] for b in p.raw("list", "branch", "later")]
    assert "master" not in [b["name"] for b in p.raw("list", "branch", "later")]
