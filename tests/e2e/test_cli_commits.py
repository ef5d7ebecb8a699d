"""Commits, commit sets and branches through the real CLI."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

pytestmark = pytest.mark.e2e

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_open_commit_collects_puts_one_off_puts_make_commits(tusk):
    tusk.ok("create", "repo", "data")
    started = tusk.ok("start", "commit", "data@master", "-m", "batch").strip()
    assert HEX32.match(started)
    tusk.ok("put", "file", "data@master:/a.txt", "-f", "-", input="a\n")
    tusk.ok("put", "file", "data@master:/b.txt", "-f", "-", input="b\n")

    [open_commit] = tusk.json("list", "commit", "data@master", "--raw")
    assert open_commit["id"] == started
    assert open_commit["state"] == "STARTED" and open_commit["description"] == "batch"

    tusk.ok("finish", "commit", "data@master")
    tusk.ok("put", "file", "data@master:/c.txt", "-f", "-", input="c\n")
    tusk.ok("put", "file", "data@master:/d.txt", "-f", "-", input="d\n")

    commits = tusk.json("list", "commit", "data@master", "--raw")
    assert len(commits) == 3  # one for the batch, one per one-off put
    assert commits[-1]["id"] == started  # newest first
    assert all(c["state"] == "FINISHED" for c in commits)
    assert [c["file_count"] for c in commits] == [4, 3, 2]
    assert commits[0]["parent"] == commits[1]["id"]

    # the description can be given (or replaced) when finishing
    tusk.ok("start", "commit", "data@master")
    tusk.ok("finish", "commit", "data@master", "-m", "empty but described")
    head = tusk.json("inspect", "commit", "data@master", "--raw")
    assert head["description"] == "empty but described" and head["file_count"] == 4


def test_ancestry_refs(tusk):
    tusk.ok("create", "repo", "data")
    for i in (1, 2, 3, 4):
        tusk.ok("put", "file", f"data@master:/f{i}", "-f", "-", input=f"{i}\n")
    c4, c3, c2, c1 = tusk.commit_ids("data@master")

    def commit_of(ref: str) -> str:
        return tusk.json("inspect", "commit", ref, "--raw")["id"]

    assert commit_of("data@master^") == c3
    assert commit_of("data@master^2") == c2
    assert commit_of("data@master^^^") == c1
    assert commit_of("data@master.1") == c1
    assert commit_of(f"data@{c3}^") == c2
    assert [c["id"] for c in tusk.json("list", "commit", "data@master", "-n", "1", "--raw")] == [c4]
    assert tusk.ok("get", "file", "data@master^2:/f2") == "2\n"
    tusk.fail("inspect", "commit", "data@master^4")  # history has only 3 parents
    tusk.fail("inspect", "commit", "data@master.5")


def test_commit_set_across_repos_and_wait(tusk):
    tusk.ok("create", "repo", "images")
    tusk.ok("create", "repo", "edges")
    tusk.ok("put", "file", "images@master:/a.png", "-f", "-", input="a")
    tusk.ok("create", "branch", "edges@master", "-p", "images@master")
    tusk.ok("finish", "commit", "edges@master")  # a new branch with provenance starts open

    tusk.ok("put", "file", "images@master:/b.png", "-f", "-", input="b")
    [set_id] = tusk.commit_ids("images@master")[:1]
    subcommits = tusk.json("list", "commit", set_id, "--raw")
    by_repo = {c["repo"]: c for c in subcommits}
    assert set(by_repo) == {"images", "edges"}
    assert {c["id"] for c in subcommits} == {set_id}
    assert by_repo["images"]["origin"] == "USER" and by_repo["images"]["state"] == "FINISHED"
    assert by_repo["edges"]["origin"] == "AUTO" and by_repo["edges"]["state"] == "STARTED"

    # the set is not finished until edges' commit is: a bounded wait gives up
    t0 = time.monotonic()
    assert "timed out" in tusk.fail("wait", "commit", set_id, "--timeout", "0.5")
    assert time.monotonic() - t0 < 20

    tusk.ok("finish", "commit", f"edges@{set_id}")
    # once finished, a branch with provenance takes no user writes: its commits come upstream
    assert "provenance" in tusk.fail("put", "file", "edges@master:/x", "-f", "-", input="x")
    waited = tusk.json("wait", "commit", set_id, "--raw")
    assert {c["repo"] for c in waited} == {"images", "edges"}
    assert all(c["state"] == "FINISHED" for c in waited)

    sets = {s["id"]: s for s in tusk.json("list", "commit", "--raw")}
    assert len(sets[set_id]["commits"]) == 2 and sets[set_id]["finished"] is True


def test_subscribe_commit(tusk):
    tusk.ok("create", "repo", "data")
    tusk.ok("put", "file", "data@master:/a", "-f", "-", input="a")
    [old] = tusk.commit_ids("data@master")

    # a live subscription prints existing commits, then new ones as they are made
    proc = subprocess.Popen(
        [tusk.exe, "subscribe", "commit", "data@master", "--raw", "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=tusk.env, cwd=tusk.cwd, text=True,
    )
    try:
        first = proc.stdout.readline()  # also proves the subscriber is up before we commit
        assert first and json.loads(first)["id"] == old
        tusk.ok("put", "file", "data@master:/b", "-f", "-", input="b")
        new = tusk.commit_ids("data@master")[0]
        seen = []
        while new not in seen:  # until the new commit streams in, or --timeout ends the stream
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(json.loads(line)["id"])
    finally:
        proc.kill()
        proc.wait()
    assert seen == [new]

    # --from: only what came after a commit
    r = tusk("subscribe", "commit", "data@master", "--from", old, "--timeout", "0.5")
    assert r.returncode == 0 and new in r.stdout and old not in r.stdout


def test_delete_and_squash_commit_sets(tusk):
    tusk.ok("create", "repo", "data")
    for i in (1, 2, 3):
        tusk.ok("put", "file", f"data@master:/f{i}", "-f", "-", input=f"{i}\n")
    c3, c2, c1 = tusk.commit_ids("data@master")

    assert "child" in tusk.fail("delete", "commit", c2)  # not the head: would orphan c3
    assert "no children" in tusk.fail("squash", "commit", c3)  # its data would be lost

    tusk.ok("squash", "commit", c2)
    assert tusk.commit_ids("data@master") == [c3, c1]
    files = [f["path"] for f in tusk.json("list", "file", "data@master", "--raw")]
    assert files == ["/f1", "/f2", "/f3"]  # c2's change lives on in c3
    assert tusk.json("inspect", "commit", f"data@{c3}", "--raw")["parent"] == c1

    tusk.ok("delete", "commit", c3)
    assert tusk.commit_ids("data@master") == [c1]
    assert [f["path"] for f in tusk.json("list", "file", "data@master", "--raw")] == ["/f1"]
    assert tusk.json("inspect", "branch", "data@master", "--raw")["head"] == c1
    assert "not found" in tusk.fail("inspect", "commit", f"data@{c3}")


def test_branches(tusk):
    tusk.ok("create", "repo", "data")
    tusk.ok("put", "file", "data@master:/a", "-f", "-", input="a")
    tusk.ok("put", "file", "data@master:/b", "-f", "-", input="b")
    c2, c1 = tusk.commit_ids("data@master")

    tusk.ok("create", "branch", "data@dev", "--head", "master")
    tusk.ok("create", "branch", "data@old", "--head", "master^")
    tusk.ok("create", "branch", "data@pinned", "--head", c1)
    heads = {b["name"]: b["head"] for b in tusk.json("list", "branch", "data", "--raw")}
    assert heads == {"master": c2, "dev": c2, "old": c1, "pinned": c1}

    # create branch on an existing branch moves its head
    tusk.ok("create", "branch", "data@dev", "--head", c1)
    assert tusk.json("inspect", "branch", "data@dev", "--raw")["head"] == c1
    # a write to dev builds on c1, not on master
    tusk.ok("put", "file", "data@dev:/c", "-f", "-", input="c")
    assert [f["path"] for f in tusk.json("list", "file", "data@dev", "--raw")] == ["/a", "/c"]
    assert tusk.commit_ids("data@master") == [c2, c1]

    tusk.ok("delete", "branch", "data@old")
    names = {b["name"] for b in tusk.json("list", "branch", "data", "--raw")}
    assert names == {"master", "dev", "pinned"}
    assert tusk.json("inspect", "commit", f"data@{c1}", "--raw")["id"] == c1  # commits stay

    # a branch created without --head gets a new, empty head commit
    tusk.ok("create", "branch", "data@empty")
    assert tusk.json("list", "file", "data@empty", "--raw") == []

    # start commit -p: a new branch whose first commit builds on c1; put into it by ID
    started = tusk.ok("start", "commit", "data@fix", "-p", c1).strip()
    tusk.ok("put", "file", f"data@{started}:/d", "-f", "-", input="d")
    tusk.ok("finish", "commit", f"data@{started}")
    fix = tusk.json("inspect", "commit", "data@fix", "--raw")
    assert (fix["id"], fix["parent"], fix["file_count"]) == (started, c1, 2)
