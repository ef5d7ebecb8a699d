"""Output formats through the real CLI: --raw / -o json, -o yaml, and pachctl-like tables."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(module_tusk):
    t = module_tusk
    t.ok("create", "project", "lab", "-d", "a lab")
    t.ok("create", "repo", "images", "-d", "raw images")
    t.ok("put", "file", "images@master:/a/one.txt", "-f", "-", input="one\n")
    t.ok("put", "file", "images@master:/a/two.txt", "-f", "-", input="two!\n")
    t.ids = t.commit_ids("images@master")  # newest first
    return t


def _header(table: str) -> list[str]:
    return table.splitlines()[0].split()


# command -> (fields every JSON record must have, the header words of its table)
LISTINGS = {
    ("list", "project"): ({"name", "description", "created_at"}, ["PROJECT", "CREATED", "DESCRIPTION"]),
    ("list", "repo"): ({"project", "name", "description", "size_bytes", "created_at"},
                       ["PROJECT", "NAME", "CREATED", "SIZE", "(MASTER)", "DESCRIPTION"]),
    ("list", "commit", "images@master"): (
        {"repo", "branch", "id", "parent", "origin", "state", "description", "size_bytes"},
        ["REPO", "BRANCH", "COMMIT", "FINISHED", "SIZE", "ORIGIN", "DESCRIPTION"]),
    ("list", "commit"): ({"id", "commits", "finished"}, ["ID", "SUBCOMMITS", "PROGRESS", "CREATED"]),
    ("list", "branch", "images"): ({"repo", "name", "head", "provenance"},
                                   ["BRANCH", "HEAD", "UPDATED", "PROVENANCE"]),
    ("list", "file", "images@master:/a"): ({"path", "type", "size", "commit"}, ["NAME", "TYPE", "SIZE"]),
    ("diff", "file", "images@master"): ({"path", "change", "old_size", "new_size"},
                                        ["CHANGE", "PATH", "OLD", "SIZE", "NEW", "SIZE"]),
}


YAML_TOO = {("list", "repo"), ("list", "commit", "images@master"), ("list", "file", "images@master:/a"),
            ("diff", "file", "images@master")}


def _values(cmd: tuple, records: list[dict], ids: list[str]) -> None:
    """What the records of each listing say about the fixed world."""
    new, old = ids
    if cmd == ("list", "repo"):
        assert [(r["name"], r["description"], r["size_bytes"]) for r in records] == [
            ("images", "raw images", 9)]
    elif cmd == ("list", "commit", "images@master"):
        assert [c["id"] for c in records] == [new, old] and records[0]["parent"] == old
    elif cmd == ("list", "file", "images@master:/a"):
        assert [(f["path"], f["type"], f["size"]) for f in records] == [
            ("/a/one.txt", "file", 4), ("/a/two.txt", "file", 5)]
    elif cmd == ("diff", "file", "images@master"):
        assert records == [{"path": "/a/two.txt", "change": "added", "old_size": None, "new_size": 5}]
    elif cmd == ("list", "commit"):
        assert [cs["id"] for cs in records] == [new, old]


@pytest.mark.parametrize("cmd", list(LISTINGS), ids=" ".join)
def test_listing_formats(world, cmd):
    fields, header = LISTINGS[cmd]
    as_json = world.json(*cmd, "--raw")
    assert isinstance(as_json, list) and as_json, cmd
    for record in as_json:
        assert fields <= set(record), f"{cmd}: missing {fields - set(record)}"
    _values(cmd, as_json, world.ids)
    if cmd in YAML_TOO:
        assert yaml.safe_load(world.ok(*cmd, "-o", "yaml")) == as_json
    table = world.ok(*cmd)
    assert _header(table) == header
    assert len(table.splitlines()) == 1 + len(as_json)  # one row per record


def test_json_flag_and_table_cells(world):
    assert world.json("list", "repo", "-o", "json") == world.json("list", "repo", "--raw")
    table = world.ok("list", "file", "images@master:/a")
    assert table.splitlines()[1].split() == ["/a/one.txt", "file", "4B"]


@pytest.mark.parametrize("cmd, expected", [
    (("inspect", "project", "lab"), {"name": "lab", "description": "a lab"}),
    (("inspect", "repo", "images"), {"name": "images", "project": "default", "branches": ["master"]}),
    (("inspect", "branch", "images@master"), {"name": "master", "repo": "images", "provenance": []}),
    (("inspect", "file", "images@master:/a/one.txt"), {"path": "/a/one.txt", "type": "file", "size": 4}),
    (("inspect", "commit", "images@master^"), {"repo": "images", "parent": None, "file_count": 1}),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_inspect_formats(world, cmd, expected):
    as_json = world.json(*cmd, "--raw")
    assert expected.items() <= as_json.items()
    if cmd[1] in ("commit", "file"):
        assert yaml.safe_load(world.ok(*cmd, "-o", "yaml")) == as_json


def test_inspect_tables_are_readable(world):
    new, old = world.ids
    text = world.ok("inspect", "commit", "images@master")
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    assert fields["Commit"] == f"images@{new}" and fields["Parent"] == old
    assert fields["Origin"] == "USER"
    text = world.ok("inspect", "repo", "images")
    assert "Name: images" in text and "Description: raw images" in text


def test_start_commit_prints_id_or_json(world):
    out = world.ok("start", "commit", "images@side", "-o", "json")
    info = json.loads(out)
    assert info["branch"] == "side" and info["state"] == "STARTED"
    world.ok("finish", "commit", f"images@{info['id']}")
