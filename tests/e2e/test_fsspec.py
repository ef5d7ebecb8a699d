"""``tusk://`` through fsspec and pandas, as a user sees it, embedded and against ``tusk serve``.

Every behaviour runs twice (the ``side`` fixture): embedded, where the filesystem takes the
current context (the local root of ``$TUSK_ROOT``, in process), and against a real
``tusk serve`` given by the storage options ``address``/``auth_token``. One more test reaches
the server through the current context (``tusk context use`` and ``$TUSK_ADDRESS``). Data is
put and checked with the real CLI or the SDK; one root and one server serve the module, and
each test gets a fresh repo.
"""

from __future__ import annotations

import copy
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest
from fsspec.spec import AbstractFileSystem
from server_helpers import TOKEN, Server, remote_tusk, running_server

import tusk as sdk
from tusk.api.tuskfs import TuskFileSystem

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "fsspec.md"

FILES = {  # the tree most listing tests use
    "/dir/a.csv": b"n\n1\n",
    "/dir/b.csv": b"n\n22\n",
    "/dir/c.txt": b"c",
    "/dir/sub/d.csv": b"n\n4444\n",
    "/dir/sub/e.txt": b"eeeee",
    "/other/f.csv": b"n\n6\n",
}


@pytest.fixture(scope="module")
def server(module_tusk: Any) -> Iterator[Server]:
    with running_server(module_tusk) as s:
        yield s


@pytest.fixture(scope="module")
def clients(module_tusk: Any) -> Iterator[dict[str, Any]]:
    """SDK clients for setup, created lazily per side, closed with the module."""
    made: dict[str, Any] = {}
    yield made
    for c in made.values():
        c.close()
    TuskFileSystem.clear_instance_cache()  # the filesystem's cached clients


@dataclass
class Side:
    """One way of reaching the module's root: the CLI, the SDK and fsspec options for it."""

    name: str
    cli: Any
    client: Any
    opts: dict[str, Any]
    repo: str

    def url(self, path: str, ref: str = "master") -> str:
        return f"tusk://{self.repo}@{ref}/{path.lstrip('/')}"

    def fs(self) -> Any:
        return fsspec.filesystem("tusk", **self.opts)

    def commit_ids(self) -> list[str]:
        """``tusk list commit repo@master``, newest first."""
        return self.cli.commit_ids(f"{self.repo}@master")

    def sdk_commits(self) -> int:
        return len(self.client.pfs.list_commit(f"{self.repo}@master"))

    def put_tree(self, files: dict[str, bytes] = FILES) -> str:
        with self.client.pfs.commit(f"{self.repo}@master") as c:
            for path, data in files.items():
                c.put_file(path, data)
        return c.id


def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No context, server or backend override from the developer's environment."""
    monkeypatch.setenv("TUSK_CONFIG", str(tmp_path / "no-user-config.json"))
    for var in ("TUSK_ADDRESS", "TUSK_AUTH_TOKEN", "TUSK_METADATA_URL", "TUSK_OBJECT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TUSK_NO_CONTROLLER", "1")


