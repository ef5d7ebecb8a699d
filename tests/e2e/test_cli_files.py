"""Files through the real CLI: every put source, get, inspect, list, glob, diff, copy, delete."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _paths(listing: list[dict]) -> list[str]:
    return [f["path"] for f in listing]


def _all_files(tusk, ref: str) -> dict[str, int]:
    """path -> size of every file in a commit (via glob)."""
    return {f["path"]: f["size"] for f in tusk.json("glob", "file", f"{ref}:/**", "--raw")
            if f["type"] == "file"}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- put: destinations and sources ---------------------------------------------------------


def test_put_file_destinations(tusk):
    tusk.ok("create", "repo", "r")
    tusk.write("a.txt", "aaa\n")
    tusk.write("sub/b.txt", "bb\n")
    tusk.ok("put", "file", "r@master", "-f", "a.txt")  # default: the local base name
    tusk.ok("put", "file", "r@master:/dir/", "-f", "sub/b.txt")  # trailing slash: inside
    tusk.ok("put", "file", "r@master:/named/x.bin", "-f", "a.txt")  # explicit path
    tusk.ok("put", "file", "r@master:/multi/", "-f", "a.txt", "-f", "sub/b.txt")
    tusk.ok("put", "file", "r@master:/in.txt", "-f", "-", input="from stdin\n")
    assert _all_files(tusk, "r@master") == {
        "/a.txt": 4, "/dir/b.txt": 3, "/named/x.bin": 4, "/multi/a.txt": 4, "/multi/b.txt": 3,
        "/in.txt": 11,
    }
    assert tusk.ok("get", "file", "r@master:/named/x.bin") == "aaa\n"
    assert tusk.ok("get", "file", "r@master:/in.txt") == "from stdin\n"
    assert len(tusk.commit_ids("r@master")) == 5  # two sources in one put: one commit


def test_put_directory_recursive_round_trip(tusk):
    src = tusk.cwd / "photos"
    rnd = os.urandom
    files = {
        "2024/img1.raw": rnd(20_000),
        "2024/img2.raw": rnd(7),
        "2025/deep/big.raw": rnd(3 * 1024 * 1024 + 12345),  # > 3 MiB: several chunks
        "notes.txt": b"hello\n",
        "empty.bin": b"",
        "zeros.bin": bytes(300_000),
    }
    for rel, data in files.items():
        tusk.write(f"photos/{rel}", data)
    tusk.ok("create", "repo", "img")
    tusk.ok("put", "file", "img@master", "-r", "-f", "photos")  # -> /photos/...
    tusk.ok("put", "file", "img@master:/copy", "-r", "-f", "photos/")  # -> /copy/...
    listing = _all_files(tusk, "img@master")
    assert listing == {
        **{f"/photos/{k}": len(v) for k, v in files.items()},
        **{f"/copy/{k}": len(v) for k, v in files.items()},
    }

    tusk.ok("get", "file", "img@master:/photos", "-r", "-o", "out")
    assert _tree(tusk.cwd / "out") == _tree(src)  # byte-identical, layout kept
    tusk.ok("get", "file", "img@master:/", "-r", "-o", "everything")
    assert _tree(tusk.cwd / "everything" / "copy") == _tree(src)

    big = tusk.ok("get", "file", "img@master:/copy/2025/deep/big.raw", binary=True)
    assert big == files["2025/deep/big.raw"]
    tusk.ok("get", "file", "img@master:/photos/2025/deep/big.raw", "-o", "big.out")
    assert (tusk.cwd / "big.out").read_bytes() == files["2025/deep/big.raw"]
    tail = tusk.ok("get", "file", "img@master:/photos/2025/deep/big.raw", "--offset",
                   str(3 * 1024 * 1024), binary=True)
    assert tail == files["2025/deep/big.raw"][3 * 1024 * 1024:]


def test_put_from_url_and_list_file(tusk, http_dir):
    (http_dir.dir / "page.html").write_text("<h1>hi</h1>\n")
    (http_dir.dir / "data.bin").write_bytes(bytes(range(256)) * 10)
    tusk.write("local.txt", "local\n")
    tusk.write("sources.txt", f"# a list file\n{http_dir.url}/data.bin\n\nlocal.txt\n")
    tusk.ok("create", "repo", "web")
    tusk.ok("put", "file", "web@master", "-f", f"{http_dir.url}/page.html")  # URL base name
    tusk.ok("put", "file", "web@master:/x/renamed.html", "-f", f"{http_dir.url}/page.html")
    tusk.ok("put", "file", "web@master:/listed/", "-i", "sources.txt")
    assert _all_files(tusk, "web@master") == {
        "/page.html": 12, "/x/renamed.html": 12, "/listed/data.bin": 2560, "/listed/local.txt": 6,
    }
    assert tusk.ok("get", "file", "web@master:/listed/data.bin", binary=True) == \
        bytes(range(256)) * 10
    # a missing URL is one clear error and no commit
    assert "404" in tusk.fail("put", "file", "web@master", "-f", f"{http_dir.url}/nope.txt")
    assert len(tusk.commit_ids("web@master")) == 3


def _tar(path: Path, members: dict[str, bytes], gz: bool) -> None:
    with tarfile.open(path, "w:gz" if gz else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_put_untar(tusk):
    members = {"./one.txt": b"1\n", "./sub/two.txt": b"22\n", "./sub/deep/three.bin": b"\x00" * 9,
               "./.hidden": b"h\n"}
    _tar(tusk.cwd / "a.tar", members, gz=False)
    _tar(tusk.cwd / "a.tar.gz", members, gz=True)
    tusk.ok("create", "repo", "t")
    tusk.ok("put", "file", "t@master:/plain/", "--untar", "-f", "a.tar")
    tusk.ok("put", "file", "t@master:/gz", "--untar", "-f", "a.tar.gz")
    expected = {"one.txt": 2, "sub/two.txt": 3, "sub/deep/three.bin": 9, ".hidden": 2}
    assert _all_files(tusk, "t@master") == {
        **{f"/plain/{k}": v for k, v in expected.items()},
        **{f"/gz/{k}": v for k, v in expected.items()},
    }
    assert tusk.ok("get", "file", "t@master:/gz/sub/two.txt") == "22\n"


def test_append_overwrite_and_offset(tusk):
    tusk.ok("create", "repo", "logs")
    tusk.ok("put", "file", "logs@master:/log", "-f", "-", input="one\n")
    tusk.ok("put", "file", "logs@master:/log", "-a", "-f", "-", input="two\n")
    assert tusk.ok("get", "file", "logs@master:/log") == "one\ntwo\n"
    tusk.ok("put", "file", "logs@master:/log", "-f", "-", input="new\n")  # overwrite by default
    assert tusk.ok("get", "file", "logs@master:/log") == "new\n"

    tusk.ok("start", "commit", "logs@master")  # appends within one open commit concatenate
    tusk.ok("put", "file", "logs@master:/log", "-a", "-f", "-", input="x\n")
    tusk.ok("put", "file", "logs@master:/log", "--append", "-f", "-", input="y\n")
    tusk.ok("finish", "commit", "logs@master")
    assert tusk.ok("get", "file", "logs@master:/log", "--offset", "4") == "x\ny\n"
    assert tusk.ok("get", "file", "logs@master^:/log") == "new\n"  # history unchanged

    tusk.ok("get", "file", "logs@master:/log", "-o", "log.out")
    assert (tusk.cwd / "log.out").read_text() == "new\nx\ny\n"
    (tusk.cwd / "dl").mkdir()
    tusk.ok("get", "file", "logs@master:/log", "-o", "dl")  # into an existing directory
    assert (tusk.cwd / "dl" / "log").read_text() == "new\nx\ny\n"


# -- reads on one fixed tree ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(module_tusk):
    t = module_tusk
    t.write("data/top.txt", "top\n")
    t.write("data/data.csv", "a,b\n1,2\n")
    t.write("data/dir/a.txt", "a\n")
    t.write("data/dir/sub/b.txt", "bbb\n")
    t.write("data/dir/sub/c.bin", "\x00\x01")
    t.ok("create", "repo", "r")
    t.ok("put", "file", "r@master:/", "-r", "-f", "data")
    return t


def test_list_file(tree):
    top = tree.json("list", "file", "r@master", "--raw")
    assert [(f["path"], f["type"], f["size"]) for f in top] == [
        ("/data.csv", "file", 8), ("/dir", "dir", 8), ("/top.txt", "file", 4)]
    sub = tree.json("list", "file", "r@master:/dir", "--raw")
    assert [(f["path"], f["type"], f["size"]) for f in sub] == [
        ("/dir/a.txt", "file", 2), ("/dir/sub", "dir", 6)]
    table = tree.ok("list", "file", "r@master:/dir/sub")
    rows = [line.split() for line in table.splitlines()]
    assert rows == [["NAME", "TYPE", "SIZE"], ["/dir/sub/b.txt", "file", "4B"],
                    ["/dir/sub/c.bin", "file", "2B"]]


def test_inspect_file(tree):
    f = tree.json("inspect", "file", "r@master:/dir/sub/b.txt", "--raw")
    assert f["path"] == "/dir/sub/b.txt" and f["type"] == "file" and f["size"] == 4
    assert f["hash"] and len(f["commit"]) == 32
    d = tree.json("inspect", "file", "r@master:/dir", "--raw")
    assert (d["type"], d["size"]) == ("dir", 8)


@pytest.mark.parametrize("pattern, expected", [
    ("/*", ["/data.csv", "/dir/", "/top.txt"]),
    ("/**.txt", ["/dir/a.txt", "/dir/sub/b.txt", "/top.txt"]),
    ("/dir/*", ["/dir/a.txt", "/dir/sub/"]),
    ("/dir/sub/*.bin", ["/dir/sub/c.bin"]),
])
def test_glob_file(tree, pattern, expected):
    """Matches files and directories (shown here with a trailing '/')."""
    found = tree.json("glob", "file", f"r@master:{pattern}", "--raw")
    assert [f["path"] + ("/" if f["type"] == "dir" else "") for f in found] == expected


# -- diff, copy, delete --------------------------------------------------------------------


def test_diff_file(tusk):
    tusk.ok("create", "repo", "d")
    tusk.write("v1/a.txt", "a1\n")
    tusk.write("v1/b.txt", "b\n")
    tusk.write("v1/sub/s.txt", "s\n")
    tusk.ok("put", "file", "d@master:/", "-r", "-f", "v1")
    tusk.ok("start", "commit", "d@master")
    tusk.ok("put", "file", "d@master:/a.txt", "-f", "-", input="a2 longer\n")
    tusk.ok("put", "file", "d@master:/c.txt", "-f", "-", input="c\n")
    tusk.ok("delete", "file", "d@master:/b.txt")
    tusk.ok("finish", "commit", "d@master")

    changes = {d["path"]: d for d in tusk.json("diff", "file", "d@master", "--raw")}
    assert {p: d["change"] for p, d in changes.items()} == {
        "/a.txt": "changed", "/b.txt": "removed", "/c.txt": "added"}
    assert (changes["/a.txt"]["old_size"], changes["/a.txt"]["new_size"]) == (3, 10)

    # explicit old ref, reversed: additions become removals
    rev = {d["path"]: d["change"] for d in tusk.json("diff", "file", "d@master^", "d@master", "--raw")}
    assert rev == {"/a.txt": "changed", "/b.txt": "added", "/c.txt": "removed"}
    names = tusk.ok("diff", "file", "d@master", "d@master.1", "--name-only").split()
    assert sorted(names) == ["/a.txt", "/b.txt", "/c.txt"]
    assert tusk.json("diff", "file", "d@master:/sub", "--raw") == []  # nothing changed under /sub


def test_copy_file_across_repos_and_projects(tusk):
    tusk.ok("create", "repo", "src")
    tusk.ok("create", "repo", "dst")
    tusk.ok("create", "project", "lab")
    tusk.ok("create", "repo", "lab/dst")
    tusk.write("d/x.txt", "x\n")
    tusk.write("d/in/y.txt", "yy\n")
    tusk.ok("put", "file", "src@master:/d", "-r", "-f", "d")

    tusk.ok("copy", "file", "src@master:/d/x.txt", "dst@master:/copied.txt")
    tusk.ok("copy", "file", "src@master:/d", "lab/dst@master:/tree")
    tusk.ok("copy", "file", "src@master:/d/in/y.txt", "dst@master:/y.txt", "--dest-project", "lab")
    assert tusk.ok("get", "file", "dst@master:/copied.txt") == "x\n"
    assert _all_files(tusk, "lab/dst@master") == {"/tree/x.txt": 2, "/tree/in/y.txt": 3, "/y.txt": 3}
    # the copy is independent of later changes to the source
    tusk.ok("delete", "file", "src@master:/d", "-r")
    assert tusk.ok("get", "file", "dst@master:/y.txt", "--project", "lab") == "yy\n"


def test_delete_file(tusk):
    tusk.ok("create", "repo", "r")
    tusk.write("d/a.txt", "a\n")
    tusk.write("d/sub/b.txt", "b\n")
    tusk.write("top.txt", "t\n")
    tusk.ok("put", "file", "r@master", "-r", "-f", "d")
    tusk.ok("put", "file", "r@master", "-f", "top.txt")

    tusk.ok("delete", "file", "r@master:/top.txt")
    assert _paths(tusk.json("list", "file", "r@master", "--raw")) == ["/d"]
    assert "-r" in tusk.fail("delete", "file", "r@master:/d")
    tusk.ok("delete", "file", "r@master:/d", "-r")
    assert tusk.json("list", "file", "r@master", "--raw") == []
    # earlier commits keep their files
    assert tusk.ok("get", "file", "r@master^2:/top.txt") == "t\n"
    assert _all_files(tusk, "r@master^2") == {"/d/a.txt": 2, "/d/sub/b.txt": 2, "/top.txt": 2}
    assert len(tusk.commit_ids("r@master")) == 4
