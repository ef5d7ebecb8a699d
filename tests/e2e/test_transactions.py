"""Transactions end to end: several input commits, one commit set, one job.

A cross pipeline over ``left`` and ``right`` would run a job per input commit. Inside a
transaction the two commits share the transaction's ID, stay invisible until ``finish
transaction`` and then propagate together: exactly one job, whose ID is the transaction's.
``stop transaction`` only detaches it (``resume transaction`` goes on with it, ``finish
transaction <id>`` applies it); ``delete transaction`` drops everything it held.
"""

from __future__ import annotations

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, process_pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e

PAIRS = bash("echo $(basename $left)$(basename $right) > /pfs/out/$(basename $left)$(basename $right)")


def head(p: Pipes, ref: str) -> str:
    return p.raw("inspect", "branch", ref)["head"]


def cross_pipeline(p: Pipes) -> None:
    p.repo("left", {"l1": "1"})
    p.repo("right", {"r1": "1"})
    p.create(spec("pairs", {"cross": [pfs_input("left"), pfs_input("right")]}, PAIRS))
    p.wait("pairs@master")


def test_commits_in_two_repos_make_one_job(process_pipes: Pipes) -> None:
    p = process_pipes
    cross_pipeline(p)
    before = {r: head(p, f"{r}@master") for r in ("left", "right", "pairs")}

    txn = p.ok("start", "transaction").strip()
    assert p.ok("start", "commit", "left@master").strip() == txn
    assert p.ok("start", "commit", "right@master").strip() == txn
    p.ok("put", "file", "left@master:/l2", "-f", "-", input="2")
    p.ok("put", "file", "right@master:/r2", "-f", "-", input="2")
    p.ok("finish", "commit", "left@master")
    p.ok("finish", "commit", f"right@{txn}")
    info = p.raw("inspect", "transaction")
    assert info["id"] == txn and info["state"] == "OPEN" and info["active"]
    assert [(o["op"], o["repo"]) for o in info["ops"]] == [("start_commit", "left"),
                                                           ("start_commit", "right")]
    # Nothing is visible before the transaction finishes.
    assert {r: head(p, f"{r}@master") for r in before} == before

    p.ok("finish", "transaction")
    commits = p.wait(txn)
    assert sorted(c["repo"] for c in commits) == ["left", "pairs", "right"]
    jobs = p.jobs("-p", "pairs")
    assert len(jobs) == 2  # the first job, then exactly one for both input commits
    assert [j["id"] for j in p.jobs(txn)] == [txn]
    assert set(p.text_tree("pairs@master")) == {"/l1r1", "/l1r2", "/l2r1", "/l2r2"}
    listed = p.raw("list", "transaction")
    assert [(t["id"], t["state"], t["active"]) for t in listed] == [(txn, "FINISHED", False)]

    # Implicit commits: put file alone inside a transaction; they finish with it.
    txn2 = p.ok("start", "transaction").strip()
    p.ok("put", "file", "left@master:/l3", "-f", "-", input="3")
    p.ok("put", "file", "right@master:/r3", "-f", "-", input="3")
    p.ok("create", "branch", "left@snapshot", "--head", "master")
    assert head(p, "left@master") == txn
    p.ok("finish", "transaction", txn2)
    p.wait(txn2)
    assert head(p, "left@snapshot") == head(p, "left@master") == txn2
    assert [j["id"] for j in p.jobs(txn2)] == [txn2]
    assert len(p.jobs("-p", "pairs")) == 3
    assert len(p.text_tree("pairs@master")) == 9


def test_delete_transaction_leaves_nothing_behind(process_pipes: Pipes) -> None:
    p = process_pipes
    p.repo("data", {"a": "a"})
    commits = p.raw("list", "commit", "data")
    branches = p.raw("list", "branch", "data")

    txn = p.ok("start", "transaction").strip()
    p.ok("start", "commit", "data@master")
    p.ok("put", "file", "data@master:/b", "-f", "-", input="b")
    p.ok("create", "branch", "data@dev", "--head", "master")
    p.ok("delete", "branch", "data@master")
    assert p.raw("inspect", "transaction", txn)["active"]
    p.ok("delete", "transaction")

    assert p.raw("list", "transaction") == []
    assert p.raw("list", "commit", "data") == commits
    assert p.raw("list", "branch", "data") == branches
    assert "not found" in p.t.fail("list", "commit", txn)
    assert "not found" in p.t.fail("inspect", "transaction", txn)
    # The root works as before: a new commit is an ordinary one.
    new = p.put("data", {"b": "b"})
    assert new != txn and head(p, "data@master") == new