@pytest.fixture(params=["embedded", "remote"])
def side(request: pytest.FixtureRequest, module_tusk: Any, clients: dict[str, Any],
         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Side:
    _clean_env(monkeypatch, tmp_path)
    if request.param == "embedded":
        # The current context is 'local': the fixture's root, opened in this process.
        monkeypatch.setenv("TUSK_ROOT", str(module_tusk.root))
        cli, opts = module_tusk, {}
        if "embedded" not in clients:
            clients["embedded"] = sdk.Client(root=module_tusk.root)
    else:
        server: Server = request.getfixturevalue("server")
        # An empty local root: a filesystem that quietly went local would find nothing.
        monkeypatch.setenv("TUSK_ROOT", str(tmp_path / "empty-root"))
        cli, opts = remote_tusk(module_tusk, server), {"address": server.url, "auth_token": TOKEN}
        if "remote" not in clients:
            clients["remote"] = sdk.Client(server.url, auth_token=TOKEN)
    s = Side(request.param, cli, clients[request.param], opts, "r" + uuid.uuid4().hex[:10])
    s.client.pfs.create_repo(s.repo)
    return s


# -- reading ------------------------------------------------------------------------------------


def test_read_csv_of_a_file_put_with_the_cli(side: Side) -> None:
    local = side.cli.write(f"{side.repo}.csv", "a,b\n1,x\n2,y\n")
    side.cli.ok("put", "file", f"{side.repo}@master:/data.csv", "-f", local)

    expected = {"a": [1, 2], "b": ["x", "y"]}
    for url in (side.url("data.csv"),                    # repo@branch/path
                f"tusk://{side.repo}@master:/data.csv",  # pachctl's repo@branch:/path
                f"tusk://{side.repo}/data.csv"):         # no ref: master
        df = pd.read_csv(url, storage_options=side.opts)
        assert df.to_dict("list") == expected, url
    with fsspec.open(side.url("data.csv"), "r", **side.opts) as f:
        assert f.readline() == "a,b\n"


def test_older_commits_are_readable(side: Side) -> None:
    first = side.client.pfs.put_file(f"{side.repo}@master:/v.csv", b"v\n1\n").id
    side.client.pfs.put_file(f"{side.repo}@master:/v.csv", b"v\n2\n")
    fs = side.fs()

    assert fs.cat(side.url("v.csv")) == b"v\n2\n"
    assert fs.cat(side.url("v.csv", "master^")) == b"v\n1\n"
    assert fs.cat(side.url("v.csv", first)) == b"v\n1\n"
    assert pd.read_csv(side.url("v.csv", "master^"), storage_options=side.opts)["v"].tolist() == [1]
    # Names keep the ref as written, so they lead back to the same commit.
    assert fs.ls(f"{side.repo}@master^", detail=False) == [f"{side.repo}@master^/v.csv"]
    assert fs.ls(f"{side.repo}@master^", detail=True)[0]["commit"] == first

    # An open file reads the commit it opened, even when the branch moves on meanwhile.
    with fs.open(side.url("v.csv"), "rb", block_size=2, cache_type="none") as f:
        assert f.read(2) == b"v\n"
        side.client.pfs.put_file(f"{side.repo}@master:/v.csv", b"v\n3\n")
        assert f.read() == b"2\n"


def test_ranged_reads_fetch_only_what_they_need(side: Side, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(20 << 20)
    local = side.cli.write(f"{side.repo}.bin", data)
    side.cli.ok("put", "file", f"{side.repo}@master:/big.bin", "-f", local)
    fs = side.fs()
    assert fs.size(side.url("big.bin")) == len(data)

    # Count the bytes the service hands over: a range read must not stream the rest.
    svc = fs._client.pfs.service
    real = svc.read_file
    pulled: list[int] = []

    def counting(ref: Any, offset: int = 0) -> Iterator[bytes]:
        for piece in real(ref, offset):
            pulled.append(len(piece))
            yield piece

    monkeypatch.setattr(svc, "read_file", counting)
    with fs.open(side.url("big.bin"), "rb", block_size=1 << 16) as f:
        f.seek(1 << 20)
        assert f.read(1000) == data[1 << 20:(1 << 20) + 1000]
        assert sum(pulled) < 5 << 20, f"read 1000 bytes, pulled {sum(pulled)}"
        for offset, n in ((0, 10), (7_654_321, 300_000), (len(data) - 5, 100)):
            f.seek(offset)
            assert f.read(n) == data[offset:offset + n]
        f.seek(-4096, 2)
        assert f.read() == data[-4096:]
        assert f.tell() == len(data)
    assert fs.cat_file(side.url("big.bin"), start=12_345_678, end=12_400_000) == data[12_345_678:12_400_000]
    assert fs.cat_file(side.url("big.bin"), start=-10) == data[-10:]


def test_missing_things_raise_file_not_found(side: Side) -> None:
    side.client.pfs.put_file(f"{side.repo}@master:/dir/here.csv", b"x\n1\n")
    fs = side.fs()
    with pytest.raises(FileNotFoundError, match="not found"):
        pd.read_csv(side.url("nothing.csv"), storage_options=side.opts)
    for url in (side.url("nothing.csv"), side.url("here.csv", "no-branch"),
                "tusk://no-such-repo@master/x.csv"):
        with pytest.raises(FileNotFoundError):
            fs.open(url, "rb")
        with pytest.raises(FileNotFoundError):
            fs.info(url)
        with pytest.raises(FileNotFoundError):
            fs.cat(url)
        assert not fs.exists(url)
    with pytest.raises(FileNotFoundError):
        fs.ls(side.url("nodir"))
    with pytest.raises(IsADirectoryError):
        fs.open(side.url("dir"), "rb")
    # A write to a repo that does not exist fails when opened, before any data is produced.
    with pytest.raises(FileNotFoundError, match="no-such-repo"):
        fsspec.open("tusk://no-such-repo@master/x.csv", "wb", **side.opts).open()


# -- listing ------------------------------------------------------------------------------------


def test_ls_info_find_walk(side: Side) -> None:
    side.put_tree()
    fs = side.fs()
    r = side.repo
    top = f"{r}@master"

    assert {"name": r, "type": "directory"}.items() <= next(
        e for e in fs.ls("") if e["name"] == r).items()
    assert fs.ls(f"tusk://{r}", detail=False) == [top]  # a repo lists its branches
    assert [(e["name"], e["type"], e["size"]) for e in fs.ls(side.url(""))] == [
        (f"{top}/dir", "directory", 4 + 5 + 1 + 7 + 5),
        (f"{top}/other", "directory", 4),
    ]
    info = fs.info(side.url("dir/sub/d.csv"))
    assert (info["name"], info["type"], info["size"]) == (f"{top}/dir/sub/d.csv", "file", 7)
    assert len(info["hash"]) == 64
    assert fs.info(side.url("dir/sub")) == {"name": f"{top}/dir/sub", "type": "directory",
                                            "size": 12, "commit": info["commit"]}
    assert fs.info(top)["size"] == fs.info(r)["size"] == 26
    assert fs.isdir(side.url("dir")) and fs.isfile(side.url("dir/a.csv"))
    assert not fs.isfile(side.url("dir")) and not fs.isdir(side.url("dir/a.csv"))

    assert fs.find(side.url("dir")) == [f"{top}/dir/{p}" for p in
                                         ("a.csv", "b.csv", "c.txt", "sub/d.csv", "sub/e.txt")]
    assert fs.find(side.url("dir"), maxdepth=1) == [f"{top}/dir/{p}" for p in
                                                    ("a.csv", "b.csv", "c.txt")]
    found = fs.find(top, withdirs=True, detail=True)
    assert {n: (i["type"], i["size"]) for n, i in found.items()} == {
        top: ("directory", 26), f"{top}/dir": ("directory", 22), f"{top}/dir/sub": ("directory", 12),
        f"{top}/other": ("directory", 4),
        **{f"{top}{p}": ("file", len(d)) for p, d in FILES.items()},
    }
    assert fs.find(side.url("dir/a.csv")) == [f"{top}/dir/a.csv"]
    assert fs.find(side.url("nothing")) == []
    # From a repo (and from the root) find goes through the branches.
    assert fs.find(r) == [f"{top}{p}" for p in FILES]

    assert list(fs.walk(side.url("dir"))) == [
        (f"{top}/dir", ["sub"], ["a.csv", "b.csv", "c.txt"]),
        (f"{top}/dir/sub", [], ["d.csv", "e.txt"]),
    ]
    assert list(fs.walk(top, maxdepth=1)) == [(top, ["dir", "other"], [])]
    assert [d for d, _, _ in fs.walk(top, topdown=False)] == [
        f"{top}/dir/sub", f"{top}/dir", f"{top}/other", top]
    # fsspec's own walk (an ls per directory) agrees with the one built on walk_file.
    assert list(fs.walk(top, detail=True)) == list(AbstractFileSystem.walk(fs, top, detail=True))

    # No listing is cached: a write shows up in the same filesystem's next listing.
    fs.pipe_file(side.url("other/g.csv"), b"g")
    assert fs.ls(side.url("other"), detail=False) == [f"{top}/other/f.csv", f"{top}/other/g.csv"]


def test_glob(side: Side) -> None:
    side.put_tree()
    fs = side.fs()
    top = f"{side.repo}@master"

    found = fs.glob(side.url("dir/*.csv"))
    assert found == [f"{top}/dir/a.csv", f"{top}/dir/b.csv"]
    # The results are paths fsspec and pandas take back.
    assert [pd.read_csv("tusk://" + p, storage_options=side.opts)["n"][0] for p in found] == [1, 22]
    assert fs.cat(found) == {f"{top}/dir/a.csv": b"n\n1\n", f"{top}/dir/b.csv": b"n\n22\n"}
    assert fsspec.open_files(side.url("dir/*.csv"), **side.opts)[1].path == f"{top}/dir/b.csv"

    # PFS matches the simple patterns in one call; fsspec's generic glob (over find) gives the
    # same answer, and still handles the patterns PFS would read differently ('**').
    for pattern in ("dir/*.csv", "dir/*", "*/*.csv", "dir/?.txt", "dir/[ab].csv",
                    "dir/[!a].csv", "*/sub/*", "dir/**/*.csv", "**/*.txt", "dir/*/"):
        url = side.url(pattern)
        assert fs.glob(url) == AbstractFileSystem.glob(fs, url), pattern
    detail = fs.glob(side.url("dir/*"), detail=True)
    assert {n: (i["type"], i["size"]) for n, i in detail.items()} == {
        f"{top}/dir/a.csv": ("file", 4), f"{top}/dir/b.csv": ("file", 5),
        f"{top}/dir/c.txt": ("file", 1), f"{top}/dir/sub": ("directory", 12)}

    # The shorthand without a ref names results the same way it was written.
    assert fs.glob(f"tusk://{side.repo}/dir/*.csv") == [f"{side.repo}/dir/a.csv",
                                                        f"{side.repo}/dir/b.csv"]
    assert fs.glob(side.url("*.csv", "no-branch")) == []
    assert fs.glob(side.url("dir/*.parquet")) == []


# -- writing ------------------------------------------------------------------------------------


def test_writes_land_as_one_commit(side: Side) -> None:
    df = pd.DataFrame({"k": ["a", "b", "c"], "v": [1.5, 2.5, 3.5]})
    df.to_csv(side.url("out/frame.csv"), index=False, storage_options=side.opts)
    assert len(side.commit_ids()) == 1
    assert side.cli.ok("get", "file", f"{side.repo}@master:/out/frame.csv",
                       binary=True) == df.to_csv(index=False).encode()
    assert pd.read_csv(side.url("out/frame.csv"), storage_options=side.opts).equals(df)

    # Many buffered parts (block_size 1 KiB), still exactly one commit when the file closes.
    parts = [bytes([i]) * 1000 for i in range(10)]
    with fsspec.open(side.url("out/parts.bin"), "wb", block_size=1024, **side.opts) as f:
        for p in parts:
            f.write(p)
        assert side.sdk_commits() == 1  # nothing lands before close
    ids = side.commit_ids()
    assert len(ids) == 2
    assert side.cli.ok("get", "file", f"{side.repo}@master:/out/parts.bin",
                       binary=True) == b"".join(parts)
    fs = side.fs()
    assert fs.info(side.url("out/parts.bin"))["commit"] == ids[0]

    # A dict of files through pipe: one commit; and an empty file (touch) is a file.
    fs.pipe({side.url("p/one"): b"1", side.url("p/two"): b"2"})
    assert side.sdk_commits() == 3
    fs.touch(side.url("p/empty"))
    assert fs.info(side.url("p/empty"))["size"] == 0
    with fsspec.open(side.url("p/one"), "ab", **side.opts) as f:
        f.write(b"+more")
    assert fs.cat(side.url("p/one")) == b"1+more"
    with pytest.raises(FileExistsError):
        fs.open(side.url("p/two"), "xb")
    assert side.sdk_commits() == 5


def test_a_failing_write_lands_nothing(side: Side) -> None:
    side.client.pfs.put_file(f"{side.repo}@master:/keep.csv", b"k\n1\n")
    fs = side.fs()

    opened = fsspec.open(side.url("half.bin"), "wb", block_size=1024, **side.opts)
    with pytest.raises(RuntimeError, match="boom"), opened as f:
        f.write(b"x" * 5000)  # some parts are out of the buffer already
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"), fsspec.open(side.url("half.txt"), "w",
                                                                 **side.opts) as t:
        t.write("text")
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"), fs.open(side.url("half2.bin"), "wb") as f:
        f.write(b"x")
        raise RuntimeError("boom")

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("boom: cannot render")

    rows = 300_000  # pandas writes a few chunks before it reaches the bad value
    bad = pd.DataFrame({"n": range(rows), "o": ["ok"] * (rows - 1) + [Unprintable()]})
    with pytest.raises(RuntimeError, match="boom"):
        bad.to_csv(side.url("half.csv"), storage_options=side.opts)

    assert len(side.commit_ids()) == 1
    assert fs.find(side.url("")) == [f"{side.repo}@master/keep.csv"]

    # A file written while an *earlier* exception is being handled still lands.
    try:
        raise KeyError("handled")
    except KeyError:
        with fsspec.open(side.url("fallback.txt"), "wb", **side.opts) as f:
            f.write(b"fallback")
    assert fs.cat(side.url("fallback.txt")) == b"fallback"
    assert side.sdk_commits() == 2


def test_writes_to_commits_are_refused_or_staged(side: Side) -> None:
    first = side.client.pfs.put_file(f"{side.repo}@master:/a.csv", b"a\n1\n").id
    fs = side.fs()
    df = pd.DataFrame({"a": [2]})

    with pytest.raises(PermissionError, match=f"commit {side.repo}@{first} is finished and read-only"):
        df.to_csv(side.url("b.csv", first), storage_options=side.opts)
    with pytest.raises(PermissionError, match="finished and read-only"):
        fs.pipe_file(side.url("b.csv", first), b"b")
    with pytest.raises(PermissionError, match="older commit"):
        fsspec.open(side.url("b.csv", "master^"), "wb", **side.opts).open()
    with pytest.raises(PermissionError, match="finished and read-only"):
        fs.rm(side.url("a.csv", first))
    assert side.sdk_commits() == 1

    # An open commit takes writes, as 'tusk put file repo@<open commit>' does: several files
    # written through fsspec become one commit.
    with side.client.pfs.commit(f"{side.repo}@master") as c:
        df.to_csv(side.url("b.csv", c.id), index=False, storage_options=side.opts)
        fs.pipe_file(side.url("c.csv", c.id), b"c\n3\n")
    assert side.sdk_commits() == 2
    assert fs.find(side.url("", c.id)) == [f"{side.repo}@{c.id}/{n}" for n in ("a.csv", "b.csv", "c.csv")]


def test_put_copy_move_delete_and_transactions(side: Side, tmp_path: Path) -> None:
    fs = side.fs()
    local = tmp_path / "up"
    (local / "sub").mkdir(parents=True)
    for rel, data in {"x.csv": b"x", "y.csv": b"yy", "sub/z.csv": b"zzz"}.items():
        (local / rel).write_bytes(data)

    fs.put(str(local), side.url("up"), recursive=True)  # a directory: one commit
    assert side.sdk_commits() == 1
    assert fs.find(side.url("up")) == [f"{side.repo}@master/up/{p}" for p in ("sub/z.csv", "x.csv", "y.csv")]

    fs.cp(side.url("up/x.csv"), side.url("copied/x.csv"))
    fs.mv(side.url("up/sub"), side.url("moved"), recursive=True)  # copy + delete: one commit
    assert side.sdk_commits() == 3
    assert fs.cat(side.url("moved/z.csv")) == b"zzz"
    assert not fs.exists(side.url("up/sub"))

    fs.rm(side.url("up/*.csv"))  # a glob: one commit
    fs.rm(side.url("copied"), recursive=True)
    with pytest.raises(IsADirectoryError):
        fs.rm(side.url("moved"))
    assert side.sdk_commits() == 5
    assert fs.find(side.url("")) == [f"{side.repo}@master/moved/z.csv"]

    # A transaction: everything inside is one commit; nothing if it raises.
    with fs.transaction:
        with fs.open(side.url("t/1.txt"), "wb") as f:
            f.write(b"1")
        fs.pipe_file(side.url("t/2.txt"), b"2")
        fs.rm(side.url("moved/z.csv"))
        assert side.sdk_commits() == 5
    assert side.sdk_commits() == 6
    assert fs.find(side.url("")) == [f"{side.repo}@master/t/{n}.txt" for n in (1, 2)]
    with pytest.raises(RuntimeError), fs.transaction:
        fs.pipe_file(side.url("t/3.txt"), b"3")
        raise RuntimeError("no")
    assert side.sdk_commits() == 6
    assert not fs.exists(side.url("t/3.txt"))


# -- choosing the target ------------------------------------------------------------------------


def test_the_current_context_chooses_the_server(module_tusk: Any, server: Server, clients: Any,
                                                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean_env(monkeypatch, tmp_path)
    empty_root = tmp_path / "empty-root"
    monkeypatch.setenv("TUSK_ROOT", str(empty_root))
    config = tmp_path / "user-config.json"
    monkeypatch.setenv("TUSK_CONFIG", str(config))
    cli = copy.copy(module_tusk)
    cli.env = {**module_tusk.env, "TUSK_ROOT": str(empty_root), "TUSK_CONFIG": str(config)}
    repo = "ctx" + uuid.uuid4().hex[:8]

    cli.ok("context", "create", "srv", "--address", server.url, "--auth-token", TOKEN)
    cli.ok("context", "use", "srv")
    cli.ok("create", "repo", repo)  # on the server, through the context

    # No storage options: the same context as the CLI.
    pd.DataFrame({"c": [7]}).to_csv(f"tusk://{repo}@master/c.csv", index=False)
    assert pd.read_csv(f"tusk://{repo}@master/c.csv")["c"].tolist() == [7]
    with sdk.Client(server.url, auth_token=TOKEN) as direct:
        assert direct.pfs.get_file(f"{repo}@master:/c.csv") == b"c\n7\n"

    # $TUSK_ADDRESS and $TUSK_AUTH_TOKEN override the context, as for the CLI.
    monkeypatch.setenv("TUSK_CONFIG", str(tmp_path / "none.json"))
    monkeypatch.setenv("TUSK_ADDRESS", server.url)
    monkeypatch.setenv("TUSK_AUTH_TOKEN", TOKEN)
    assert fsspec.filesystem("tusk").cat(f"{repo}@master/c.csv") == b"c\n7\n"

    # Back to 'local' (the empty root): a new filesystem follows; nothing sticks to the server.
    monkeypatch.delenv("TUSK_ADDRESS")
    monkeypatch.delenv("TUSK_AUTH_TOKEN")
    assert not fsspec.filesystem("tusk").exists(f"{repo}@master/c.csv")
    # ... and 'root' names a local root explicitly.
    assert fsspec.filesystem("tusk", root=module_tusk.root).ls("", detail=False)
    with pytest.raises(ValueError, match="not both"):
        fsspec.filesystem("tusk", address=server.url, root=module_tusk.root)


def test_other_projects(side: Side) -> None:
    proj = "p" + uuid.uuid4().hex[:8]
    side.client.pfs.service.create_project(proj)
    side.client.pfs.create_repo(f"{proj}/{side.repo}")
    fs = side.fs()
    url = f"tusk://{proj}/{side.repo}@master/x.csv"

    pd.DataFrame({"x": [1]}).to_csv(url, index=False, storage_options=side.opts)
    assert side.client.pfs.get_file(f"{proj}/{side.repo}@master:/x.csv") == b"x\n1\n"
    assert fs.glob(f"tusk://{proj}/{side.repo}@master/*.csv") == [f"{proj}/{side.repo}@master/x.csv"]
    assert not fs.exists(side.url("x.csv"))  # the repo of that name in 'default' is another
    # The 'project' option names the project of repos written without one.
    pfs = fsspec.filesystem("tusk", project=proj, **side.opts)
    assert pfs.ls("", detail=False) == [side.repo]
    assert pfs.cat(f"{side.repo}/x.csv") == b"x\n1\n"


def test_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """docs/fsspec.md's examples, as one script, on a fresh local root (the current context)."""
    _clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("TUSK_ROOT", str(tmp_path / "root"))
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert blocks, "docs/fsspec.md lost its examples"
    exec(compile("\n".join(blocks), str(DOC), "exec"), {})  # noqa: S102 (our own docs)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "[4.5, 19.0]", "['Oslo', 'Lima']", "['weather@master']",
        "['weather@master/2024/feb.csv', 'weather@master/2024/jan.csv']", "29", "False", "3",
    ]
