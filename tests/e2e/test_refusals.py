"""A refused command changes nothing, end to end through the CLI.

Each test builds a small DAG (``data -> up -> rev``), lets it settle, takes a snapshot of what a
user can observe (``list repo/branch/commit/pipeline/job --raw``, ``inspect pipeline --raw``,
``draw pipeline``), then runs commands that must be refused. Each must exit non-zero with one
``tusk: ...`` line and leave the snapshot exactly as it was. Finally a new input commit must
flow through the DAG as before: the refused commands left nothing that breaks later jobs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e

UP = spec("up", pfs_input("data"), bash("cp $data /pfs/out/"))
REV = spec("rev", pfs_input("up"), bash("rev $up > /pfs/out/$(basename $up)"))


def _dag(p: Pipes) -> None:
    p.repo("data", {"a.txt": "abc"})
    p.create(UP)
    p.create(REV)
    p.wait("rev@master")
    assert p.text_tree("rev@master") == {"/a.txt": "cba"}


def snapshot(p: Pipes) -> dict[str, Any]:
    """Everything a user can observe of the root through the CLI."""
    repos = p.raw("list", "repo")
    pipelines = p.raw("list", "pipeline")
    return {
        "repos": repos,
        "branches": {r["name"]: p.raw("list", "branch", r["name"]) for r in repos},
        "commits": {r["name"]: p.raw("list", "commit", r["name"]) for r in repos},
        "pipelines": pipelines,
        "inspect": {x["name"]: p.raw("inspect", "pipeline", x["name"]) for x in pipelines},
        "history": p.raw("list", "pipeline", "--history", "all"),
        "jobs": p.jobs(),
        "draw": p.ok("draw", "pipeline"),
    }


def refused(p: Pipes, before: dict[str, Any], *args: str, says: str, code: int | None = None) -> None:
    """``tusk args`` fails with one line containing ``says`` and changes nothing."""
    r = p.t(*args)
    lines = r.stderr.splitlines()
    assert r.returncode != 0 and "Traceback" not in r.stderr, (args, r)
    assert len(lines) == 1 and lines[0].startswith("tusk: "), (args, lines)
    line = lines[0]
    assert says in line, (args, line)
    if code is not None:
        assert r.returncode == code, (args, r.returncode, line)
    after = snapshot(p)
    for key, value in before.items():
        assert after[key] == value, (args, key)


def test_refused_pipeline_changes_change_nothing(pipes: Pipes) -> None:
    p = pipes
    _dag(p)
    before = snapshot(p)

    def file(doc: Any) -> str:
        return str(p.spec_file(doc))

    # update: up would read rev, which reads up.
    cyc = file(spec("up", {"cross": [pfs_input("data"), pfs_input("rev")]}, bash("true")))
    refused(p, before, "update", "pipeline", "-f", cyc, says="cycle", code=2)
    # ... also when the new input is a branch the update would have to create first.
    cyc_dev = file(spec("up", {"cross": [pfs_input("data", branch="dev"), pfs_input("rev")]},
                        bash("true")))
    refused(p, before, "update", "pipeline", "-f", cyc_dev, says="cycle", code=2)
    # update: an input repo that does not exist.
    missing = file(spec("up", pfs_input("nope"), bash("true")))
    refused(p, before, "update", "pipeline", "-f", missing, says="input repo nope not found")
    # update: a bad spec, an unknown pipeline, a change of kind.
    refused(p, before, "update", "pipeline", "-f", file({**UP, "transform": {}}), says="transform.cmd")
    refused(p, before, "update", "pipeline", "-f", file({**UP, "pipeline": {"name": "ghost"}}),
            says="pipeline ghost not found")
    spout = {"pipeline": {"name": "up"}, "spout": {}, "transform": {"cmd": ["true"]}}
    refused(p, before, "update", "pipeline", "-f", file(spout), says="cannot become")
    # update: a trigger on an input branch that has provenance, with a cron input whose repo
    # (and the trigger's source branch) would be made before the refusal.
    trig = file(spec("rev", {"cross": [
        {"cron": {"name": "tick", "spec": "@every 1h"}},
        pfs_input("up", branch="master", trigger={"branch": "staging", "commits": 2})]},
        bash("true")))
    refused(p, before, "update", "pipeline", "-f", trig, says="cannot also have a trigger")

    # create: the name of an existing pipeline or repo.
    refused(p, before, "create", "pipeline", "-f", file(UP), says="already exists")
    refused(p, before, "create", "pipeline", "-f", file(spec("data", pfs_input("up"), bash("true"))),
            says="repo data already exists")
    # create: two specs of one file that read each other, or share a name; a bad second spec.
    pair = [spec("a", pfs_input("b"), bash("true")), spec("b", pfs_input("a"), bash("true"))]
    for verb in (("create", "pipeline"), ("validate", "pipeline"), ("update", "pipeline")):
        refused(p, before, *verb, "-f", file(pair), says="cycle", code=2)
    twice = [spec("x", pfs_input("data"), bash("true")), spec("x", pfs_input("up"), bash("true"))]
    refused(p, before, "create", "pipeline", "-f", file(twice), says="twice")
    refused(p, before, "validate", "pipeline", "-f", file(twice), says="twice")
    bad_second = [spec("x", pfs_input("data"), bash("true")), spec("y", pfs_input("data"), [])]
    refused(p, before, "create", "pipeline", "-f", file(bad_second), says="(spec 2)")
    # A new pipeline whose trigger clashes, with a cron repo it would have made first.
    trig_new = file(spec("z", {"cross": [
        {"cron": {"name": "tick", "spec": "@every 1h"}},
        pfs_input("up", branch="master", trigger={"branch": "staging", "commits": 2})]},
        bash("true")))
    refused(p, before, "create", "pipeline", "-f", trig_new, says="cannot also have a trigger")

    # delete, rerun and start that are refused.
    refused(p, before, "delete", "pipeline", "up", says="input of pipeline(s) rev")
    refused(p, before, "delete", "pipeline", "ghost", says="not found")
    refused(p, before, "rerun", "pipeline", "ghost", says="not found")
    refused(p, before, "start", "pipeline", "ghost", says="not found")

    # The DAG still runs: a new input commit reaches both pipelines' outputs, nothing lost.
    cid = p.put("data", {"b.txt": "xyz"})
    p.wait(cid)
    assert p.text_tree("up@master") == {"/a.txt": "abc", "/b.txt": "xyz"}
    assert p.text_tree("rev@master") == {"/a.txt": "cba", "/b.txt": "zyx"}
    jobs = {j["pipeline"]: j for j in p.jobs() if j["id"] == cid}
    assert jobs["up"]["processed"] == 1 and jobs["rev"]["processed"] == 1
    assert "No pipelines" not in p.ok("draw", "pipeline")


def test_refused_repo_and_branch_changes_change_nothing(pipes: Pipes) -> None:
    p = pipes
    _dag(p)
    before = snapshot(p)
    head = before["commits"]["data"][0]["id"]

    refused(p, before, "create", "repo", "data", says="already exists")
    refused(p, before, "create", "repo", "up", says="already exists")
    refused(p, before, "create", "repo", "bad name", says="bad name")
    refused(p, before, "update", "repo", "nope", "-d", "x", says="not found")
    refused(p, before, "delete", "repo", "data", says="provenance of up@master")
    refused(p, before, "delete", "repo", "nope", says="not found")
    refused(p, before, "create", "branch", "up@master", "-p", "rev@master", says="cycle")
    refused(p, before, "create", "branch", "data@master", "-p", "data@other", says="data")
    refused(p, before, "create", "branch", "data@dev", "--head", "0" * 32, says="not found")
    refused(p, before, "create", "branch", "data@dev", "--head", "up@master",
            says="not a commit of repo data")
    refused(p, before, "create", "branch", "up@master", "-t", "master", "--trigger-commits", "1",
            says="cannot also have a trigger")
    refused(p, before, "create", "branch", "data@x", "-t", "x", "--trigger-commits", "1",
            says="trigger")
    refused(p, before, "delete", "branch", "data@master", says="provenance of up@master")
    refused(p, before, "delete", "branch", "data@nope", says="not found")

    cid = p.put("data", {"b.txt": "xyz"})
    p.wait(cid)
    assert p.text_tree("rev@master") == {"/a.txt": "cba", "/b.txt": "zyx"}
    assert p.raw("list", "commit", "data")[1]["id"] == head


def test_validate_reports_a_cycle_in_one_file_as_create_does(pipes: Pipes) -> None:
    p = pipes
    p.repo("data", {"a.txt": "abc"})
    pair = p.spec_file([spec("a", {"cross": [pfs_input("data"), pfs_input("b")]}, bash("true")),
                        spec("b", pfs_input("a"), bash("true"))])
    created = p.t.fail("create", "pipeline", "-f", str(pair))
    validated = p.t.fail("validate", "pipeline", "-f", str(pair))
    assert "cycle" in created and created == validated
    assert "a -> b -> a" in created or "b -> a -> b" in created
    assert p.raw("list", "pipeline") == []
    assert [r["name"] for r in p.raw("list", "repo")] == ["data"]
    # A file that is a DAG, listed downstream first, is fine for both.
    dag = p.spec_file([spec("b", pfs_input("a"), bash("cp $a /pfs/out/")),
                       spec("a", pfs_input("data"), bash("cp $data /pfs/out/"))])
    assert "valid" in p.ok("validate", "pipeline", "-f", str(dag))
    assert json.loads(json.dumps(p.raw("list", "pipeline"))) == []
