"""Failing datums: ``err_cmd`` recovery, retries, failed jobs, and UNRUNNABLE downstream jobs.

After Pachyderm's error-handling docs: a datum whose ``cmd`` fails but whose ``err_cmd``
succeeds is RECOVERED (no output, job not failed, retried by later jobs); without ``err_cmd``
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

    # Recovered datums are not "processed": the next job tries them again (and skips the rest).
    c = p.put("in", {"d.txt": "new"})
    p.wait(c)
    assert p.states("copy", c) == {"SUCCESS": 1, "RECOVERED": 1, "SKIPPED": 2}
    assert sorted(p.tree("copy@master")) == ["/a.txt", "/c.txt", "/d.txt"]


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
