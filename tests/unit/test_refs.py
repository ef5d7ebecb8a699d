"""Parsing pachctl-style repo, commit and file references (tusk.pfs.refs)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tusk.errors import InvalidArgument
from tusk.pfs.refs import CommitRef, FileRef, RepoRef, parse_commit, parse_file, parse_repo

ID = "0123456789abcdef0123456789abcdef"
ID2 = "fedcba9876543210fedcba9876543210"
DEFAULT = RepoRef("default", "repo")


def bad(fn: object, text: str, *needles: str, **kw: object) -> str:
    """Call a parser expecting InvalidArgument; the message must quote what is wrong."""
    with pytest.raises(InvalidArgument) as info:
        fn(text, **kw)  # type: ignore[operator]
    msg = str(info.value)
    for n in needles:
        assert n in msg, (n, msg)
    return msg


# -- repos ------------------------------------------------------------------------------------


def test_repo_in_the_default_project() -> None:
    assert parse_repo("repo") == DEFAULT
    assert str(parse_repo("repo")) == "repo"


def test_repo_with_a_project() -> None:
    assert parse_repo("proj/repo") == RepoRef("proj", "repo")
    assert parse_repo("repo", project="proj") == RepoRef("proj", "repo")
    assert parse_repo("repo", project=None) == DEFAULT
    # a project written in the ref wins over the --project argument
    assert parse_repo("p2/repo", project="proj") == RepoRef("p2", "repo")
    assert str(RepoRef("proj", "repo")) == "proj/repo"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("proj/", "empty"),
        ("/repo", "project name is empty"),
        ("a/b/c", "'b/c'"),
        ("re po", "'re po'"),
        ("repo.x", "'repo.x'"),
        ("r" * 64, "63"),
        ("-p/repo", "'-p'"),
    ],
)
def test_bad_repo_names(text: str, needle: str) -> None:
    bad(parse_repo, text, needle)


def test_a_commit_ref_is_not_a_repo() -> None:
    bad(parse_repo, "repo@master", "'repo@master'", "@")
    bad(parse_repo, "repo:/x", "'repo:/x'")


# -- commits ----------------------------------------------------------------------------------


def test_branch() -> None:
    assert parse_commit("repo@master") == CommitRef(DEFAULT, "master")
    assert parse_commit("proj/repo@dev-1_x") == CommitRef(RepoRef("proj", "repo"), "dev-1_x")
    assert parse_commit("repo@master", project="p") == CommitRef(RepoRef("p", "repo"), "master")


def test_commit_id() -> None:
    c = parse_commit(f"repo@{ID}")
    assert c == CommitRef(DEFAULT, None, ID)
    assert c.branch is None and c.ancestors == 0 and c.index is None


def test_branch_equals_commit_id() -> None:
    assert parse_commit(f"repo@master={ID}") == CommitRef(DEFAULT, "master", ID)
    assert parse_commit(f"repo@master={ID}^2") == CommitRef(DEFAULT, "master", ID, 2)


@pytest.mark.parametrize(
    ("ref", "ancestors"),
    [("master^", 1), ("master^^", 2), ("master^^^", 3), ("master^3", 3), ("master~2", 2),
     ("master~", 1), ("master^2~1", 3), ("master^0", 0), ("master^10", 10), (f"{ID}^", 1)],
)
def test_ancestry(ref: str, ancestors: int) -> None:
    c = parse_commit(f"repo@{ref}")
    assert c.ancestors == ancestors and c.index is None
    assert (c.branch, c.commit_id) == (("master", None) if ref.startswith("m") else (None, ID))


def test_nth_commit_of_a_branch() -> None:
    assert parse_commit("repo@master.1") == CommitRef(DEFAULT, "master", index=1)
    assert parse_commit("repo@master.0").index == 0
    assert parse_commit("repo@master.12").index == 12


def test_default_branch_and_missing_branch() -> None:
    assert parse_commit("repo", default_branch="master") == CommitRef(DEFAULT, "master")
    msg = bad(parse_commit, "repo", "'repo'", "repo@master")
    assert "no branch" in msg
    bad(parse_commit, "repo@", "empty", "repo@master")
    bad(parse_commit, "proj/repo@", "empty", "proj/repo@master")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("repo@ma.ster", "ma.ster"),
        ("repo@b/x", "'b/x'"),
        ("repo@b x", "'b x'"),
        ("repo@master@x", "master@x"),
        ("repo@master^x", "master^x"),
        ("repo@master.x", "master.x"),
        ("repo@master.1.2", "master.1.2"),
        ("repo@.1", ".1"),
        ("repo@^", "'^'"),
        ("repo@master=foo", "32-hex"),
        ("repo@master=" + ID[:31], "32-hex"),
        (f"repo@{ID}={ID2}", "looks like a commit ID"),
        (f"repo@={ID}", "branch name is empty"),
        ("repo@" + "b" * 64, "63"),
        ("repo@master\n", "master"),
        ("re po@master", "'re po'"),
    ],
)
def test_bad_commit_refs(text: str, needle: str) -> None:
    bad(parse_commit, text, needle)


def test_uppercase_hex_is_a_branch_not_a_commit() -> None:
    c = parse_commit(f"repo@{ID.upper()}")
    assert c.branch == ID.upper() and c.commit_id is None


@pytest.mark.parametrize(
    "text",
    ["repo@master", "proj/repo@master", f"repo@{ID}", f"repo@master={ID}", "repo@master^1",
     "repo@master^7", "repo@master.3", f"p/r@{ID}^2", "repo@master^2.3"],
)
def test_str_round_trips(text: str) -> None:
    c = parse_commit(text)
    assert str(c) == text
    assert parse_commit(str(c)) == c


@given(
    branch=st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
    ancestors=st.integers(0, 50),
    index=st.none() | st.integers(0, 50),
)
def test_str_round_trips_for_any_branch(branch: str, ancestors: int, index: int | None) -> None:
    c = CommitRef(RepoRef("p", "r"), branch, None, ancestors, index)
    assert parse_commit(str(c)) == c


# -- files ------------------------------------------------------------------------------------


def test_file_ref() -> None:
    f = parse_file("repo@master:/a/b.txt")
    assert f == FileRef(CommitRef(DEFAULT, "master"), "/a/b.txt")
    f = parse_file(f"proj/repo@{ID}^2:/dir/x", project="ignored")
    assert f == FileRef(CommitRef(RepoRef("proj", "repo"), None, ID, 2), "/dir/x")
    assert parse_file("repo@master:/x", project="p").commit.repo == RepoRef("p", "repo")


def test_file_path_is_normalized() -> None:
    assert parse_file("repo@master:a//b/").path == "/a/b"
    assert parse_file("repo@master:/").path == "/"


def test_colons_after_the_first_belong_to_the_path() -> None:
    assert parse_file("repo@master:/a:b:c").path == "/a:b:c"
    assert parse_file(f"repo@master={ID}:/t=1:2").commit.commit_id == ID


def test_file_ref_without_a_path() -> None:
    assert parse_file("repo@master").path == "/"
    assert parse_file("repo@master:").path == "/"
    assert parse_file("repo@master", default_path="/x").path == "/x"
    bad(parse_file, "repo@master", "'repo@master'", "repo@master:/path", require_path=True)
    bad(parse_file, "repo@master:", "names no file", require_path=True)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("repo:/x", "repo@branch:/path"),
        ("repo", "repo@branch:/path"),
        ("repo@master:/a/../b", ".."),
        ("repo@master:/a/./b", "'.'"),
        ("repo@master:/a*", "*"),
        ("repo@master:/a@b", "@"),
        ("repo@master:/a\tb", "unprintable"),
        ("repo@bad.branch:/a", "bad.branch"),
        ("repo@:/a", "empty"),
    ],
)
def test_bad_file_refs(text: str, needle: str) -> None:
    bad(parse_file, text, needle)
