"""DAGs and pipeline updates end to end.

* A chain of three pipelines: one input commit propagates one commit with the same global ID
  through every repo; ``tusk wait commit <id>`` returns when the whole DAG is done, and
  ``list commit <id>`` / ``list job <id>`` show the commit set and its jobs.
* ``update pipeline`` keeps the salt (processed datums stay skipped, only new data sees the new
  code); ``update pipeline --reprocess`` and ``reprocess_spec: every_job`` run everything.
"""

from __future__ import annotations

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e


def test_chain_of_three_waited_for_by_global_id(pipes: Pipes) -> None:
    p = pipes
    p.repo("raw", {"a.txt": "hello world\n"})
    p.create(spec("upper", pfs_input("raw"), bash("tr a-z A-Z < $raw > /pfs/out/$(basename $raw)")))
    p.create(spec("reversed", pfs_input("upper"), bash("rev < $upper > /pfs/out/$(basename $upper)")))
    p.create(spec("sizes", pfs_input("reversed", "/"),
                  bash("cd /pfs/reversed; wc -c * | grep -v total | sort -k2 > /pfs/out/sizes")))
    p.wait("sizes@master")

    gid = p.put("raw", {"b.txt": "tusk\n"})
    commits = p.wait(gid)
    # Everything downstream finished in the same commit set, the moment the wait returned.
    assert sorted(c["repo"] for c in commits) == ["raw", "reversed", "sizes", "upper"]
    assert all(c["id"] == gid and c["state"] == "FINISHED" for c in commits)
    listed = p.raw("list", "commit", gid)
    assert sorted(c["repo"] for c in listed) == ["raw", "reversed", "sizes", "upper"]
    jobs = p.jobs(gid)
    assert sorted(j["pipeline"] for j in jobs) == ["reversed", "sizes", "upper"]
    assert all(j["id"] == gid and j["state"] == "SUCCESS" for j in jobs)

    assert p.text_tree("reversed@master") == {"/a.txt": "DLROW OLLEH\n", "/b.txt": "KSUT\n"}
    sizes = p.text_tree(f"sizes@{gid}")["/sizes"].split()
    assert sizes == ["12", "a.txt", "5", "b.txt"]
    # Each pipeline ran only the new file's datum (sizes has one datum, which changed).
    assert {j["pipeline"]: (j["processed"], j["skipped"]) for j in jobs} == {
        "upper": (1, 1), "reversed": (1, 1), "sizes": (1, 0)}


def versioned(version: str, **top: object) -> dict:
    return spec("tag", pfs_input("in"), bash(f"echo {version} > /pfs/out/$(basename $in)"), **top)


def test_update_keeps_salt_and_reprocess_runs_everything(pipes: Pipes) -> None:
    p = pipes
    p.repo("in", {"a": "1", "b": "2"})
    p.create(versioned("v1"))
    p.wait("tag@master")
    salt = p.raw("inspect", "pipeline", "tag")["spec"]["salt"]

    # New code, same salt: the update's job skips what v1 processed.
    p.update(versioned("v2"))
    p.wait("tag@master")
    info = p.raw("inspect", "pipeline", "tag")
    assert info["version"] == 2 and info["spec"]["salt"] == salt
    job = p.job("tag")
    assert (job["processed"], job["skipped"]) == (0, 2)
    c = p.put("in", {"c": "3"})
    p.wait(c)
    assert p.text_tree("tag@master") == {"/a": "v1\n", "/b": "v1\n", "/c": "v2\n"}

    # --reprocess: a new salt, so every datum runs with the current code.
    p.update(versioned("v3"), "--reprocess")
    p.wait("tag@master")
    assert p.raw("inspect", "pipeline", "tag")["spec"]["salt"] != salt
    job = p.job("tag")
    assert (job["processed"], job["skipped"], job["total"]) == (3, 0, 3)
    assert set(p.text_tree("tag@master").values()) == {"v3\n"}

    # reprocess_spec every_job: nothing is ever skipped.
    p.update(versioned("v4", reprocess_spec="every_job"))
    p.wait("tag@master")
    c = p.put("in", {"d": "4"})
    p.wait(c)
    job = p.job("tag", c)
    assert (job["processed"], job["skipped"], job["total"]) == (4, 0, 4)
    assert set(p.text_tree("tag@master").values()) == {"v4\n"}
