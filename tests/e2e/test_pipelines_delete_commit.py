"""``delete commit`` / ``squash commit`` with a pipeline downstream (reference §1.8).

Deleting a commit set deletes its downstream output commits and their jobs; the pipeline then
goes on from the parent as if the set had never been: the next input commit runs a job and
``wait commit`` returns with the right output. No identifier is ever reused, so nothing left
of the deleted set can be mistaken for something new, and ``fsck`` stays clean.
"""

from __future__ import annotations

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e

COPY = bash("cp $in /pfs/out/$(basename $in)")


def _fsck_clean(p: Pipes) -> None:
    r = p.t("fsck")
    assert r.returncode == 0, f"fsck: {r.stdout} {r.stderr}"


def test_deleting_a_finished_input_commit_set_deletes_its_job_and_the_pipeline_goes_on(
        pipes: Pipes) -> None:
    p = pipes
    c1 = p.repo("in", {"a": "1"})
    p.create(spec("copy", pfs_input("in", "/*"), COPY))
    p.wait(c1)
    c2 = p.put("in", {"b": "2"})
    p.wait(c2)
    first, second = [j["id"] for j in p.jobs("-p", "copy")]  # newest first
    assert first == c2

    p.ok("delete", "commit", c2)
    assert [j["id"] for j in p.jobs("-p", "copy")] == [second]  # its job went with it
    assert p.text_tree("copy@master") == {"/a": "1"}
    _fsck_clean(p)

    c3 = p.put("in", {"c": "3"})
    p.wait(c3, timeout=60)
    job = p.job("copy", c3)
    assert job["state"] == "SUCCESS"
    assert p.text_tree("copy@master") == {"/a": "1", "/c": "3"}
    assert [j["id"] for j in p.jobs("-p", "copy")] == [c3, second]
    _fsck_clean(p)


def test_deleting_an_open_commit_with_staged_files_leaves_later_jobs_working(pipes: Pipes) -> None:
    p = pipes
    c1 = p.repo("in", {"a": "1"})
    p.create(spec("copy", pfs_input("in", "/*"), COPY))
    p.wait(c1)
    opened = p.raw("start", "commit", "in@master")["id"]
    p.t.write("staged.txt", "staged")
    p.ok("put", "file", "in@master:/staged", "-f", "staged.txt")
    p.ok("delete", "commit", opened)  # also runs gc, which must keep the jobs' datum maps
    _fsck_clean(p)

    c3 = p.put("in", {"c": "3"})
    p.wait(c3, timeout=60)
    assert p.job("copy", c3)["state"] == "SUCCESS"
    assert p.text_tree("copy@master") == {"/a": "1", "/c": "3"}
    c4 = p.put("in", {"d": "4"})  # and the one after: its base is c3's datum map
    p.wait(c4, timeout=60)
    assert p.text_tree("copy@master") == {"/a": "1", "/c": "3", "/d": "4"}
    _fsck_clean(p)


def test_squashing_an_input_commit_set_keeps_the_jobs_and_later_jobs_work(pipes: Pipes) -> None:
    p = pipes
    c1 = p.repo("in", {"a": "1"})
    p.create(spec("copy", pfs_input("in", "/*"), COPY))
    p.wait(c1)
    c2 = p.put("in", {"b": "2"})
    p.wait(c2)
    c3 = p.put("in", {"c": "3"})
    p.wait(c3)
    p.ok("squash", "commit", c2)
    assert p.text_tree("copy@master") == {"/a": "1", "/b": "2", "/c": "3"}
    p.ok("gc")
    _fsck_clean(p)
    c4 = p.put("in", {"d": "4"})
    p.wait(c4, timeout=60)
    assert p.job("copy", c4)["state"] == "SUCCESS"
    assert p.text_tree("copy@master") == {"/a": "1", "/b": "2", "/c": "3", "/d": "4"}
    _fsck_clean(p)


def test_deleting_a_commit_set_whose_job_is_running_kills_the_job(pipes: Pipes) -> None:
    import time

    p = pipes
    c1 = p.repo("in", {"a": "1"})
    p.create(spec("slow", pfs_input("in", "/*"), bash("case $(basename $in) in b|c) sleep 60;; esac;"
                                                       " cp $in /pfs/out/$(basename $in)")))
    p.wait(c1, timeout=60)
    c2 = p.put("in", {"b": "2", "c": "3"})
    deadline = time.monotonic() + 60
    # The job appears once the controller has seen the commit; until then there is none.
    while (state := next((j["state"] for j in p.jobs(c2, "-p", "slow")), "")) != "RUNNING":
        assert time.monotonic() < deadline and state in ("", "CREATED", "STARTING"), state
        time.sleep(0.1)
    p.ok("delete", "commit", c2)
    assert c2 not in [j["id"] for j in p.jobs("-p", "slow")]
    c3 = p.put("in", {"d": "4"})
    p.wait(c3, timeout=40)  # long before the killed job's 60 s datums could have finished
    assert p.job("slow", c3)["state"] == "SUCCESS"
    assert p.text_tree("slow@master") == {"/a": "1", "/d": "4"}
    _fsck_clean(p)