def test_stop_keeps_the_transaction_to_resume_finish_or_delete(process_pipes: Pipes) -> None:
    """As pachctl: 'stop transaction' detaches the active transaction without losing it."""
    p = process_pipes
    cross_pipeline(p)
    before = {r: head(p, f"{r}@master") for r in ("left", "right", "pairs")}
    txn = p.ok("start", "transaction").strip()
    p.ok("put", "file", "left@master:/l2", "-f", "-", input="2")
    r = p.t("stop", "transaction")
    assert r.returncode == 0 and f"resume transaction {txn}" in r.stderr
    listed = p.raw("list", "transaction")
    assert [(t["id"], t["state"], t["active"], len(t["ops"])) for t in listed] == [
        (txn, "OPEN", False, 1)]
    # Detached: commands act outside it again, and nothing of it is visible yet.
    p.ok("create", "repo", "outside")
    assert "outside" in [x["name"] for x in p.raw("list", "repo")]
    assert {r: head(p, f"{r}@master") for r in before} == before
    assert "no active transaction" in p.t.fail("stop", "transaction")

    p.ok("resume", "transaction", txn)
    assert p.raw("inspect", "transaction")["id"] == txn
    p.ok("put", "file", "right@master:/r2", "-f", "-", input="2")
    p.ok("stop", "transaction")
    p.ok("finish", "transaction", txn)  # a stopped transaction can be finished by its ID
    p.wait(txn)
    assert [j["id"] for j in p.jobs(txn)] == [txn]  # both commits, one job
    assert set(p.text_tree("pairs@master")) == {"/l1r1", "/l1r2", "/l2r1", "/l2r2"}

    # A stopped transaction can be deleted by its ID: nothing it held takes effect.
    other = p.ok("start", "transaction").strip()
    p.ok("put", "file", "left@master:/l3", "-f", "-", input="3")
    assert "already finished" in p.t.fail("stop", "transaction", txn)
    assert "not found" in p.t.fail("stop", "transaction", "0" * 32)
    p.ok("stop", "transaction", other)
    p.ok("delete", "transaction", other)
    assert [t["id"] for t in p.raw("list", "transaction")] == [txn]
    assert "not found" in p.t.fail("resume", "transaction", other)
    assert "/l3" not in p.tree("left@master")


def test_transaction_errors_are_one_line(process_pipes: Pipes) -> None:
    p = process_pipes
    assert "no active transaction" in p.t.fail("finish", "transaction")
    assert "no active transaction" in p.t.fail("stop", "transaction")
    assert "no active transaction" in p.t.fail("inspect", "transaction")
    assert "not found" in p.t.fail("resume", "transaction", "0" * 32)
    p.repo("a", {"x": "x"})
    txn = p.ok("start", "transaction").strip()
    assert "already active" in p.t.fail("start", "transaction")
    p.ok("start", "commit", "a@master")
    assert "already has a commit" in p.t.fail("start", "commit", "a@other")
    # A queued branch change is checked against the queue at once.
    assert "not found" in p.t.fail("create", "branch", "a@b2", "--head", "nope")
    p.ok("finish", "transaction")
    assert "already finished" in p.t.fail("resume", "transaction", txn)
    assert "already finished" in p.t.fail("finish", "transaction", txn)
    p.ok("finish", "commit", "a@master")  # the commit outlives the transaction that started it
    assert p.raw("inspect", "commit", "a@master")["state"] == "FINISHED"


