"""User errors through the real CLI.

Each one must print exactly one line on stderr starting with ``tusk:``, exit non-zero, show no
traceback, and change nothing: a failed write leaves the commit history and files as they were.
"""

from __future__ import annotations

import io
import tarfile

import pytest

pytestmark = pytest.mark.e2e

MISSING_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def repo(module_tusk):
    """A repo with two finished commits; the error cases below must not change it."""
    t = module_tusk
    t.write("a.txt", "a\n")
    t.write("dir/b.txt", "b\n")
    t.write("globby/a-ok.txt", "fine\n")
    t.write("globby/z[1].txt", "a name tusk refuses\n")  # walked after a-ok.txt is staged
    t.write("notatar.tar", "this is not a tar archive\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    t.write("evil.tar", buf.getvalue())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("p", "p/q"):  # /p would be both a file and a directory
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    t.write("clash.tar", buf.getvalue())
    t.ok("create", "repo", "f")
    t.ok("put", "file", "f@master", "-f", "a.txt")
    t.ok("put", "file", "f@master", "-r", "-f", "dir")
    return t


def _state(t) -> tuple:
    """Commits of f with what they hold: any change to history or content shows here."""
    commits = t.json("list", "commit", "f", "--raw")
    return tuple((c["id"], c["state"], c["size_bytes"], c["file_count"]) for c in commits)


@pytest.fixture(scope="module")
def before(repo):
    return _state(repo)


# (args, a word the message must contain)
READ_ERRORS = [
    (["inspect", "repo", "nope"], "nope"),
    (["list", "file", "f@nobranch"], "nobranch"),
    (["inspect", "commit", f"f@{MISSING_ID}"], MISSING_ID),
    (["inspect", "commit", "f@master^5"], "master^5"),
    (["get", "file", "f@master:/missing.txt"], "/missing.txt"),
    (["get", "file", "f@master:/dir"], "-r"),  # a directory needs -r -o
    (["get", "file", "f@master:/a.txt", "--offset", "-1"], "offset"),
    (["get", "file", "f@master:/a.txt", "-o", "no/such/dir/out.txt"], "no/such/dir"),
    (["get", "file", "f@master:/dir", "-r", "-o", "a.txt"], "a.txt"),  # a file, not a dir
    (["list", "file", "f@master:/a*"], "glob"),
    (["inspect", "project", "nope"], "nope"),
    (["wait", "commit", MISSING_ID], MISSING_ID),
    (["glob", "file", "f@master:/["], "["),
    (["list", "commit", "f@master", "-n", "-1"], "-1"),
    (["list", "repo", "--project", "nope"], "nope"),
]


@pytest.mark.parametrize("args, needle", READ_ERRORS, ids=[" ".join(a) for a, _ in READ_ERRORS])
def test_read_errors(repo, args, needle):
    line = repo.fail(*args)
    assert needle in line


# Grouped so that one state check covers several failed writes (each check is a tusk run).
WRITE_ERRORS = {
    "names": [
        (["create", "repo", "bad.name"], "bad.name"),
        (["create", "repo", "f"], "exists"),
        (["create", "repo", "nope/f"], "nope"),  # missing project
        (["put", "file", "nope@master:/x", "-f", "a.txt"], "nope"),
    ],
    "paths": [
        (["put", "file", "f@master:/../x", "-f", "a.txt"], ".."),
        (["put", "file", "f@master:/a/./b", "-f", "a.txt"], "."),
        (["put", "file", "f@master:/x*y", "-f", "a.txt"], "*"),
        (["put", "file", "f@master:/a.txt/inside", "-f", "a.txt"], "/a.txt"),  # file/dir collision
        (["put", "file", "f@master:/dir", "-f", "a.txt"], "/dir"),  # a file where a directory is
        (["put", "file", "f@master^:/x", "-f", "a.txt"], "master^"),  # not a writable ref
        (["put", "file", "f@{head}:/x", "-f", "a.txt"], "finished"),  # a finished commit by ID
        (["delete", "file", "f@{head}:/a.txt"], "finished"),
    ],
    "sources": [
        (["put", "file", "f@master", "-f", "dir"], "-r"),  # a directory without -r
        (["put", "file", "f@master", "-r", "-f", "globby"], "["),  # a bad name deep in a tree
        (["put", "file", "f@master:/x", "-f", "missing.txt"], "missing.txt"),
        (["put", "file", "f@master:/in/", "-f", "a.txt", "-f", "missing.txt"], "missing.txt"),
        (["put", "file", "f@master", "-i", "missing-list.txt"], "missing-list.txt"),
        (["put", "file", "f@master"], "-f"),  # nothing to put
        (["put", "file", "f@master", "-f", "-"], "destination"),  # stdin needs a path
        (["put", "file", "f@master:/t/", "--untar", "-f", "notatar.tar"], "tar"),
        (["put", "file", "f@master:/t/", "--untar", "-f", "dir"], "dir"),
        (["put", "file", "f@master:/t/", "--untar", "-f", "evil.tar"], ".."),
        (["put", "file", "f@master", "--untar", "-f", "clash.tar"], "collision"),  # within one put
    ],
    "deletes and copies": [
        (["delete", "file", "f@master:/missing.txt"], "/missing.txt"),
        (["delete", "file", "f@master:/dir"], "-r"),
        (["copy", "file", "f@master:/missing.txt", "f@master:/y"], "/missing.txt"),
        (["copy", "file", "f@master:/a.txt", "nope@master:/y"], "nope"),
        (["delete", "commit", MISSING_ID], MISSING_ID),
        (["squash", "commit", "abc"], "abc"),
    ],
    "branches and commits": [
        (["delete", "branch", "f@nope"], "nope"),
        (["create", "branch", "f@dev", "--head", "nope"], "nope"),
        (["create", "branch", "f@dev", "-p", "f@master"], "provenance"),
        (["create", "branch", "f"], "branch"),
        (["start", "commit", "f@master", "-p", MISSING_ID], MISSING_ID),
        (["finish", "commit", "f@master"], "finish"),  # the head is already finished
    ],
}


@pytest.mark.parametrize("group", list(WRITE_ERRORS))
def test_write_errors_change_nothing(repo, before, group):
    head = before[0][0]
    for args, needle in WRITE_ERRORS[group]:
        args = [a.replace("{head}", head) for a in args]
        line = repo.fail(*args)
        assert needle in line, f"tusk {' '.join(args)}: {line!r} does not mention {needle!r}"
    assert _state(repo) == before
    if group == "branches and commits":
        assert {b["name"] for b in repo.json("list", "branch", "f", "--raw")} == {"master"}


def test_start_commit_while_head_is_open(tusk):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("good.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"good"))
    tusk.write("good.tar", buf.getvalue())
    tusk.write("bad.tar", "not a tar\n")
    tusk.ok("create", "repo", "f")
    first = tusk.ok("start", "commit", "f@master").strip()
    line = tusk.fail("start", "commit", "f@master")
    assert first in line and "finish" in line
    assert tusk.commit_ids("f") == [first]
    # a put that fails on its second source stages nothing of the first in the open commit
    tusk.ok("put", "file", "f@master:/kept", "-f", "-", input="kept")
    tusk.fail("put", "file", "f@master:/t/", "--untar", "-f", "good.tar", "-f", "bad.tar")
    tusk.ok("finish", "commit", "f@master")
    assert [f["path"] for f in tusk.json("list", "file", "f@master", "--raw")] == ["/kept"]


def test_bad_url_sources_make_no_commit(repo, before, http_dir):
    line = repo.fail("put", "file", "f@master:/in/", "-f", "a.txt", "-f",
                     f"{http_dir.url}/missing.bin")
    assert "404" in line
    # a URL with no file name needs an explicit destination
    assert "no file name" in repo.fail("put", "file", "f@master", "-f", f"{http_dir.url}/")
    assert _state(repo) == before


@pytest.mark.parametrize("args, needle", [
    (["create", "repo"], "REPO"),
    (["list", "nonsense"], "nonsense"),
    (["put", "file", "f@master", "--bogus"], "--bogus"),
    (["list", "repo", "-o", "xml"], "xml"),
])
def test_usage_errors_are_one_line_too(tusk, args, needle):
    line = tusk.fail(*args)
    assert needle in line and "--help" in line
