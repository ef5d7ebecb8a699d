"""File-level lineage end to end: ``tusk lineage``, ``lineage --downstream`` and ``tusk explain``.

A two-pipeline text DAG: ``raw`` (a plain repo) -> ``upper`` (one datum per file, upper-cases
it) -> ``joined`` (one datum over everything, concatenates). Lineage of ``joined:/all.txt``
must reach back through ``upper`` to the files of ``raw`` with their content hashes and the
input commits they were read from, and must follow a new version of an input file. The
downstream view must list what a file version went into, and only what still stands unless
``--all``. ``explain`` must give each datum's reason: new, changed, previously failed,
reprocess requested, unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, process_pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e


def dag(p: Pipes) -> str:
    """raw -> upper -> joined; returns the commit of raw that the first jobs read."""
    p.repo("raw", {"a.txt": "hello\n"})
    first = p.put("raw", {"b.txt": "world\n"})
    p.create(spec("upper", pfs_input("raw"), bash("tr a-z A-Z < $raw > /pfs/out/$(basename $raw)")))
    p.create(spec("joined", pfs_input("upper", "/"), bash("cat /pfs/upper/* > /pfs/out/all.txt")))
    p.wait("joined@master")
    return first


def file_hash(p: Pipes, ref: str) -> str:
    return p.raw("inspect", "file", ref)["hash"]


def by_path(nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n["path"]: n for n in nodes}


def test_lineage_reaches_the_input_files_and_follows_new_versions(process_pipes: Pipes) -> None:
    p = process_pipes
    first = dag(p)
    a_added = p.raw("list", "commit", "raw@master")[-1]["id"]  # the commit that put a.txt

    top = p.raw("lineage", "joined@master:/all.txt")
    assert (top["origin"], top["pipeline"], top["pipeline_version"]) == ("pipeline", "joined", 1)
    assert top["hash"] == file_hash(p, "joined@master:/all.txt")
    assert top["job"] == p.job("joined")["id"]
    ups = by_path(top["inputs"])
    assert set(ups) == {"/a.txt", "/b.txt"}
    assert ups["/a.txt"]["repo"] == "upper" and ups["/a.txt"]["pipeline"] == "upper"
    assert ups["/a.txt"]["hash"] == file_hash(p, "upper@master:/a.txt")
    raw_a = ups["/a.txt"]["inputs"][0]
    assert (raw_a["input"], raw_a["repo"], raw_a["path"]) == ("raw", "raw", "/a.txt")
    assert raw_a["hash"] == file_hash(p, "raw@master:/a.txt")
    assert raw_a["commit"] == first  # the input commit the upper job read
    assert raw_a["origin"] == "input" and raw_a["added_in"] == a_added
    assert "inputs" not in raw_a

    # A new version of a.txt: the new output's lineage reaches the new hash and commit; b.txt's
    # datum was skipped, so its part of the tree still points at the first job and commit.
    old_a = raw_a["hash"]
    job1 = p.job("upper")["id"]  # creating the pipeline made the first job's commit set
    joined1 = p.job("joined")["id"]
    second = p.put("raw", {"a.txt": "hello again\n"})
    p.wait(second)
    top = p.raw("lineage", "joined@master:/all.txt")
    assert top["job"] == second and top["commit"] == second
    ups = by_path(top["inputs"])
    raw_a = ups["/a.txt"]["inputs"][0]
    assert raw_a["hash"] == file_hash(p, "raw@master:/a.txt") != old_a
    assert raw_a["commit"] == second and raw_a["added_in"] == second
    assert ups["/a.txt"]["job"] == second
    assert ups["/b.txt"]["job"] == job1  # skipped in the second job: the first one ran it
    assert ups["/b.txt"]["inputs"][0]["commit"] == first
    # The older output commit still has the older lineage.
    assert by_path(p.raw("lineage", f"joined@{joined1}:/all.txt")["inputs"])["/a.txt"][
        "inputs"][0]["hash"] == old_a

    # The table is an indented tree; --depth stops early; yaml works too.
    table = p.ok("lineage", "joined@master:/all.txt")
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["FILE", "COMMIT"]
    assert lines[1].startswith("joined:/all.txt") and "pipeline joined v1" in lines[1]
    assert any(line.startswith("    raw:/a.txt") and "original input" in line for line in lines)
    shallow = p.raw("lineage", "joined@master:/all.txt", "--depth", "0")
    assert shallow["truncated"] and shallow["inputs"] == []
    assert "origin: pipeline" in p.ok("lineage", "joined@master:/all.txt", "-o", "yaml")

    # A file of a plain repo is an original input.
    plain = p.raw("lineage", "raw@master:/b.txt")
    assert plain["origin"] == "input" and plain["added_in"] == first

    # User errors: one line, non-zero exit.
    assert "not found" in p.t.fail("lineage", "joined@master:/nope.txt")
    assert "not found" in p.t.fail("lineage", "nosuch@master:/a.txt")
    assert "not found" in p.t.fail("lineage", "raw@nobranch:/a.txt")
    assert "names no file" in p.t.fail("lineage", "raw@master")
    assert "root directory" in p.t.fail("lineage", "raw@master:/")


def test_lineage_downstream_lists_what_a_file_version_went_into(process_pipes: Pipes) -> None:
    p = process_pipes
    first = dag(p)
    job1 = p.job("upper")["id"]
    joined1 = p.job("joined")["id"]
    outs = p.raw("lineage", "--downstream", "raw@master:/a.txt")
    assert [(o["level"], o["repo"], o["path"], o["current"]) for o in outs] == [
        (1, "upper", "/a.txt", True), (2, "joined", "/all.txt", True)]
    assert outs[0]["job"] == job1 and outs[0]["hash"] == file_hash(p, "upper@master:/a.txt")
    assert outs[0]["input"]["hash"] == file_hash(p, "raw@master:/a.txt")
    assert outs[1]["input"]["repo"] == "upper" and outs[1]["pipeline"] == "joined"

    second = p.put("raw", {"a.txt": "hello again\n"})
    p.wait(second)
    # The new version went into the new outputs.
    outs = p.raw("lineage", "--downstream", "raw@master:/a.txt")
    assert [(o["repo"], o["path"], o["job"]) for o in outs] == [
        ("upper", "/a.txt", second), ("joined", "/all.txt", second)]
    # The old version's outputs are all superseded: left out, unless --all.
    assert p.raw("lineage", "--downstream", f"raw@{first}:/a.txt") == []
    old = p.raw("lineage", "--downstream", f"raw@{first}:/a.txt", "--all")
    assert [(o["repo"], o["job"], o["current"]) for o in old] == [
        ("upper", job1, False), ("joined", joined1, False)]
    # b.txt did not change: its upper output (from the first job, skipped since) still stands,
    # and so does the joined output the second job made from it.
    outs = p.raw("lineage", "--downstream", "raw@master:/b.txt")
    assert [(o["repo"], o["path"], o["job"], o["current"]) for o in outs] == [
        ("upper", "/b.txt", job1, True), ("joined", "/all.txt", second, True)]

    table = p.ok("lineage", "--downstream", "raw@master:/a.txt").splitlines()
    assert table[1].startswith("upper:/a.txt") and table[2].startswith("  joined:/all.txt")
    assert "current" in table[1] and "raw:/a.txt" in table[1]
    assert "not found" in p.t.fail("lineage", "--downstream", "raw@master:/zzz")


def explained(p: Pipes, ref: str) -> dict[str, str]:
    """File -> why, from ``tusk explain``; ``list datum --why`` must say the same."""
    rows = p.raw("explain", ref)
    assert p.raw("list", "datum", ref, "--why") == rows
    return {r["files"][0].split(":", 1)[1]: r["why"] for r in rows}


def test_explain_says_why_each_datum_ran(process_pipes: Pipes) -> None:
    p = process_pipes
    p.repo("in", {"a": "1", "bad": "BAD", "e": "5"})
    check = spec("check", pfs_input("in"),
                 bash("grep -q BAD $in && exit 3; cp $in /pfs/out/$(basename $in)"),
                 datum_tries=1, transform={"err_cmd": ["true"]})
    p.create(check)
    p.wait("check@master")
    job1 = p.job("check")["id"]
    assert explained(p, f"check@{job1}") == {"/a": "new", "/bad": "new", "/e": "new"}

    c = p.put("in", {"a": "changed", "c": "3"})
    p.wait(c)
    # /bad was recovered by err_cmd: done with, like a processed datum (as in Pachyderm).
    assert explained(p, f"check@{c}") == {
        "/a": "changed", "/bad": "unchanged", "/c": "new", "/e": "unchanged"}
    # Skipped datums name the job that ran them.
    skipped = {r["files"][0]: r for r in p.raw("explain", f"check@{c}")}["in:/e"]
    assert (skipped["state"], skipped["job"]) == ("SKIPPED", job1)

    # A reprocess (new salt) reruns everything, and says so.
    p.update(check, "--reprocess")
    p.wait("check@master")
    job3 = p.job("check")["id"]
    assert explained(p, f"check@{job3}") == {
        "/a": "reprocess requested", "/bad": "reprocess requested", "/c": "reprocess requested",
        "/e": "reprocess requested"}
    # reprocess_spec every_job: unchanged datums run anyway, at the user's request.
    p.update({**check, "reprocess_spec": "every_job"})
    p.wait("check@master")
    assert set(explained(p, "check").values()) == {"reprocess requested"}

    table = p.ok("explain", f"check@{c}")
    assert table.splitlines()[0].split()[:3] == ["ID", "WHY", "STATUS"]
    assert "changed" in table and "unchanged" in table
    assert "not found" in p.t.fail("explain", "check@nosuchjob")
    assert "not found" in p.t.fail("explain", "nosuch")
    assert "needs a job" in p.t.fail("list", "datum", "--why")