def test_create_repo_is_queued_until_the_transaction_finishes(tusk: object) -> None:
    t = tusk
    t.ok("create", "repo", "early")
    txn = t.ok("start", "transaction").strip()
    r = t("create", "repo", "raw", "-d", "the raw data")
    assert r.returncode == 0 and f"added to transaction {txn}" in r.stderr
    t.ok("create", "repo", "clean")
    assert [x["name"] for x in t.json("list", "repo", "--raw")] == ["early"]  # not yet
    shown = t.ok("inspect", "transaction")
    assert "create repo raw" in shown and "create repo clean" in shown
    # Checked on arrival: a second create of the same name, a bad name, an existing repo.
    assert "repo raw already exists" in t.fail("create", "repo", "raw")
    assert t.fail("create", "repo", "bad name!").startswith("tusk: ")
    assert "repo early already exists" in t.fail("create", "repo", "early")
    # Commits to a repo the transaction creates wait for it to finish.
    line = t.fail("put", "file", "raw@master:/a", "-f", "-", input="a")
    assert f"repo raw is created when transaction {txn} finishes" in line
    t.ok("finish", "transaction")
    repos = {x["name"]: x for x in t.json("list", "repo", "--raw")}
    assert set(repos) == {"early", "raw", "clean"} and repos["raw"]["description"] == "the raw data"
    t.ok("put", "file", "raw@master:/a", "-f", "-", input="a")
    assert t.ok("get", "file", "raw@master:/a") == "a"

    # Deleted: nothing is created.
    t.ok("start", "transaction")
    t.ok("create", "repo", "dropped")
    t.ok("delete", "transaction")
    assert "dropped" not in [x["name"] for x in t.json("list", "repo", "--raw")]

    # Created meanwhile by someone outside the transaction: finishing applies nothing.
    from tusk.pfs.refs import parse_repo
    from tusk.pfs.service import PfsService

    t.ok("start", "transaction")
    t.ok("create", "repo", "raced")
    t.ok("create", "repo", "innocent")
    outside = PfsService.open(t.root)
    outside.create_repo(parse_repo("raced"))
    outside.close()
    assert "repo raced was created while transaction" in t.fail("finish", "transaction")
    assert "innocent" not in [x["name"] for x in t.json("list", "repo", "--raw")]
    t.ok("delete", "transaction")


def test_delete_repo_is_queued_until_the_transaction_finishes(tusk: object) -> None:
    t = tusk
    for name in ("old", "keep", "up"):
        t.ok("create", "repo", name)
    t.ok("put", "file", "old@master:/a", "-f", "-", input="a")
    t.ok("put", "file", "up@master:/u", "-f", "-", input="u")
    t.ok("create", "branch", "keep@master", "-p", "up@master")  # keep depends on up
    txn = t.ok("start", "transaction").strip()
    r = t("delete", "repo", "old")
    assert r.returncode == 0 and f"added to transaction {txn}" in r.stderr
    assert "old" in [x["name"] for x in t.json("list", "repo", "--raw")]  # still there
    assert t.ok("get", "file", "old@master:/a") == "a"
    assert "delete repo old" in t.ok("inspect", "transaction")
    # Checked on arrival: a repo that others depend on needs --force, a missing one is refused.
    assert "is provenance of keep@master" in t.fail("delete", "repo", "up")
    assert "not found" in t.fail("delete", "repo", "nope")
    t.ok("create", "repo", "fresh")  # queued in the same transaction
    t.ok("finish", "transaction")
    names = {x["name"] for x in t.json("list", "repo", "--raw")}
    assert names == {"keep", "up", "fresh"}
    assert t("get", "file", "old@master:/a").returncode != 0


COPY = bash("cp -r /pfs/in/. /pfs/out/")


