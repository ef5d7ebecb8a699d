"""Projects, repos and branches through the PFS service (pachyderm-features §1.2, §1.3, §1.5)."""

from __future__ import annotations

import time

import pytest

from tusk.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tusk.pfs.model import CommitInfo
from tusk.pfs.refs import RepoRef, parse_commit, parse_file, parse_repo
from tusk.pfs.service import PfsService


def put(svc: PfsService, ref: str, files: dict[str, bytes]) -> CommitInfo:
    with svc.modify(parse_commit(ref)) as fs:
        for path, data in files.items():
            fs.put_bytes(path, data)
    assert fs.commit is not None
    return fs.commit


def names(items: list) -> list[str]:
    return [i.name for i in items]


# -- projects ---------------------------------------------------------------------------------


def test_default_project_always_exists(svc: PfsService) -> None:
    assert names(svc.list_projects()) == ["default"]
    assert svc.inspect_project("default").name == "default"
    with pytest.raises(FailedPrecondition):
        svc.delete_project("default")
    with pytest.raises(FailedPrecondition):
        svc.delete_project("default", force=True)
    assert names(svc.list_projects()) == ["default"]


def test_create_inspect_update_list_projects(svc: PfsService) -> None:
    info = svc.create_project("vision", "image work")
    assert (info.name, info.description) == ("vision", "image work")
    svc.create_project("audio")
    assert names(svc.list_projects()) == ["audio", "default", "vision"]
    assert svc.update_project("vision", "new words").description == "new words"
    assert svc.inspect_project("vision").description == "new words"
    with pytest.raises(AlreadyExists):
        svc.create_project("vision")
    with pytest.raises(NotFound):
        svc.inspect_project("nope")
    with pytest.raises(NotFound):
        svc.update_project("nope", "x")


