"""Files through the PFS service: writes (put, append, delete, copy) and reads (pachyderm §1.7)."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from tusk.errors import FailedPrecondition, InvalidArgument, NotFound
from tusk.pfs.model import CommitInfo
from tusk.pfs.refs import parse_commit, parse_file, parse_repo
from tusk.pfs.service import PfsService

R, C, F = parse_repo, parse_commit, parse_file


def put(svc: PfsService, ref: str, files: dict[str, bytes], append: bool = False) -> CommitInfo:
    with svc.modify(C(ref)) as fs:
        for path, data in files.items():
            fs.put_bytes(path, data, append=append)
    assert fs.commit is not None
    return fs.commit


def cat(svc: PfsService, ref: str) -> bytes:
    return b"".join(svc.read_file(F(ref)))


def walk(svc: PfsService, ref: str) -> dict[str, bytes]:
    return {f.path: cat(svc, f"{ref}:{f.path}") for f in svc.walk_file(F(ref + ":/"))}


def n_commits(svc: PfsService, repo: str) -> int:
    return len(svc.list_commits(R(repo)))


def pack_bytes(svc: PfsService) -> int:
    store = svc.b.objects
    return sum(store.size(k) for k in store.list("packs/"))


@pytest.fixture
def repo(svc: PfsService) -> PfsService:
    svc.create_repo(R("data"))
    return svc


# -- put --------------------------------------------------------------------------------------


def test_put_overwrites_by_default(repo: PfsService) -> None:
    put(repo, "data@master", {"/f": b"first"})
    put(repo, "data@master", {"/f": b"2nd"})
    assert cat(repo, "data@master:/f") == b"2nd"
    assert cat(repo, "data@master^:/f") == b"first"
    assert repo.inspect_file(F("data@master:/f")).size == 3


def test_append_adds_to_the_parent_content(repo: PfsService) -> None:
    put(repo, "data@master", {"/log": b"one\n"})
    put(repo, "data@master", {"/log": b"two\n"}, append=True)
    put(repo, "data@master", {"/new": b"created"}, append=True)  # append to nothing creates
    assert cat(repo, "data@master:/log") == b"one\ntwo\n"
    assert cat(repo, "data@master:/new") == b"created"
    assert repo.inspect_file(F("data@master:/log")).size == 8


def test_repeated_writes_in_one_session_compose(repo: PfsService) -> None:
    put(repo, "data@master", {"/f": b"old"})
    with repo.modify(C("data@master")) as fs:
        fs.put_bytes("/f", b"a")
        fs.put_bytes("/f", b"b", append=True)
        fs.put_bytes("/f", b"c", append=True)
        fs.put_bytes("/g", b"x")
        fs.put_bytes("/g", b"y")  # overwrite within the session
    assert cat(repo, "data@master:/f") == b"abc"
    assert cat(repo, "data@master:/g") == b"y"
    assert n_commits(repo, "data") == 2


def test_appends_to_an_open_commit_across_sessions(repo: PfsService) -> None:
    put(repo, "data@master", {"/log": b"0"})
    repo.start_commit(R("data"), "master")
    for part in (b"1", b"2", b"3"):
        put(repo, "data@master", {"/log": part}, append=True)
    assert cat(repo, "data@master:/log") == b"0123"
    repo.finish_commit(C("data@master"))
    assert cat(repo, "data@master:/log") == b"0123"


def test_same_content_appended_and_written_whole_reads_the_same(repo: PfsService) -> None:
    put(repo, "data@master", {"/a": b"hello "})
    put(repo, "data@master", {"/a": b"world"}, append=True)
    put(repo, "data@master", {"/b": b"hello world"})
    assert cat(repo, "data@master:/a") == cat(repo, "data@master:/b")


def test_put_path_stream_and_many(repo: PfsService, tmp_path: Path) -> None:
    big = random.Random(1).randbytes(3 << 20)
    (tmp_path / "big.bin").write_bytes(big)
    small = {f"s{i}.txt": f"small {i}".encode() for i in range(20)}
    for name, data in small.items():
        (tmp_path / name).write_bytes(data)
    with repo.modify(C("data@master")) as fs:
        fs.put_path("/big.bin", tmp_path / "big.bin")
        fs.put_stream("/streamed.bin", io.BytesIO(big[:100_000]))
        n = fs.put_many((f"/many/{name}", tmp_path / name) for name in small)
    assert n == 20
    assert cat(repo, "data@master:/big.bin") == big
    assert cat(repo, "data@master:/streamed.bin") == big[:100_000]
    assert cat(repo, "data@master:/many/s7.txt") == b"small 7"
    assert len(list(repo.walk_file(F("data@master:/many")))) == 20


def test_read_file_from_an_offset(repo: PfsService) -> None:
    data = random.Random(2).randbytes(3 << 20)
    put(repo, "data@master", {"/big": data, "/small": b"0123456789"})
    assert b"".join(repo.read_file(F("data@master:/small"), offset=4)) == b"456789"
    assert b"".join(repo.read_file(F("data@master:/big"), offset=(2 << 20) + 5)) == data[(2 << 20) + 5 :]


@pytest.mark.parametrize("bad", ["/a*b", "/x/../y", "/q?", "/at@sign", "/tab\there", ""])
def test_bad_paths_are_refused(repo: PfsService, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        put(repo, "data@master", {bad: b"x"})
    assert n_commits(repo, "data") == 0


def test_an_error_in_the_session_lands_nothing(repo: PfsService) -> None:
    put(repo, "data@master", {"/keep": b"1"})
    with pytest.raises(RuntimeError), repo.modify(C("data@master")) as fs:
        fs.put_bytes("/lost", b"2")
        raise RuntimeError("client went away")
    assert walk(repo, "data@master") == {"/keep": b"1"}
    assert n_commits(repo, "data") == 1


def test_a_session_with_no_changes_makes_no_commit(repo: PfsService) -> None:
    put(repo, "data@master", {"/keep": b"1"})
    with repo.modify(C("data@master")) as fs:
        pass
    assert fs.commit is None
    assert n_commits(repo, "data") == 1


# -- delete -----------------------------------------------------------------------------------


def test_delete_file(repo: PfsService) -> None:
    put(repo, "data@master", {"/a": b"1", "/b": b"2"})
    with repo.modify(C("data@master")) as fs:
        fs.delete("/a")
    assert walk(repo, "data@master") == {"/b": b"2"}
    assert walk(repo, "data@master^") == {"/a": b"1", "/b": b"2"}  # history keeps it
    with pytest.raises(NotFound):
        repo.inspect_file(F("data@master:/a"))


def test_delete_a_directory_needs_recursive(repo: PfsService) -> None:
    put(repo, "data@master", {"/d/x": b"1", "/d/sub/y": b"2", "/dz": b"3", "/e": b"4"})
    with pytest.raises(InvalidArgument), repo.modify(C("data@master")) as fs:
        fs.delete("/d")
    assert n_commits(repo, "data") == 1
    with repo.modify(C("data@master")) as fs:
        fs.delete("/d", recursive=True)
    assert walk(repo, "data@master") == {"/dz": b"3", "/e": b"4"}


def test_deleting_a_missing_file_is_not_found(repo: PfsService) -> None:
    put(repo, "data@master", {"/a": b"1"})
    for path, recursive in (("/nope", False), ("/nope", True), ("/a/under-a-file", False)):
        with pytest.raises(NotFound), repo.modify(C("data@master")) as fs:
            fs.delete(path, recursive=recursive)
    assert n_commits(repo, "data") == 1


def test_delete_then_put_in_one_session(repo: PfsService) -> None:
    put(repo, "data@master", {"/d/a": b"1", "/d/b": b"2"})
    with repo.modify(C("data@master")) as fs:
        fs.delete("/d", recursive=True)
        fs.put_bytes("/d/c", b"3")
    assert walk(repo, "data@master") == {"/d/c": b"3"}


def test_delete_in_an_open_commit(repo: PfsService) -> None:
    put(repo, "data@master", {"/d/a": b"1", "/d/b": b"2", "/e": b"3"})
    repo.start_commit(R("data"), "master")
    with repo.modify(C("data@master")) as fs:
        fs.delete("/d", recursive=True)
    with repo.modify(C("data@master")) as fs:
        fs.delete("/e")
    assert walk(repo, "data@master") == {}
    assert set(walk(repo, "data@master^")) == {"/d/a", "/d/b", "/e"}
    repo.finish_commit(C("data@master"))
    assert walk(repo, "data@master") == {}


# -- file / directory collisions --------------------------------------------------------------


@pytest.mark.parametrize(
    "first, second",
    [
        ({"/a": b"file"}, {"/a/b": b"inside"}),  # file exists, write below it
        ({"/a/b": b"inside"}, {"/a": b"file"}),  # directory exists, write a file on it
        ({"/keep": b"1"}, {"/x": b"f", "/x/y/z": b"g"}),  # both in one session
    ],
)
def test_file_directory_collision_is_refused_and_lands_nothing(
    repo: PfsService, first: dict[str, bytes], second: dict[str, bytes]
) -> None:
    put(repo, "data@master", first)
    before = walk(repo, "data@master")
    with pytest.raises(InvalidArgument):
        put(repo, "data@master", second)
    assert n_commits(repo, "data") == 1
    assert walk(repo, "data@master") == before


def test_collision_in_an_open_commit_is_refused_at_finish(repo: PfsService) -> None:
    put(repo, "data@master", {"/a": b"file"})
    repo.start_commit(R("data"), "master")
    put(repo, "data@master", {"/a/b": b"inside"})
    with pytest.raises(InvalidArgument):
        repo.finish_commit(C("data@master"))
    assert not repo.inspect_commit(C("data@master")).finished
    with repo.modify(C("data@master")) as fs:
        fs.delete("/a")
    repo.finish_commit(C("data@master"))
    assert walk(repo, "data@master") == {"/a/b": b"inside"}


def test_replacing_a_file_by_a_directory_in_one_session(repo: PfsService) -> None:
    put(repo, "data@master", {"/a": b"file"})
    with repo.modify(C("data@master")) as fs:
        fs.delete("/a")
        fs.put_bytes("/a/b", b"now a dir")
    assert walk(repo, "data@master") == {"/a/b": b"now a dir"}


# -- copy -------------------------------------------------------------------------------------


def test_copy_a_file_across_repos_moves_no_bytes(svc: PfsService) -> None:
    svc.create_repo(R("src"))
    svc.create_repo(R("dst"))
    data = random.Random(3).randbytes(300_000)
    put(svc, "src@master", {"/big.bin": data})
    stored = pack_bytes(svc)
    with svc.modify(C("dst@master")) as fs:
        assert fs.copy(F("src@master:/big.bin"), "/copied.bin") == 1
        assert fs.writer.bytes_written == 0
    assert pack_bytes(svc) == stored
    assert cat(svc, "dst@master:/copied.bin") == data
    src, dst = svc.inspect_file(F("src@master:/big.bin")), svc.inspect_file(F("dst@master:/copied.bin"))
    assert (src.hash, src.size) == (dst.hash, dst.size)


def test_copy_a_directory_across_projects(svc: PfsService) -> None:
    svc.create_project("other")
    svc.create_repo(R("src"))
    svc.create_repo(R("other/dst"))
    put(svc, "src@master", {"/d/a": b"1", "/d/sub/b": b"22", "/outside": b"3"})
    stored = pack_bytes(svc)
    with svc.modify(C("other/dst@master")) as fs:
        assert fs.copy(F("src@master:/d"), "/copy") == 2
        assert fs.writer.bytes_written == 0
    assert pack_bytes(svc) == stored
    assert walk(svc, "other/dst@master") == {"/copy/a": b"1", "/copy/sub/b": b"22"}


def test_copy_to_root_keeps_the_name_and_append_concatenates(repo: PfsService) -> None:
    put(repo, "data@master", {"/dir/name.txt": b"abc", "/t": b"start:"})
    with repo.modify(C("data@dev")) as fs:
        fs.copy(F("data@master:/dir/name.txt"), "/")
    assert walk(repo, "data@dev") == {"/name.txt": b"abc"}
    with repo.modify(C("data@master")) as fs:
        fs.copy(F("data@master:/dir/name.txt"), "/t", append=True)
    assert cat(repo, "data@master:/t") == b"start:abc"


def test_copy_of_a_missing_path_is_not_found(repo: PfsService) -> None:
    put(repo, "data@master", {"/a": b"1"})
    with pytest.raises(NotFound), repo.modify(C("data@master")) as fs:
        fs.copy(F("data@master:/nope"), "/x")
    assert n_commits(repo, "data") == 1


def test_copy_from_an_old_commit_restores_a_file(repo: PfsService) -> None:
    put(repo, "data@master", {"/f": b"version 1"})
    put(repo, "data@master", {"/f": b"version 2"})
    with repo.modify(C("data@master")) as fs:
        fs.copy(F("data@master^:/f"), "/f")
    assert cat(repo, "data@master:/f") == b"version 1"


# -- reads ------------------------------------------------------------------------------------


def test_list_file_gives_direct_children_with_sizes(repo: PfsService) -> None:
    put(repo, "data@master", {"/a.txt": b"12345", "/d/x": b"1", "/d/sub/y": b"22", "/e/z": b"333"})
    top = repo.list_file(F("data@master:/"))
    assert [(f.path, f.type, f.size) for f in top] == [
        ("/a.txt", "file", 5), ("/d", "dir", 3), ("/e", "dir", 3),
    ]
    inner = repo.list_file(F("data@master:/d"))
    assert [(f.path, f.type, f.size) for f in inner] == [("/d/sub", "dir", 2), ("/d/x", "file", 1)]
    assert [f.path for f in repo.list_file(F("data@master:/a.txt"))] == ["/a.txt"]
    with pytest.raises(NotFound):
        repo.list_file(F("data@master:/nope"))


def test_list_file_of_an_empty_repo_root(repo: PfsService) -> None:
    repo.create_branch(R("data"), "master")
    assert repo.list_file(F("data@master:/")) == []


def test_inspect_file_and_directory(repo: PfsService) -> None:
    c = put(repo, "data@master", {"/d/x": b"1", "/d/y": b"22"})
    f = repo.inspect_file(F("data@master:/d/y"))
    assert (f.type, f.size, f.commit) == ("file", 2, c.id)
    assert len(f.hash) == 64
    d = repo.inspect_file(F("data@master:/d"))
    assert (d.type, d.size) == ("dir", 3)
    with pytest.raises(NotFound):
        repo.inspect_file(F("data@master:/d/z"))
    with pytest.raises(InvalidArgument):
        cat(repo, "data@master:/d")


def test_walk_file(repo: PfsService) -> None:
    put(repo, "data@master", {"/b": b"1", "/a/2": b"2", "/a/1/x": b"3"})
    assert [f.path for f in repo.walk_file(F("data@master:/"))] == ["/a/1/x", "/a/2", "/b"]
    assert [f.path for f in repo.walk_file(F("data@master:/a"))] == ["/a/1/x", "/a/2"]
    assert [f.path for f in repo.walk_file(F("data@master:/b"))] == ["/b"]
    with pytest.raises(NotFound):
        list(repo.walk_file(F("data@master:/nope")))


def test_glob_file_returns_files_and_directories(repo: PfsService) -> None:
    put(repo, "data@master", {"/a.csv": b"1", "/b.txt": b"22", "/dir/c.csv": b"333", "/dir2/d": b"4"})
    got = {(f.path, f.type) for f in repo.glob_file(C("data@master"), "/*")}
    assert got == {("/a.csv", "file"), ("/b.txt", "file"), ("/dir", "dir"), ("/dir2", "dir")}
    assert [f.path for f in repo.glob_file(C("data@master"), "/*.csv")] == ["/a.csv"]
    assert [f.path for f in repo.glob_file(C("data@master"), "/**.csv")] == ["/a.csv", "/dir/c.csv"]
    dirs = repo.glob_file(C("data@master"), "/dir*")
    assert [(f.path, f.size) for f in dirs] == [("/dir", 3), ("/dir2", 1)]
    assert repo.glob_file(C("data@master"), "/nothing*") == []
    with pytest.raises(InvalidArgument):
        repo.glob_file(C("data@master"), "/[unclosed")


def test_diff_against_the_parent(repo: PfsService) -> None:
    put(repo, "data@master", {"/same": b"s", "/changed": b"old", "/removed": b"r"})
    with repo.modify(C("data@master")) as fs:
        fs.put_bytes("/changed", b"newer")
        fs.delete("/removed")
        fs.put_bytes("/added", b"aa")
    got = {(d.path, d.change, d.old_size, d.new_size) for d in repo.diff_file(F("data@master:/"))}
    assert got == {
        ("/added", "added", None, 2), ("/changed", "changed", 3, 5), ("/removed", "removed", 1, None),
    }


def test_diff_between_two_refs_and_under_a_path(repo: PfsService) -> None:
    c1 = put(repo, "data@master", {"/d/a": b"1", "/e/b": b"2"})
    put(repo, "data@master", {"/d/c": b"3"})
    put(repo, "data@master", {"/e/b": b"22", "/d/a": b"11"})
    got = {(d.path, d.change) for d in repo.diff_file(F("data@master:/"), F(f"data@{c1.id}:/"))}
    assert got == {("/d/a", "changed"), ("/d/c", "added"), ("/e/b", "changed")}
    under = {(d.path, d.change) for d in repo.diff_file(F("data@master:/d"), F(f"data@{c1.id}:/d"))}
    assert under == {("/d/a", "changed"), ("/d/c", "added")}
    assert repo.diff_file(F("data@master:/"), F("data@master:/")) == []


def test_diff_of_an_open_commit_shows_staged_changes(repo: PfsService) -> None:
    put(repo, "data@master", {"/a": b"1"})
    repo.start_commit(R("data"), "master")
    put(repo, "data@master", {"/b": b"2"})
    assert [(d.path, d.change) for d in repo.diff_file(F("data@master:/"))] == [("/b", "added")]


def test_reads_of_a_missing_repo_or_branch(repo: PfsService) -> None:
    with pytest.raises(NotFound):
        repo.list_file(F("data@master:/"))
    with pytest.raises(NotFound):
        repo.inspect_file(F("nope@master:/a"))


def test_writes_to_a_finished_commit_id_fail_before_any_bytes_are_written(repo: PfsService) -> None:
    c = put(repo, "data@master", {"/a": b"1"})
    stored = pack_bytes(repo)
    with pytest.raises(FailedPrecondition):
        repo.modify(C(f"data@{c.id}"))
    assert pack_bytes(repo) == stored
    assert os.listdir(repo.b.objects.scratch_dir()) == []


def test_many_files_span_several_tree_ranges(repo: PfsService) -> None:
    """Enough paths for several tree ranges: listing, diff and recursive delete stay exact."""
    files = {f"/d{i % 7}/f{i:05d}": f"{i}".encode() for i in range(6000)}
    put(repo, "data@master", files)
    top = repo.list_file(F("data@master:/"))
    expect = {}
    for p, data in files.items():
        d = p.split("/")[1]
        expect[f"/{d}"] = expect.get(f"/{d}", 0) + len(data)
    assert [(f.path, f.type, f.size) for f in top] == [(d, "dir", n) for d, n in sorted(expect.items())]
    assert len(repo.list_file(F("data@master:/d3"))) == len([p for p in files if p.startswith("/d3/")])
    with repo.modify(C("data@master")) as fs:
        fs.put_bytes("/d1/f00001", b"changed")
        fs.delete("/d4", recursive=True)
    diff = repo.diff_file(F("data@master:/"))
    removed = sorted(p for p in files if p.startswith("/d4/"))
    assert [d.path for d in diff if d.change == "removed"] == removed
    assert [(d.path, d.change) for d in diff if d.change != "removed"] == [("/d1/f00001", "changed")]
    assert repo.inspect_commit(C("data@master")).file_count == 6000 - len(removed)
    assert cat(repo, "data@master:/d1/f00001") == b"changed"
    assert cat(repo, "data@master:/d0/f05999") == b"5999"
    assert [f.path for f in repo.glob_file(C("data@master"), "/d4")] == []


def test_staged_deletes_and_writes_compose_across_sessions(repo: PfsService) -> None:
    put(repo, "data@master", {"/d/a": b"1", "/d/b": b"2", "/f": b"old"})
    repo.start_commit(R("data"), "master")
    with repo.modify(C("data@master")) as fs:
        fs.delete("/d", recursive=True)
        fs.delete("/f")
    put(repo, "data@master", {"/d/new": b"3"})
    put(repo, "data@master", {"/f": b"fresh"}, append=True)  # append after delete starts anew
    assert walk(repo, "data@master") == {"/d/new": b"3", "/f": b"fresh"}
    with repo.modify(C("data@master")) as fs:
        fs.delete("/d", recursive=True)
    repo.finish_commit(C("data@master"))
    assert walk(repo, "data@master") == {"/f": b"fresh"}
    assert walk(repo, "data@master^") == {"/d/a": b"1", "/d/b": b"2", "/f": b"old"}