def test_a_pipeline_created_in_a_transaction_makes_one_job_with_its_input_commit(
    process_pipes: Pipes,
) -> None:
    """Pachyderm's transactions hold create pipeline too: the pipeline, its input repo and the
    first input commit appear together, and the first job is the transaction's commit set."""
    p = process_pipes
    txn = p.ok("start", "transaction").strip()
    p.ok("create", "repo", "in")
    r = p.t("create", "pipeline", "-f", str(p.spec_file(spec("copy", pfs_input("in", name="in"), COPY))))
    assert r.returncode == 0 and f"added to transaction {txn}" in r.stderr, r.stderr
    assert p.raw("list", "pipeline") == [] and p.raw("list", "repo") == []  # nothing yet
    ops = [(o["op"], o["repo"]) for o in p.raw("inspect", "transaction")["ops"]]
    assert ops == [("create_repo", "in"), ("create_pipeline", "copy")]
    assert "create pipeline copy" in p.ok("inspect", "transaction")
    p.ok("finish", "transaction")

    assert [x["name"] for x in p.raw("list", "pipeline")] == ["copy"]
    first = p.jobs("-p", "copy")
    assert [j["id"] for j in first] == [txn]  # the first job carries the transaction's ID
    p.wait(txn)
    p.put("in", {"a": "A"})
    p.wait("copy@master")
    assert p.text_tree("copy@master") == {"/a": "A"}


def test_create_and_update_pipeline_in_a_transaction_are_checked_on_arrival(
    process_pipes: Pipes,
) -> None:
    p = process_pipes
    p.repo("in", {"a": "A"})
    p.create(spec("copy", pfs_input("in", name="in"), COPY))
    p.wait("copy@master")
    jobs_before = len(p.jobs("-p", "copy"))
    txn = p.ok("start", "transaction").strip()
    # Refused at once, queue unchanged: an existing pipeline, a missing input, a repo the
    # transaction creates taking the pipeline's name, a second create of the same pipeline.
    assert "already exists" in p.t.fail(
        "create", "pipeline", "-f", str(p.spec_file(spec("copy", pfs_input("in"), COPY))))
    assert "input repo nope not found" in p.t.fail(
        "create", "pipeline", "-f", str(p.spec_file(spec("other", pfs_input("nope"), COPY))))
    p.ok("create", "repo", "taken")
    assert "this transaction creates repo taken" in p.t.fail(
        "create", "pipeline", "-f", str(p.spec_file(spec("taken", pfs_input("in"), COPY))))
    p.create(spec("second", pfs_input("copy", name="in"), COPY))  # reads a pipeline's output
    assert "already created by this transaction" in p.t.fail(
        "create", "pipeline", "-f", str(p.spec_file(spec("second", pfs_input("copy"), COPY))))
    assert "not found" in p.t.fail(
        "update", "pipeline", "-f", str(p.spec_file(spec("ghost", pfs_input("in"), COPY))))
    # An update of the existing pipeline and of the one the transaction creates are fine.
    upper = bash("for f in /pfs/in/*; do tr a-z A-Z < $f > /pfs/out/$(basename $f).up; done")
    p.update(spec("copy", pfs_input("in", name="in"), upper), "--reprocess")
    p.update(spec("second", pfs_input("copy", name="in"), upper))
    ops = [(o["op"], o["repo"]) for o in p.raw("inspect", "transaction")["ops"]]
    assert ops == [("create_repo", "taken"), ("create_pipeline", "second"),
                   ("update_pipeline", "copy"), ("update_pipeline", "second")]
    assert len(p.jobs("-p", "copy")) == jobs_before  # the update waits for the finish
    # Finishing through PFS alone would drop the pipelines: it is refused.
    from tusk.errors import FailedPrecondition
    from tusk.pfs.service import PfsService

    svc = PfsService.open(p.root)
    with pytest.raises(FailedPrecondition, match="holds pipeline changes"):
        svc.finish_transaction(txn)
    svc.close()

    p.ok("finish", "transaction")
    # The create and the update of 'second' apply as one version with the last spec, so no
    # superseded job leaves an errored commit in the transaction's commit set.
    assert {x["name"]: x["version"] for x in p.raw("list", "pipeline")} == {"copy": 2, "second": 1}
    p.wait(txn)
    assert [j["id"] for j in p.jobs("-p", "second")] == [txn]
    assert p.text_tree("copy@master") == {"/a.up": "A"}
    assert p.text_tree("second@master") == {"/a.up.up": "A"}
    assert {c["repo"] for c in p.raw("list", "commit", txn)} >= {"copy", "second"}


