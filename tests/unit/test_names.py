"""Name and path rules (tusk.pfs.names): what a user may call a project, repo, branch or file."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tusk.errors import InvalidArgument
from tusk.pfs.names import (
    check_branch_name,
    check_project_name,
    check_repo_name,
    dir_prefix,
    is_commit_id,
    normalize_path,
    parent_dirs,
)

ID = "0123456789abcdef0123456789abcdef"


def refused(check: Callable[[str], object], value: str, *needles: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check(value)
    for n in needles:
        assert n in str(info.value), (n, str(info.value))


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "limit"), [(check_repo_name, 63), (check_project_name, 51), (check_branch_name, 63)]
)
def test_length_limits(check: Callable[[str], str], limit: int) -> None:
    assert check("a" * limit) == "a" * limit
    refused(check, "a" * (limit + 1), str(limit))
    refused(check, "", "empty")


@pytest.mark.parametrize("check", [check_repo_name, check_project_name, check_branch_name])
def test_allowed_characters(check: Callable[[str], str]) -> None:
    for ok in ["a", "A", "0", "data", "My_Repo-2", "x-y_z", "2024"]:
        assert check(ok) == ok
    for bad in ["a b", "a.b", "a/b", "a@b", "a^b", "a:b", "a=b", "a~b", "é", "a\tb", "a\n", "a\x00"]:
        refused(check, bad, repr(bad))


def test_project_must_start_with_a_letter_or_digit() -> None:
    refused(check_project_name, "-p", "start with")
    refused(check_project_name, "_p", "start with")
    assert check_project_name("p-_") == "p-_"
    # repos and branches may start with '-' or '_' (as in Pachyderm)
    assert check_repo_name("_r") == "_r" and check_branch_name("-b") == "-b"


def test_branch_that_looks_like_a_commit_id_is_refused() -> None:
    refused(check_branch_name, ID, "commit ID")
    assert check_branch_name(ID[:31]) == ID[:31]
    assert check_branch_name(ID + "0") == ID + "0"
    assert check_branch_name(ID.upper()) == ID.upper()  # commit IDs are lowercase


def test_is_commit_id() -> None:
    assert is_commit_id(ID)
    for text in [ID[:31], ID + "0", ID.upper(), ID[:31] + "g", ID + "\n", "", "master"]:
        assert not is_commit_id(text), text


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=70))
def test_names_accept_exactly_the_documented_alphabet(name: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    ok = 0 < len(name) <= 63 and set(name) <= allowed
    try:
        check_repo_name(name)
        accepted = True
    except InvalidArgument:
        accepted = False
    assert accepted == ok


# -- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("a", "/a"),
        ("/a", "/a"),
        ("a/b/c.txt", "/a/b/c.txt"),
        ("//a///b//", "/a/b"),
        ("/a/b/", "/a/b"),
        ("/", "/"),
        ("", "/"),
        ("///", "/"),
        ("/a b/c,d=e;f:g%h#i&j$k'l\"m", "/a b/c,d=e;f:g%h#i&j$k'l\"m"),
        ("/.hidden/..x/x..", "/.hidden/..x/x.."),
        ("/~user/a-b_c", "/~user/a-b_c"),
    ],
)
def test_normalize_path(raw: str, canonical: str) -> None:
    assert normalize_path(raw) == canonical
    assert normalize_path(canonical) == canonical  # idempotent


def test_root_can_be_refused() -> None:
    assert normalize_path("/a", allow_root=False) == "/a"
    for root in ["", "/", "//"]:
        refused(lambda p: normalize_path(p, allow_root=False), root, "empty")


@pytest.mark.parametrize("path", ["/a/./b", "/a/../b", "..", ".", "/..", "a/.", "/x/../../etc"])
def test_dot_segments_are_refused(path: str) -> None:
    refused(normalize_path, path, repr(path))


@pytest.mark.parametrize("char", list("*?[]{}!()@+^"))
def test_glob_characters_are_refused(char: str) -> None:
    path = f"/dir/a{char}b"
    refused(normalize_path, path, repr(path), "glob")


@pytest.mark.parametrize("char", ["\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\u200b"])
def test_unprintable_characters_are_refused(char: str) -> None:
    refused(normalize_path, f"/a{char}b", "unprintable")


@given(st.lists(st.sampled_from(["a", "b.txt", "c d", "", ".x"]), max_size=6))
def test_normalized_paths_are_canonical(parts: list[str]) -> None:
    raw = "/".join(parts)
    p = normalize_path(raw)
    assert p.startswith("/") and "//" not in p
    assert p == "/" or not p.endswith("/")
    assert p == "/" + "/".join(x for x in parts if x)


def test_parent_dirs() -> None:
    assert parent_dirs("/a/b/c") == ["/a", "/a/b"]
    assert parent_dirs("/a") == []
    assert parent_dirs("/") == []
    assert parent_dirs("/x/y") == ["/x"]


def test_dir_prefix() -> None:
    assert dir_prefix("/") == "/"
    assert dir_prefix("/a") == "/a/"
    assert dir_prefix("/a/b") == "/a/b/"
    # everything inside /a starts with the prefix; siblings like /ab do not
    assert "/a/x".startswith(dir_prefix("/a")) and not "/ab".startswith(dir_prefix("/a"))


# -- lengths and characters the local file system and a terminal can take ----------------------


def test_path_components_are_limited_to_255_bytes() -> None:
    assert normalize_path("/" + "a" * 255) == "/" + "a" * 255
    refused(normalize_path, "/" + "a" * 256, "256 bytes", "255")
    assert normalize_path("/" + "é" * 127) == "/" + "é" * 127  # 254 bytes of UTF-8
    refused(normalize_path, "/d/" + "é" * 128 + "/x", "256 bytes")  # 128 characters, 256 bytes


def test_whole_paths_are_limited_in_bytes() -> None:
    fits = "/" + "/".join(["d" * 255] * 14)  # 3584 bytes
    assert normalize_path(fits) == fits
    refused(normalize_path, fits + "/x", "3586 bytes", "3584")


def test_unicode_is_kept_as_given_not_normalised() -> None:
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "/é.txt"), unicodedata.normalize("NFD", "/é.txt")
    assert normalize_path(nfc) == nfc and normalize_path(nfd) == nfd and nfc != nfd


def test_errors_escape_what_a_terminal_would_obey() -> None:
    from tusk.errors import NotFound, TuskError

    e = NotFound("file /a\x00b\x1b[2J\u2028c\u202ed\n not found")
    assert e.message == "file /a\\x00b\\x1b[2J\\u2028c\\u202ed\\n not found"
    assert str(e) == e.message
    assert TuskError(e.message).message == e.message  # a client raising it again: unchanged
    assert TuskError("é 日本 tab\\t").message == "é 日本 tab\\t"
    long = TuskError("x" * 100_000 + " (use -r)").message
    assert len(long) <= 1000 and long.endswith("(use -r)")


@given(st.text(max_size=300))
def test_any_path_is_normalised_or_refused_cleanly(path: str) -> None:
    try:
        out = normalize_path(path)
    except InvalidArgument as e:
        assert e.message.isprintable()
    else:
        assert out.startswith("/") and len(out.encode()) <= 3584
