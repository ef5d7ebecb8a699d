"""Projects and repos through the real CLI: lifecycle, naming rules, project scoping, delete."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def _names(listing: list[dict]) -> list[str]:
    return [r["name"] for r in listing]


def test_project_lifecycle_and_default_project(tusk):
    projects = tusk.json("list", "project", "--raw")
    assert [p["name"] for p in projects] == ["default"]

    tusk.ok("create", "project", "lab", "-d", "experiments")
    info = tusk.json("inspect", "project", "lab", "--raw")
    assert info["name"] == "lab" and info["description"] == "experiments"

    tusk.ok("update", "project", "lab", "-d", "renamed purpose")
    listed = {p["name"]: p for p in tusk.json("list", "project", "-o", "json")}
    assert set(listed) == {"default", "lab"}
    assert listed["lab"]["description"] == "renamed purpose"

    assert "already exists" in tusk.fail("create", "project", "lab")

    # a project holding a repo needs --force, and keeps the repo when refused
    tusk.ok("create", "repo", "lab/raw")
    assert "--force" in tusk.fail("delete", "project", "lab")
    assert _names(tusk.json("list", "repo", "--project", "lab", "--raw")) == ["raw"]
    tusk.ok("delete", "project", "lab", "-f")
    assert [p["name"] for p in tusk.json("list", "project", "--raw")] == ["default"]
    assert tusk.json("list", "repo", "-A", "--raw") == []
    tusk.fail("delete", "project", "default")


def test_project_naming_rules(tusk):
    for bad in ["_lab", "p" * 52]:
        assert "project name" in tusk.fail("create", "project", "--", bad), bad
    tusk.ok("create", "project", "P" * 50 + "-")  # 51 characters, letters, digits, '-', '_'


def test_repo_lifecycle(tusk):
    assert tusk.json("list", "repo", "--raw") == []
    tusk.ok("create", "repo", "images", "-d", "raw images")
    out = tusk.ok("list", "repo")
    assert "images" in out and "raw images" in out

    info = tusk.json("inspect", "repo", "images", "--raw")
    assert info["name"] == "images" and info["project"] == "default"
    assert info["description"] == "raw images"
    assert info["branches"] == []  # create repo makes no branch

    tusk.ok("update", "repo", "images", "-d", "cleaned images")
    assert tusk.json("inspect", "repo", "images", "--raw")["description"] == "cleaned images"
    assert "already exists" in tusk.fail("create", "repo", "images")

    tusk.write("a.txt", "hello\n")
    tusk.ok("put", "file", "images@master", "-f", "a.txt")
    info = tusk.json("inspect", "repo", "images", "--raw")
    assert info["branches"] == ["master"] and info["size_bytes"] == 6

    tusk.ok("delete", "repo", "images")
    assert tusk.json("list", "repo", "--raw") == []
    assert "not found" in tusk.fail("inspect", "repo", "images")


def test_repo_naming_rules(tusk):
    good = ["Images_2-x", "r" * 63]
    bad = ["bad.name", "has space", "r" * 64, "caf\u00e9"]
    for name in good:
        tusk.ok("create", "repo", name)
    for name in bad:
        tusk.fail("create", "repo", name)
    assert sorted(_names(tusk.json("list", "repo", "--raw"))) == sorted(good)


def test_repos_are_scoped_by_project(tusk):
    tusk.ok("create", "project", "lab")
    tusk.ok("create", "repo", "data")
    tusk.ok("create", "repo", "data", "--project", "lab")  # same name, other project
    # "lab/data" and "--project lab" name the same repo
    assert "already exists" in tusk.fail("create", "repo", "lab/data")

    tusk.write("d.txt", "default data\n")
    tusk.write("l.txt", "lab data\n")
    tusk.ok("put", "file", "data@master:/f.txt", "-f", "d.txt")
    tusk.ok("put", "file", "lab/data@master:/f.txt", "-f", "l.txt")
    assert tusk.ok("get", "file", "data@master:/f.txt") == "default data\n"
    assert tusk.ok("get", "file", "data@master:/f.txt", "--project", "lab") == "lab data\n"

    default_only = tusk.json("list", "repo", "--raw")
    assert [(r["project"], r["name"]) for r in default_only] == [("default", "data")]
    lab_only = tusk.json("list", "repo", "--project", "lab", "--raw")
    assert [(r["project"], r["name"]) for r in lab_only] == [("lab", "data")]
    every = tusk.ok("list", "repo", "-A")
    rows = [line.split()[:2] for line in every.splitlines()[1:]]
    assert sorted(rows) == [["default", "data"], ["lab", "data"]]

    # --all deletes every repo of one project only
    tusk.ok("delete", "repo", "--all")
    assert [(r["project"], r["name"]) for r in tusk.json("list", "repo", "-A", "--raw")] == [
        ("lab", "data")
    ]


def test_delete_repo_with_downstream_provenance_needs_force(tusk):
    tusk.ok("create", "repo", "images")
    tusk.ok("create", "repo", "edges")
    tusk.ok("put", "file", "images@master:/a.txt", "-f", "-", input="a\n")
    tusk.ok("create", "branch", "edges@master", "-p", "images@master")

    line = tusk.fail("delete", "repo", "images")
    assert "edges@master" in line
    assert sorted(_names(tusk.json("list", "repo", "--raw"))) == ["edges", "images"]

    tusk.ok("delete", "repo", "images", "-f")
    assert _names(tusk.json("list", "repo", "--raw")) == ["edges"]
    branch = tusk.json("inspect", "branch", "edges@master", "--raw")
    assert branch["provenance"] == []