def test_delete_transaction_drops_queued_pipelines(process_pipes: Pipes) -> None:
    p = process_pipes
    p.repo("in", {"a": "A"})
    p.ok("start", "transaction")
    p.create(spec("copy", pfs_input("in", name="in"), COPY))
    p.ok("delete", "transaction")
    assert p.raw("list", "pipeline") == []
    assert [x["name"] for x in p.raw("list", "repo")] == ["in"]


def test_a_pipeline_and_the_first_commit_to_its_input_make_one_job(process_pipes: Pipes) -> None:
    """The usual reason for a pipeline in a transaction: the input commit the transaction starts
    and the new pipeline's first job are one commit set, so the pipeline runs once, on it."""
    p = process_pipes
    p.repo("raw")
    txn = p.ok("start", "transaction").strip()
    assert p.ok("start", "commit", "raw@master").strip() == txn
    p.create(spec("copy", pfs_input("raw", name="in"), COPY))
    p.ok("finish", "transaction")
    p.ok("put", "file", "raw@master:/a", "-f", "-", input="A")  # into the open commit
    p.ok("finish", "commit", "raw@master")
    commits = p.wait(txn)
    assert sorted(c["repo"] for c in commits) == ["copy", "raw"]
    assert [j["id"] for j in p.jobs("-p", "copy")] == [txn]  # one job, on the new commit
    assert p.text_tree("copy@master") == {"/a": "A"}

    # A pipeline reading a repo the same transaction deletes is refused on arrival.
    p.repo("old", {"x": "x"})
    p.ok("start", "transaction")
    p.ok("delete", "repo", "old")
    line = p.t.fail("create", "pipeline", "-f", str(p.spec_file(spec("late", pfs_input("old"), COPY))))
    assert "input repo old is deleted by this transaction" in line
    p.ok("delete", "transaction")


def test_update_repo_is_queued_until_the_transaction_finishes(tusk: object) -> None:
    t = tusk
    t.ok("create", "repo", "raw", "-d", "old words")
    t.ok("create", "repo", "gone")
    txn = t.ok("start", "transaction").strip()
    r = t("update", "repo", "raw", "-d", "new words")
    assert r.returncode == 0 and f"added to transaction {txn}" in r.stderr
    assert t.json("inspect", "repo", "raw", "--raw")["description"] == "old words"  # not yet
    assert "update repo raw [description=new words]" in t.ok("inspect", "transaction")
    assert "not found" in t.fail("update", "repo", "nope", "-d", "x")
    t.ok("delete", "repo", "gone")
    assert "deletes that repo" in t.fail("update", "repo", "gone", "-d", "x")
    t.ok("finish", "transaction")
    assert t.json("inspect", "repo", "raw", "--raw")["description"] == "new words"
    assert "gone" not in [x["name"] for x in t.json("list", "repo", "--raw")]


def test_a_cycle_made_of_two_queued_updates_is_refused_on_arrival(tusk: object) -> None:
    """Each update alone is fine; the second closes a cycle with the first (queued) one."""
    import json

    t = tusk
    t.ok("create", "repo", "data")

    def spec_file(name: str, reads: str) -> str:
        path = t.write(f"{name}-{reads}.json", json.dumps(
            spec(name, pfs_input(reads), ["true"])))
        return str(path)

    t.ok("create", "pipeline", "-f", spec_file("a", "data"))
    t.ok("create", "pipeline", "-f", spec_file("b", "data"))
    t.ok("start", "transaction")
    t.ok("update", "pipeline", "-f", spec_file("a", "b"))
    line = t.fail("update", "pipeline", "-f", spec_file("b", "a"))
    assert "cycle" in line and "b -> a -> b" in line
    assert len(t.json("inspect", "transaction", "--raw")["ops"]) == 1  # only the first is queued
    t.ok("finish", "transaction")
    versions = {p["name"]: p["version"] for p in t.json("list", "pipeline", "--raw")}
    assert versions == {"a": 2, "b": 1}
