"""Branch triggers end to end (deferred processing on autopilot).

Data lands on ``staging``; ``master`` (what the pipeline reads) carries a trigger that moves it
to staging's head only once a condition holds: N commits since master's head, N bytes added
since it, or a cron tick since master last moved. A pipeline on master therefore runs only
when the trigger fires. ``input.pfs.trigger`` in a spec makes the same arrangement for the
pipeline (on a branch of its own, ``<pipeline>-trigger-1``).
"""

from __future__ import annotations

from typing import Any

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, process_pipes_fixture, spec  # noqa: F401
from pipeline_helpers import until as _until

pytestmark = pytest.mark.e2e

COPY = bash("cp -r /pfs/data/* /pfs/out/ 2>/dev/null || true")



def branch(p: Pipes, ref: str) -> dict[str, Any]:
    return p.raw("inspect", "branch", ref)


def staged_repo_with_pipeline(p: Pipes, *trigger: str) -> str:
    """Repo ``data`` with ``staging`` and a triggered ``master``; pipeline ``copy`` reads master.
    Returns the output branch head after the pipeline's first job."""
    p.repo("data")
    p.ok("create", "branch", "data@staging")
    p.ok("create", "branch", "data@master", "--trigger", "staging", *trigger)
    p.create(spec("copy", {"pfs": {"repo": "data", "glob": "/", "name": "data"}}, COPY))
    p.wait("copy@master")
    return branch(p, "copy@master")["head"]


def test_commits_trigger_moves_master_only_at_the_threshold(process_pipes: Pipes) -> None:
    p = process_pipes
    out_head = staged_repo_with_pipeline(p, "--trigger-commits", "2")
    info = branch(p, "data@master")
    assert info["trigger"] == {"branch": "staging", "all": False, "cron_spec": "", "size": "",
                               "commits": 2}
    assert "Trigger: staging (2 commit(s))" in p.ok("inspect", "branch", "data@master")

    first = p.put("data", {"a.txt": "a"}, branch="staging")
    # One commit since master's head: master stays, so nothing new reaches the pipeline.
    assert branch(p, "data@master")["head"] == info["head"] != first
    assert branch(p, "copy@master")["head"] == out_head
    assert len(p.jobs("-p", "copy")) == 1

    second = p.put("data", {"b.txt": "b"}, branch="staging")
    assert branch(p, "data@master")["head"] == second
    p.wait("copy@master")
    assert p.text_tree("copy@master") == {"/a.txt": "a", "/b.txt": "b"}
    assert len(p.jobs("-p", "copy")) == 2

    # The count restarts from master's new head.
    p.put("data", {"c.txt": "c"}, branch="staging")
    assert branch(p, "data@master")["head"] == second


def test_size_trigger_fires_once_enough_data_is_added(process_pipes: Pipes) -> None:
    p = process_pipes
    out_head = staged_repo_with_pipeline(p, "--trigger-size", "1KB")
    start = branch(p, "data@master")["head"]

    p.put("data", {"small": "x" * 600}, branch="staging")
    assert branch(p, "data@master")["head"] == start  # 600 B < 1 KB
    assert branch(p, "copy@master")["head"] == out_head

    # With an explicit commit the trigger decides when it finishes, not when it starts.
    cid = p.ok("start", "commit", "data@staging").strip()
    p.ok("put", "file", "data@staging:/more", "-f", "-", input="y" * 600)
    assert branch(p, "data@master")["head"] == start
    p.ok("finish", "commit", "data@staging")
    assert branch(p, "data@master")["head"] == cid  # 1200 B >= 1 KB
    p.wait("copy@master")
    assert set(p.text_tree("copy@master")) == {"/small", "/more"}
    assert len(p.jobs("-p", "copy")) == 2


def test_cron_trigger_fires_on_its_own(process_pipes: Pipes) -> None:
    p = process_pipes
    p.repo("data", {"a.txt": "a"})
    p.create(spec("copy", {"pfs": {"repo": "data", "glob": "/", "name": "data"}}, COPY))
    p.wait("copy@master")
    p.ok("create", "branch", "data@staging", "--head", "master")
    new = p.put("data", {"b.txt": "b"}, branch="staging")
    # Nothing else happens after this: the controller's periodic check must fire it.
    p.ok("create", "branch", "data@master", "--trigger", "staging", "--trigger-cron", "@every 2s")
    assert branch(p, "data@master")["trigger"]["cron_spec"] == "@every 2s"
    _until(lambda: branch(p, "data@master")["head"] == new, what="the cron trigger to fire")
    _until(lambda: len(p.jobs("-p", "copy")) == 2, what="the triggered job")
    p.wait("copy@master")
    assert p.text_tree("copy@master") == {"/a.txt": "a", "/b.txt": "b"}


def test_pipeline_input_trigger_in_the_spec(process_pipes: Pipes) -> None:
    p = process_pipes
    p.repo("data")
    trig = {"pfs": {"repo": "data", "glob": "/", "name": "data",
                    "trigger": {"commits": 2}}}
    p.create(spec("late", trig, COPY))
    # As Pachyderm: the pipeline reads a branch of its own, moved from master by the trigger.
    pfs = p.raw("inspect", "pipeline", "late")["spec"]["input"]["pfs"]
    assert pfs["branch"] == "late-trigger-1"
    assert pfs["trigger"]["branch"] == "master"
    info = branch(p, "data@late-trigger-1")
    assert info["trigger"]["commits"] == 2 and info["trigger"]["branch"] == "master"
    p.wait("late@master")
    out_head = branch(p, "late@master")["head"]

    p.put("data", {"a.txt": "a"})
    assert branch(p, "late@master")["head"] == out_head  # one commit: not yet
    second = p.put("data", {"b.txt": "b"})
    assert branch(p, "data@late-trigger-1")["head"] == second
    p.wait("late@master")
    assert p.text_tree("late@master") == {"/a.txt": "a", "/b.txt": "b"}


def test_trigger_errors_are_one_line(process_pipes: Pipes) -> None:
    p = process_pipes
    p.repo("data")
    p.ok("create", "branch", "data@staging")
    assert "10QB" in p.t.fail("create", "branch", "data@master", "--trigger", "staging",
                              "--trigger-size", "10QB")
    assert "not found" in p.t.fail("create", "branch", "data@master", "--trigger", "nope",
                                   "--trigger-commits", "1")
    assert "itself" in p.t.fail("create", "branch", "data@master", "--trigger", "master",
                                "--trigger-commits", "1")
    assert "condition" in p.t.fail("create", "branch", "data@master", "--trigger", "staging")
    assert "--trigger" in p.t.fail("create", "branch", "data@master", "--trigger-commits", "2")
    assert "cron" in p.t.fail("create", "branch", "data@master", "--trigger", "staging",
                              "--trigger-cron", "every day")
    p.ok("create", "branch", "data@master", "--trigger", "staging", "--trigger-commits", "1")
    assert "loop" in p.t.fail("create", "branch", "data@staging", "--trigger", "master",
                              "--trigger-commits", "1")
    p.repo("other", {"x": "x"})
    assert "provenance" in p.t.fail("create", "branch", "data@wired", "--trigger", "staging",
                                    "--trigger-commits", "1", "-p", "other@master")
    bad = {"pfs": {"repo": "data", "glob": "/", "trigger": {"size": "10QB"}}}
    assert "10QB" in p.t.fail("create", "pipeline", "-f", str(p.spec_file(spec("bad", bad, COPY))))