@pytest.mark.parametrize("bad", ["", "-leading-dash", "has space", "a/b", "x" * 52])
def test_bad_project_names_are_refused(svc: PfsService, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        svc.create_project(bad)
    assert names(svc.list_projects()) == ["default"]


def test_delete_project_with_repos_needs_force(svc: PfsService) -> None:
    svc.create_project("p")
    svc.create_repo(RepoRef("p", "data"))
    put(svc, "p/data@master", {"/f": b"x"})
    with pytest.raises(FailedPrecondition):
        svc.delete_project("p")
    assert names(svc.list_repos("p")) == ["data"]
    svc.delete_project("p", force=True)
    assert names(svc.list_projects()) == ["default"]
    with pytest.raises(NotFound):
        svc.inspect_repo(RepoRef("p", "data"))
    with pytest.raises(NotFound):
        svc.delete_project("p")


def test_empty_project_deletes_without_force(svc: PfsService) -> None:
    svc.create_project("empty")
    svc.delete_project("empty")
    with pytest.raises(NotFound):
        svc.inspect_project("empty")


def test_same_repo_name_in_two_projects_is_two_repos(svc: PfsService) -> None:
    svc.create_project("p")
    svc.create_repo(parse_repo("data"))
    svc.create_repo(parse_repo("p/data"))
    put(svc, "data@master", {"/in-default": b"1"})
    put(svc, "p/data@master", {"/in-p": b"22"})
    assert [f.path for f in svc.list_file(parse_file("data@master:/"))] == ["/in-default"]
    assert [f.path for f in svc.list_file(parse_file("p/data@master:/"))] == ["/in-p"]
    assert names(svc.list_repos("p")) == ["data"]
    assert svc.inspect_repo(parse_repo("p/data")).project == "p"


# -- repos ------------------------------------------------------------------------------------


def test_create_and_inspect_repo(svc: PfsService) -> None:
    info = svc.create_repo(parse_repo("images"), "raw pictures")
    assert (info.project, info.name, info.type) == ("default", "images", "user")
    assert info.description == "raw pictures"
    assert info.size_bytes == 0
    assert info.branches == ()  # create repo makes no branch
    assert svc.inspect_repo(parse_repo("images")) == info


def test_create_existing_repo(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"), "first")
    with pytest.raises(AlreadyExists):
        svc.create_repo(parse_repo("images"))
    assert svc.create_repo(parse_repo("images"), "second", update=True).description == "second"
    assert names(svc.list_repos()) == ["images"]


@pytest.mark.parametrize("bad", ["has space", "dot.name", "a@b", "x" * 64, ""])
def test_bad_repo_names_are_refused(svc: PfsService, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_repo(bad)
    with pytest.raises(InvalidArgument):
        svc.create_repo(RepoRef("default", bad))  # the service checks too, not only the parser
    assert svc.list_repos() == []


def test_repo_in_missing_project(svc: PfsService) -> None:
    with pytest.raises(NotFound):
        svc.create_repo(parse_repo("ghost/data"))
    with pytest.raises(NotFound):
        svc.inspect_repo(parse_repo("ghost/data"))
    with pytest.raises(NotFound):
        svc.list_repos("ghost")


def test_missing_repo_is_not_found(svc: PfsService) -> None:
    for call in (
        lambda: svc.inspect_repo(parse_repo("nope")),
        lambda: svc.update_repo(parse_repo("nope"), "d"),
        lambda: svc.delete_repo(parse_repo("nope")),
        lambda: svc.list_branches(parse_repo("nope")),
        lambda: put(svc, "nope@master", {"/f": b"x"}),
    ):
        with pytest.raises(NotFound):
            call()


def test_list_repos_newest_first(svc: PfsService) -> None:
    for name in ["first", "second", "third"]:
        svc.create_repo(parse_repo(name))
    assert names(svc.list_repos()) == ["third", "second", "first"]
    svc.create_project("other")
    svc.create_repo(parse_repo("other/elsewhere"))
    assert names(svc.list_repos()) == ["third", "second", "first"]
    assert sorted(names(svc.list_repos(None))) == ["elsewhere", "first", "second", "third"]


def test_update_repo_description(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    assert svc.update_repo(parse_repo("images"), "now described").description == "now described"
    assert svc.inspect_repo(parse_repo("images")).description == "now described"


def test_repo_size_is_the_master_head(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    put(svc, "images@master", {"/a": b"x" * 100, "/d/b": b"y" * 23})
    assert svc.inspect_repo(parse_repo("images")).size_bytes == 123
    put(svc, "images@dev", {"/big": b"z" * 1000})  # another branch does not count
    info = svc.inspect_repo(parse_repo("images"))
    assert info.size_bytes == 123
    assert info.branches == ("dev", "master")
    with svc.modify(parse_commit("images@master")) as fs:
        fs.delete("/a")
    assert svc.inspect_repo(parse_repo("images")).size_bytes == 23


def test_delete_repo_removes_it_and_its_history(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    c = put(svc, "images@master", {"/a": b"x"})
    svc.delete_repo(parse_repo("images"))
    assert svc.list_repos() == []
    with pytest.raises(NotFound):
        svc.inspect_commit(parse_commit(f"images@{c.id}"))
    # The name is free again, with no history.
    svc.create_repo(parse_repo("images"))
    assert svc.list_commits(parse_repo("images")) == []


def test_delete_repo_that_is_provenance_needs_force(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    svc.create_repo(parse_repo("edges"))
    put(svc, "images@master", {"/a": b"x"})
    svc.create_branch(parse_repo("edges"), "master", provenance=[(parse_repo("images"), "master")])
    with pytest.raises(FailedPrecondition):
        svc.delete_repo(parse_repo("images"))
    assert names(svc.list_repos()) == ["edges", "images"]
    svc.delete_repo(parse_repo("images"), force=True)
    assert names(svc.list_repos()) == ["edges"]
    assert svc.inspect_branch(parse_repo("edges"), "master").provenance == ()


def test_delete_downstream_repo_needs_no_force(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    svc.create_repo(parse_repo("edges"))
    put(svc, "images@master", {"/a": b"x"})
    svc.create_branch(parse_repo("edges"), "master", provenance=[(parse_repo("images"), "master")])
    svc.delete_repo(parse_repo("edges"))
    assert svc.inspect_branch(parse_repo("images"), "master").subvenance == ()


# -- branches ---------------------------------------------------------------------------------


def test_create_branch_with_head(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    c1 = put(svc, "images@master", {"/a": b"1"})
    put(svc, "images@master", {"/b": b"2"})
    b = svc.create_branch(parse_repo("images"), "dev", head=parse_commit("images@master^"))
    assert b.head == c1.id
    assert [f.path for f in svc.list_file(parse_file("images@dev:/"))] == ["/a"]
    # A commit on the new branch builds on its head.
    put(svc, "images@dev", {"/c": b"3"})
    assert [f.path for f in svc.list_file(parse_file("images@dev:/"))] == ["/a", "/c"]
    assert [f.path for f in svc.list_file(parse_file("images@master:/"))] == ["/a", "/b"]


def test_create_branch_without_head_has_an_empty_head(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    b = svc.create_branch(parse_repo("images"), "empty")
    head = svc.inspect_commit(parse_commit("images@empty"))
    assert head.id == b.head
    assert head.finished and head.file_count == 0
    assert svc.list_file(parse_file("images@empty:/")) == []


def test_move_branch_head(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    c1 = put(svc, "images@master", {"/a": b"1"})
    c2 = put(svc, "images@master", {"/b": b"2"})
    svc.create_branch(parse_repo("images"), "master", head=parse_commit(f"images@{c1.id}"))
    assert svc.inspect_branch(parse_repo("images"), "master").head == c1.id
    assert [f.path for f in svc.list_file(parse_file("images@master:/"))] == ["/a"]
    svc.create_branch(parse_repo("images"), "master", head=parse_commit(f"images@{c2.id}"))
    assert [f.path for f in svc.list_file(parse_file("images@master:/"))] == ["/a", "/b"]


def test_branch_head_must_be_in_the_same_repo(svc: PfsService) -> None:
    svc.create_repo(parse_repo("a"))
    svc.create_repo(parse_repo("b"))
    put(svc, "a@master", {"/x": b"1"})
    with pytest.raises(InvalidArgument):
        svc.create_branch(parse_repo("b"), "master", head=parse_commit("a@master"))
    assert svc.list_branches(parse_repo("b")) == []


def test_provenance_cycle_is_refused(svc: PfsService) -> None:
    for r in ("a", "b", "c"):
        svc.create_repo(parse_repo(r))
    put(svc, "a@master", {"/x": b"1"})
    svc.create_branch(parse_repo("b"), "master", provenance=[(parse_repo("a"), "master")])
    svc.create_branch(parse_repo("c"), "master", provenance=[(parse_repo("b"), "master")])
    with pytest.raises(InvalidArgument):
        svc.create_branch(parse_repo("a"), "master", provenance=[(parse_repo("c"), "master")])
    assert svc.inspect_branch(parse_repo("a"), "master").provenance == ()


def test_provenance_in_own_repo_is_refused(svc: PfsService) -> None:
    svc.create_repo(parse_repo("a"))
    put(svc, "a@master", {"/x": b"1"})
    with pytest.raises(InvalidArgument):
        svc.create_branch(parse_repo("a"), "derived", provenance=[(parse_repo("a"), "master")])
    assert names(svc.list_branches(parse_repo("a"))) == ["master"]


def test_provenance_on_a_missing_branch(svc: PfsService) -> None:
    svc.create_repo(parse_repo("a"))
    svc.create_repo(parse_repo("b"))
    with pytest.raises(NotFound):
        svc.create_branch(parse_repo("b"), "master", provenance=[(parse_repo("a"), "master")])
    assert svc.list_branches(parse_repo("b")) == []


def test_branch_provenance_and_subvenance_are_reported(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    svc.create_repo(parse_repo("edges"))
    put(svc, "images@master", {"/a": b"x"})
    info = svc.create_branch(parse_repo("edges"), "master", provenance=[(parse_repo("images"), "master")])
    assert info.provenance == ("images@master",)
    assert svc.inspect_branch(parse_repo("images"), "master").subvenance == ("edges@master",)


def test_delete_branch_with_dependents_needs_force(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    svc.create_repo(parse_repo("edges"))
    c = put(svc, "images@master", {"/a": b"x"})
    svc.create_branch(parse_repo("edges"), "master", provenance=[(parse_repo("images"), "master")])
    with pytest.raises(FailedPrecondition):
        svc.delete_branch(parse_repo("images"), "master")
    assert names(svc.list_branches(parse_repo("images"))) == ["master"]
    svc.delete_branch(parse_repo("images"), "master", force=True)
    assert svc.list_branches(parse_repo("images")) == []
    assert svc.inspect_branch(parse_repo("edges"), "master").provenance == ()
    # Deleting a branch does not delete its commits.
    assert svc.inspect_commit(parse_commit(f"images@{c.id}")).id == c.id


def test_delete_missing_branch(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    with pytest.raises(NotFound):
        svc.delete_branch(parse_repo("images"), "nope")
    with pytest.raises(NotFound):
        svc.inspect_branch(parse_repo("images"), "nope")


@pytest.mark.parametrize("bad", ["has space", "a^b", "0123456789abcdef0123456789abcdef", "x" * 64])
def test_bad_branch_names_are_refused(svc: PfsService, bad: str) -> None:
    svc.create_repo(parse_repo("images"))
    with pytest.raises(InvalidArgument):
        svc.create_branch(parse_repo("images"), bad)
    with pytest.raises(InvalidArgument):
        svc.start_commit(parse_repo("images"), bad)
    assert svc.list_branches(parse_repo("images")) == []


def test_list_branches_most_recently_updated_first(svc: PfsService) -> None:
    svc.create_repo(parse_repo("images"))
    put(svc, "images@a", {"/x": b"1"})
    time.sleep(0.01)
    put(svc, "images@b", {"/x": b"1"})
    time.sleep(0.01)
    put(svc, "images@a", {"/y": b"2"})
    assert names(svc.list_branches(parse_repo("images"))) == ["a", "b"]
