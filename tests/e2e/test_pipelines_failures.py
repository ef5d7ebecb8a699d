"""Failing datums: ``err_cmd`` recovery, retries, failed jobs, and UNRUNNABLE downstream jobs.

After Pachyderm's error-handling docs: a datum whose ``cmd`` fails but whose ``err_cmd``
succeeds is RECOVERED (no output, job not failed, skipped by later jobs like a processed datum:
``rerun pipeline --reprocess`` runs it again); without ``err_cmd``
a datum that fails ``datum_tries`` times fails the job, whose output commit is finished with
the error, and every job downstream in the same commit set becomes UNRUNNABLE.
"""

from __future__ import annotations

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e

# Copies its file to the output, then fails on files that say BAD (the output must not survive).
COPY_OR_FAIL = bash(
    "set -e; n=$(basename $in); cp $in /pfs/out/$n; echo attempt on $n;"
    " if grep -q BAD $in; then echo $n is bad >&2; exit 3; fi"
)
FILES = {"a.txt": "good", "bad.txt": "BAD", "c.txt": "good too"}


def test_err_cmd_recovers_a_datum(pipes: Pipes) -> None:
    p = pipes
    p.repo("in", FILES)
    p.create(spec("copy", pfs_input("in"), COPY_OR_FAIL, datum_tries=1,
                  transform={"err_cmd": bash("echo recovering $(basename $in)")}))
    commits = p.wait("copy@master")
    assert commits[0]["error"] == ""
    job = p.job("copy")
    assert job["state"] == "SUCCESS"
    assert (job["processed"], job["recovered"], job["failed"], job["total"]) == (2, 1, 0, 3)
    datums = {d["files"][0]: d for d in p.datums("copy", job["id"])}
    assert datums["in:/bad.txt"]["state"] == "RECOVERED"
    assert datums["in:/a.txt"]["state"] == "SUCCESS"
    # A recovered datum's output is discarded.
    assert p.text_tree("copy@master") == {"/a.txt": "good", "/c.txt": "good too"}
    logs = p.logs("copy")
    assert "bad.txt is bad" in logs and "recovering bad.txt" in logs
    listing = p.ok("list", "job", "-p", "copy")
    assert "1 recovered" in listing

    # A recovered datum is done with, as in Pachyderm: later jobs skip it like the others.
    c = p.put("in", {"d.txt": "new"})
    p.wait(c)
    assert p.states("copy", c) == {"SUCCESS": 1, "SKIPPED": 3}
    assert sorted(p.tree("copy@master")) == ["/a.txt", "/c.txt", "/d.txt"]


def test_recovered_datums_are_skipped_by_later_jobs_as_in_pachyderms_example(pipes: Pipes) -> None:
    """Pachyderm's err_cmd example: file1 succeeds, file2 fails and is recovered, file3 fails
    for good. The jobs' progress reads 1 + 0 / 1, then 0 + 1 + 1 / 2, then 0 + 2 / 3 (failed)."""
    p = pipes
    p.repo("input")
    p.create(spec("error_test", pfs_input("input"), ["bash"], stdin=[
        "if", "[ -a /pfs/input/file1 ]", "then cp /pfs/input/* /pfs/out/", "exit 0", "fi", "exit 1"],
        transform={"err_cmd": ["bash"], "err_stdin": [
            "if", "[ -a /pfs/input/file2 ]", "then", "exit 0", "fi", "exit 1"]}, datum_tries=1))

    def progress(commit: str) -> tuple[str, int, int, int, int, int]:
        j = p.job("error_test", commit)
        return j["state"], j["processed"], j["skipped"], j["recovered"], j["failed"], j["total"]

    first = p.put("input", {"file1": "foo\n"})
    p.wait(first)
    assert progress(first) == ("SUCCESS", 1, 0, 0, 0, 1)
    second = p.put("input", {"file2": "bar\n"})
    p.wait(second)
    assert progress(second) == ("SUCCESS", 0, 1, 1, 0, 2)
    assert p.text_tree("error_test@master") == {"/file1": "foo\n"}
    third = p.put("input", {"file3": "baz\n"})
    p.wait(third, ok=False)
    assert progress(third) == ("FAILURE", 0, 2, 0, 1, 3)
    states = {d["files"][0]: d for d in p.datums("error_test", third)}
    assert states["input:/file2"]["state"] == "SKIPPED"
    assert states["input:/file2"]["job"] == second  # skipped: the job that recovered it stands
    # The failed job changed nothing; a good fourth commit runs only the datum that failed.
    fourth = p.put("input", {"file3": "file1 is not here\n", "file1": "foo\n"})
    p.wait(fourth, ok=False)
    assert progress(fourth)[2] == 2  # file1 and file2 skipped again; file3 still fails

    # 'rerun pipeline --reprocess' is how a user runs a recovered datum again.
    p.ok("delete", "file", "input@master:/file3")
    p.ok("rerun", "pipeline", "error_test", "--reprocess")
    p.wait("error_test@master")
    job = p.job("error_test")
    assert (job["processed"], job["recovered"], job["skipped"]) == (1, 1, 0)


def test_failed_datum_fails_job_and_downstream_is_unrunnable(pipes: Pipes) -> None:
    p = pipes
    p.repo("in", FILES)
    p.create(spec("copy", pfs_input("in"), COPY_OR_FAIL, datum_tries=2))
    p.create(spec("after", pfs_input("copy", "/"), bash("ls /pfs/copy > /pfs/out/listing")))
    commits = p.wait("after@master", ok=False)
    assert "failed" in commits[0]["error"]
    copy_commit = p.raw("inspect", "commit", "copy@master")
    assert copy_commit["error"] and "bad.txt" in copy_commit["error"]

    job = p.job("copy")
    assert job["state"] == "FAILURE"
    assert (job["processed"], job["failed"], job["total"]) == (2, 1, 3)
    # The reason names the failing datum by its input file and ID.
    bad = next(d for d in p.datums("copy", job["id"]) if d["files"] == ["in:/bad.txt"])
    assert bad["state"] == "FAILED" and bad["attempts"] == 2 and "exit code 3" in bad["reason"]
    assert "in:/bad.txt" in job["reason"] and bad["id"][:12] in job["reason"]
    table = p.ok("list", "job")
    assert "FAILURE" in table and "UNRUNNABLE" in table
    down = p.job("after")
    assert down["state"] == "UNRUNNABLE" and "copy" in down["reason"]
    assert p.logs("copy", "--datum", bad["id"][:12]).count("attempt on bad.txt") == 2
    # A failed job leaves the output as it was (here: empty, there was no earlier success).
    assert p.tree("copy@master") == {}

    # Fixing the data: the next job starts from the last successful job (none), so every
    # datum runs, and the downstream pipeline runs again too.
    c = p.put("in", {"bad.txt": "fixed"})
    p.wait(c)
    assert p.states("copy", c) == {"SUCCESS": 3}
    assert p.text_tree("after@master") == {"/listing": "a.txt\nbad.txt\nc.txt\n"}
