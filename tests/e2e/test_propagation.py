"""History edits keep the DAG running: every new output commit propagates downstream.

A three-stage DAG ``data -> up -> mid -> rev``: ``up`` upper-cases each file and appends a
suffix read from a scratch file (so a rerun can change its output), ``mid`` copies, ``rev``
reverses. After ``start pipeline``, ``rerun pipeline``, ``update pipeline`` (same inputs and
new inputs) and a branch move on the input (``create branch data@master --head``), the last
stage's output must show the change, through a job of every pipeline below the change in the
same commit set.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, process_pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e


def _up(suffix: Path, inp: dict | None = None, tr: str = "a-z A-Z") -> dict:
    return spec("up", inp or pfs_input("data"),
                bash(f"f=$(basename $data); {{ tr {tr} < $data; cat {suffix}; }} > /pfs/out/$f"))


def _dag(p: Pipes) -> Path:
    suffix = Path(p.t.cwd) / "suffix"
    suffix.write_text("")
    p.repo("data", {"a.txt": "ab"})
    p.create(_up(suffix))
    p.create(spec("mid", pfs_input("up"), bash("cp $up /pfs/out/")))
    p.create(spec("rev", pfs_input("mid"), bash("rev $mid > /pfs/out/$(basename $mid)")))
    p.wait("rev@master")
    assert p.text_tree("rev@master") == {"/a.txt": "BA"}
    return suffix


def _reaches_the_end(p: Pipes, commit_set: str) -> None:
    """Every pipeline has a successful job in ``commit_set`` (so the change ran through)."""
    p.wait(commit_set)
    jobs = {j["pipeline"]: j["state"] for j in p.jobs() if j["id"] == commit_set}
    assert jobs.get("mid") == "SUCCESS" and jobs.get("rev") == "SUCCESS", jobs


def test_start_pipeline_propagates_downstream(process_pipes: Pipes) -> None:
    p = process_pipes
    _dag(p)
    p.ok("stop", "pipeline", "up")
    p.put("data", {"b.txt": "cd"})
    p.ok("start", "pipeline", "up")
    _reaches_the_end(p, p.head("up"))
    assert p.text_tree("rev@master") == {"/a.txt": "BA", "/b.txt": "DC"}


def test_rerun_pipeline_propagates_downstream(process_pipes: Pipes) -> None:
    p = process_pipes
    suffix = _dag(p)
    suffix.write_text("x")
    p.ok("rerun", "pipeline", "up", "--reprocess")
    _reaches_the_end(p, p.head("up"))
    assert p.text_tree("rev@master") == {"/a.txt": "xBA"}


def test_update_pipeline_propagates_downstream(process_pipes: Pipes) -> None:
    p = process_pipes
    suffix = _dag(p)
    # Same inputs, a new command (--reprocess: processed datums are otherwise kept).
    p.update(_up(suffix, tr="a-z b-za"), "--reprocess")
    _reaches_the_end(p, p.head("up"))
    assert p.text_tree("rev@master") == {"/a.txt": "cb"}
    # New inputs (another branch of data): the output branch's provenance changes.
    p.ok("create", "branch", "data@dev", "--head", "master")
    p.put("data", {"c.txt": "ef"}, branch="dev")
    p.update(_up(suffix, inp=pfs_input("data", branch="dev"), tr="a-z A-Z"))
    _reaches_the_end(p, p.head("up"))
    assert p.text_tree("rev@master") == {"/a.txt": "BA", "/c.txt": "FE"}


def test_moving_an_input_branch_propagates_downstream(process_pipes: Pipes) -> None:
    p = process_pipes
    _dag(p)
    first = p.head("data")
    p.put("data", {"b.txt": "cd"})
    p.wait(p.head("data"))
    assert p.text_tree("rev@master") == {"/a.txt": "BA", "/b.txt": "DC"}
    p.ok("create", "branch", "data@master", "--head", first)
    _reaches_the_end(p, p.head("up"))
    assert p.text_tree("rev@master") == {"/a.txt": "BA"}
