"""Commits, commit sets (global IDs), delete and squash through the PFS service.

Semantics from pachyderm-features §1.4 (commits), §1.5 (branches), §1.6 (global IDs) and
§1.8 (squash / delete of history).
"""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from tusk.errors import FailedPrecondition, InvalidArgument, NotFound
from tusk.pfs.model import CommitInfo
from tusk.pfs.refs import parse_commit, parse_file, parse_repo
from tusk.pfs.service import PfsService

R, C, F = parse_repo, parse_commit, parse_file


def put(svc: PfsService, ref: str, files: dict[str, bytes]) -> CommitInfo:
    with svc.modify(C(ref)) as fs:
        for path, data in files.items():
            fs.put_bytes(path, data)
    assert fs.commit is not None
    return fs.commit


def paths(svc: PfsService, ref: str) -> list[str]:
    return [f.path for f in svc.walk_file(F(ref + ":/"))]


def cat(svc: PfsService, ref: str) -> bytes:
    return b"".join(svc.read_file(F(ref)))


def ids(commits: list[CommitInfo]) -> list[str]:
    return [c.id for c in commits]


@pytest.fixture
def images(svc: PfsService) -> PfsService:
    svc.create_repo(R("images"))
    return svc


def pipeline_dag(svc: PfsService, *repos: str) -> None:
    """repos[0]@master -> repos[1]@master -> ... by branch provenance, heads finished."""
    svc.create_repo(R(repos[0]))
    put(svc, f"{repos[0]}@master", {"/seed": b"seed"})
    for up, down in itertools.pairwise(repos):
        svc.create_repo(R(down))
        svc.create_branch(R(down), "master", provenance=[(R(up), "master")])
        svc.finish_commit(C(f"{down}@master"))  # as a pipeline's first (empty) job would


# -- implicit commits -------------------------------------------------------------------------


def test_put_to_a_branch_with_a_finished_head_makes_a_one_off_commit(images: PfsService) -> None:
    c1 = put(images, "images@master", {"/a": b"1"})
    assert c1.finished and c1.origin == "USER" and c1.branch == "master" and c1.parent is None
    c2 = put(images, "images@master", {"/b": b"2"})
    assert c2.finished and c2.parent == c1.id and c2.id != c1.id
    assert ids(images.list_commits(C("images@master"))) == [c2.id, c1.id]
    assert paths(images, "images@master") == ["/a", "/b"]
    assert paths(images, f"images@{c1.id}") == ["/a"]  # the old commit is unchanged


def test_put_to_a_missing_branch_creates_it(images: PfsService) -> None:
    c = put(images, "images@feature", {"/a": b"1"})
    assert images.inspect_branch(R("images"), "feature").head == c.id
    assert images.inspect_repo(R("images")).branches == ("feature",)


def test_writes_into_an_open_head_go_into_that_commit(images: PfsService) -> None:
    base = put(images, "images@master", {"/old": b"old"})
    open_ = images.start_commit(R("images"), "master")
    assert open_.state == "STARTED" and open_.parent == base.id
    landed = put(images, "images@master", {"/new": b"new"})
    assert landed.id == open_.id and landed.state == "STARTED"
    # Visible in the open commit's view (by branch and by ID), invisible to its parent.
    assert paths(images, "images@master") == ["/new", "/old"]
    assert paths(images, f"images@{open_.id}") == ["/new", "/old"]
    assert paths(images, "images@master^") == ["/old"]
    assert len(images.list_commits(C("images@master"))) == 2
    put(images, f"images@{open_.id}", {"/by-id": b"x"})
    images.finish_commit(C("images@master"))
    assert paths(images, "images@master") == ["/by-id", "/new", "/old"]
    assert cat(images, "images@master:/new") == b"new"
    assert len(images.list_commits(C("images@master"))) == 2


def test_writing_to_a_finished_commit_by_id_is_refused(images: PfsService) -> None:
    c = put(images, "images@master", {"/a": b"1"})
    with pytest.raises(FailedPrecondition):
        put(images, f"images@{c.id}", {"/b": b"2"})
    assert paths(images, "images@master") == ["/a"]
    assert len(images.list_commits(C("images@master"))) == 1


def test_writing_to_an_ancestry_ref_is_refused(images: PfsService) -> None:
    put(images, "images@master", {"/a": b"1"})
    put(images, "images@master", {"/b": b"2"})
    with pytest.raises(InvalidArgument):
        images.modify(C("images@master^"))


# -- start / finish ---------------------------------------------------------------------------


def test_start_commit_when_the_head_is_open_fails(images: PfsService) -> None:
    first = images.start_commit(R("images"), "master")
    with pytest.raises(FailedPrecondition):
        images.start_commit(R("images"), "master")
    assert ids(images.list_commits(C("images@master"))) == [first.id]


def test_start_commit_on_a_branch_with_provenance_fails(svc: PfsService) -> None:
    pipeline_dag(svc, "images", "edges")
    before = len(svc.list_commits(R("edges")))
    with pytest.raises(FailedPrecondition):
        svc.start_commit(R("edges"), "master")
    with pytest.raises(FailedPrecondition):
        put(svc, "edges@master", {"/x": b"1"})
    assert len(svc.list_commits(R("edges"))) == before


def test_finish_twice_fails(images: PfsService) -> None:
    c = images.start_commit(R("images"), "master")
    done = images.finish_commit(C("images@master"), description="first batch")
    assert done.finished and done.description == "first batch" and done.finished_at is not None
    with pytest.raises(FailedPrecondition):
        images.finish_commit(C(f"images@{c.id}"))
    assert images.inspect_commit(C("images@master")).finished_at == done.finished_at


def test_start_commit_on_a_new_branch_and_with_an_explicit_parent(images: PfsService) -> None:
    c1 = put(images, "images@master", {"/a": b"1"})
    put(images, "images@master", {"/b": b"2"})
    new = images.start_commit(R("images"), "fix", parent=C("images@master^"))
    assert new.parent == c1.id and new.branch == "fix"
    put(images, "images@fix", {"/c": b"3"})
    images.finish_commit(C("images@fix"))
    assert paths(images, "images@fix") == ["/a", "/c"]


def test_empty_commit_keeps_the_parent_content(images: PfsService) -> None:
    put(images, "images@master", {"/a": b"1"})
    images.start_commit(R("images"), "master")
    done = images.finish_commit(C("images@master"))
    assert done.file_count == 1 and done.size_bytes == 1
    assert paths(images, "images@master") == ["/a"]


def test_errored_commit_is_skipped_by_its_children(images: PfsService) -> None:
    put(images, "images@master", {"/good": b"1"})
    images.start_commit(R("images"), "master")
    put(images, "images@master", {"/bad": b"2"})
    failed = images.finish_commit(C("images@master"), error="job failed")
    assert failed.error == "job failed"
    images.start_commit(R("images"), "master")
    put(images, "images@master", {"/next": b"3"})
    images.finish_commit(C("images@master"))
    assert paths(images, "images@master") == ["/good", "/next"]


def test_one_off_commit_after_an_errored_head_skips_it(images: PfsService) -> None:
    put(images, "images@master", {"/good": b"1"})
    images.start_commit(R("images"), "master")
    put(images, "images@master", {"/bad": b"2"})
    images.finish_commit(C("images@master"), error="job failed")
    put(images, "images@master", {"/next": b"3"})
    assert paths(images, "images@master") == ["/good", "/next"]


# -- refs and listing -------------------------------------------------------------------------


def test_ancestry_refs(images: PfsService) -> None:
    c = [put(images, "images@master", {f"/f{i}": b"x"}) for i in range(4)]
    assert images.inspect_commit(C("images@master")).id == c[3].id
    assert images.inspect_commit(C("images@master^")).id == c[2].id
    assert images.inspect_commit(C("images@master^^")).id == c[1].id
    assert images.inspect_commit(C("images@master^2")).id == c[1].id
    assert images.inspect_commit(C("images@master~3")).id == c[0].id
    assert images.inspect_commit(C("images@master.1")).id == c[0].id
    assert images.inspect_commit(C("images@master.4")).id == c[3].id
    assert images.inspect_commit(C(f"images@{c[2].id}^")).id == c[1].id
    assert images.inspect_commit(C(f"images@master={c[1].id}")).id == c[1].id
    assert paths(images, "images@master^2") == ["/f0", "/f1"]
    for missing in ("images@master^4", "images@master.5", "images@master.0", "images@nobranch"):
        with pytest.raises(NotFound):
            images.inspect_commit(C(missing))
    with pytest.raises(NotFound):
        images.inspect_commit(C("images@" + "0" * 32))


def test_list_commits_newest_first_with_number(images: PfsService) -> None:
    c = [put(images, "images@master", {f"/f{i}": b"x"}) for i in range(5)]
    assert ids(images.list_commits(C("images@master"))) == ids(c[::-1])
    assert ids(images.list_commits(C("images@master"), number=2)) == [c[4].id, c[3].id]
    assert ids(images.list_commits(C("images@master^3"))) == [c[1].id, c[0].id]
    other = put(images, "images@dev", {"/d": b"y"})
    assert ids(images.list_commits(R("images"))) == [other.id] + ids(c[::-1])
    assert ids(images.list_commits(C("images@dev"))) == [other.id]


def test_commit_info_reports_children_and_parent(images: PfsService) -> None:
    c1 = put(images, "images@master", {"/a": b"1"})
    c2 = put(images, "images@master", {"/b": b"22"})
    info = images.inspect_commit(C(f"images@{c1.id}"))
    assert info.children == (c2.id,)
    assert images.inspect_commit(C("images@master")).parent == c1.id
    assert (c2.size_bytes, c2.file_count) == (3, 2)


def test_inspect_commit_wait(images: PfsService) -> None:
    images.start_commit(R("images"), "master")
    with pytest.raises(FailedPrecondition):
        images.inspect_commit(C("images@master"), wait=True, timeout=0.05)
    t = threading.Timer(0.05, lambda: images.finish_commit(C("images@master")))
    t.start()
    info = images.inspect_commit(C("images@master"), wait=True, timeout=5)
    t.join()
    assert info.finished


def test_subscribe_commits_yields_existing_and_new(images: PfsService) -> None:
    c1 = put(images, "images@master", {"/a": b"1"})
    seen: list[str] = []
    t = threading.Timer(0.05, lambda: seen.append(put(images, "images@master", {"/b": b"2"}).id))
    t.start()
    got = [c.id for c in images.subscribe_commits(R("images"), "master", timeout=0.3)]
    t.join()
    assert got == [c1.id] + seen


# -- commit sets (global IDs) -----------------------------------------------------------------


def test_a_commit_propagates_downstream_with_the_same_id(svc: PfsService) -> None:
    pipeline_dag(svc, "images", "edges")
    c = put(svc, "images@master", {"/liberty.png": b"png"})
    down = svc.inspect_commit(C("edges@master"))
    assert down.id == c.id
    assert down.origin == "AUTO" and down.state == "STARTED"
    assert down.provenance == (f"images@master={c.id}",)
    cs = svc.inspect_commit_set(c.id)
    assert sorted((x.repo, x.origin) for x in cs.commits) == [("edges", "AUTO"), ("images", "USER")]
    assert not cs.finished


def test_a_chain_of_three_repos_propagates_through_all(svc: PfsService) -> None:
    pipeline_dag(svc, "images", "edges", "montage")
    c = put(svc, "images@master", {"/a": b"1"})
    cs = svc.inspect_commit_set(c.id)
    assert sorted(x.repo for x in cs.commits) == ["edges", "images", "montage"]
    for repo in ("edges", "montage"):
        head = svc.inspect_commit(C(f"{repo}@master"))
        assert head.id == c.id and head.origin == "AUTO" and not head.finished
    assert svc.inspect_commit(C("montage@master")).provenance == (f"edges@master={c.id}",)


def test_start_commit_propagates_too(svc: PfsService) -> None:
    pipeline_dag(svc, "images", "edges")
    c = svc.start_commit(R("images"), "master")
    assert svc.inspect_commit(C("edges@master")).id == c.id


def test_wait_for_a_commit_set(svc: PfsService) -> None:
    pipeline_dag(svc, "images", "edges", "montage")
    c = put(svc, "images@master", {"/a": b"1"})
    with pytest.raises(FailedPrecondition):
        svc.inspect_commit_set(c.id, wait=True, timeout=0.05)

    def finish_downstream() -> None:
        time.sleep(0.05)
        svc.finish_commit(C("edges@master"))
        time.sleep(0.02)
        svc.finish_commit(C("montage@master"))

    t = threading.Thread(target=finish_downstream)
    t.start()
    cs = svc.inspect_commit_set(c.id, wait=True, timeout=5)
    t.join()
    assert cs.finished
    assert all(x.finished for x in cs.commits) and len(cs.commits) == 3


def test_list_commit_sets_newest_first(svc: PfsService) -> None:
    pipeline_dag(svc, "images", "edges")
    c = put(svc, "images@master", {"/a": b"1"})
    sets = svc.list_commit_sets()
    assert sets[0].id == c.id and len(sets[0].commits) == 2
    assert svc.list_commit_sets(number=1)[0].id == c.id
    with pytest.raises(NotFound):
        svc.inspect_commit_set("f" * 32)


# -- delete commit set ------------------------------------------------------------------------


def test_delete_head_commit_set_moves_the_head_back(images: PfsService) -> None:
    c1 = put(images, "images@master", {"/a": b"1"})
    c2 = put(images, "images@master", {"/b": b"2"})
    images.delete_commit_set(c2.id)
    assert images.inspect_commit(C("images@master")).id == c1.id
    assert paths(images, "images@master") == ["/a"]
    assert ids(images.list_commits(C("images@master"))) == [c1.id]
    with pytest.raises(NotFound):
        images.inspect_commit(C(f"images@{c2.id}"))
    with pytest.raises(NotFound):
        images.inspect_commit_set(c2.id)


def test_delete_commit_set_with_children_is_refused(images: PfsService) -> None:
    c1 = put(images, "images@master", {"/a": b"1"})
    c2 = put(images, "images@master", {"/b": b"2"})
    with pytest.raises(FailedPrecondition):
        images.delete_commit_set(c1.id)
    assert ids(images.list_commits(C("images@master"))) == [c2.id, c1.id]
    assert paths(images, "images@master") == ["/a", "/b"]


def test_delete_the_only_commit_leaves_an_empty_head(images: PfsService) -> None:
    c1 = put(images, "images@master", {"/a": b"1"})
    images.delete_commit_set(c1.id)
    head = images.inspect_commit(C("images@master"))
    assert head.id != c1.id and head.file_count == 0
    assert paths(images, "images@master") == []


def test_delete_open_commit_set_discards_its_staged_changes(images: PfsService) -> None:
    c1 = put(images, "images@master", {"/a": b"1"})
    open_ = images.start_commit(R("images"), "master")
    put(images, "images@master", {"/staged": b"2"})
    images.delete_commit_set(open_.id)
    assert images.inspect_commit(C("images@master")).id == c1.id
    # The branch is usable again: a new commit can start.
    images.start_commit(R("images"), "master")
    assert paths(images, "images@master") == ["/a"]


def test_delete_commit_set_removes_downstream_commits_too(svc: PfsService) -> None:
    pipeline_dag(svc, "images", "edges")
    before = svc.inspect_commit(C("edges@master")).id
    c = put(svc, "images@master", {"/a": b"1"})
    svc.delete_commit_set(c.id)
    assert svc.inspect_commit(C("edges@master")).id == before
    with pytest.raises(NotFound):
        svc.inspect_commit(C(f"edges@{c.id}"))
    assert paths(svc, "images@master") == ["/seed"]


def test_delete_missing_commit_set(svc: PfsService) -> None:
    with pytest.raises(NotFound):
        svc.delete_commit_set("a" * 32)


# -- squash commit set ------------------------------------------------------------------------


def test_squash_keeps_the_data_in_the_children(images: PfsService) -> None:
    c1 = put(images, "images@master", {"/a": b"1"})
    c2 = put(images, "images@master", {"/b": b"2", "/a": b"changed"})
    c3 = put(images, "images@master", {"/c": b"3"})
    before = {p: cat(images, f"images@{c3.id}:{p}") for p in paths(images, f"images@{c3.id}")}
    images.squash_commit_set(c2.id)
    after = {p: cat(images, f"images@{c3.id}:{p}") for p in paths(images, f"images@{c3.id}")}
    assert after == before == {"/a": b"changed", "/b": b"2", "/c": b"3"}
    assert images.inspect_commit(C(f"images@{c3.id}")).parent == c1.id
    assert images.inspect_commit(C(f"images@{c1.id}")).children == (c3.id,)
    assert ids(images.list_commits(C("images@master"))) == [c3.id, c1.id]
    with pytest.raises(NotFound):
        images.inspect_commit(C(f"images@{c2.id}"))
    # A diff against the parent now covers the squashed commit's changes too.
    changes = {(d.path, d.change) for d in images.diff_file(F("images@master:/"))}
    assert changes == {("/a", "changed"), ("/b", "added"), ("/c", "added")}


def test_squash_a_commit_without_children_is_refused(images: PfsService) -> None:
    put(images, "images@master", {"/a": b"1"})
    c2 = put(images, "images@master", {"/b": b"2"})
    with pytest.raises(FailedPrecondition):
        images.squash_commit_set(c2.id)
    assert images.inspect_commit(C("images@master")).id == c2.id


def test_squash_the_first_commit(images: PfsService) -> None:
    c1 = put(images, "images@master", {"/a": b"1"})
    c2 = put(images, "images@master", {"/b": b"2"})
    images.squash_commit_set(c1.id)
    assert images.inspect_commit(C("images@master")).parent is None
    assert paths(images, f"images@{c2.id}") == ["/a", "/b"]
    assert images.inspect_commit(C("images@master.1")).id == c2.id


def test_squash_an_open_commit_is_refused(images: PfsService) -> None:
    put(images, "images@master", {"/a": b"1"})
    c = images.start_commit(R("images"), "master")
    with pytest.raises(FailedPrecondition):
        images.squash_commit_set(c.id)


def test_squash_keeps_data_in_an_open_child(images: PfsService) -> None:
    put(images, "images@master", {"/a": b"1"})
    c2 = put(images, "images@master", {"/b": b"2"})
    images.start_commit(R("images"), "master")
    put(images, "images@master", {"/c": b"3"})
    # Re-parenting the open child would drop /b from it, so squash is refused until it finishes.
    with pytest.raises(FailedPrecondition):
        images.squash_commit_set(c2.id)
    assert paths(images, "images@master") == ["/a", "/b", "/c"]
    images.finish_commit(C("images@master"))
    assert paths(images, "images@master") == ["/a", "/b", "/c"]
    images.squash_commit_set(c2.id)  # with the child finished, squash goes ahead
    assert paths(images, "images@master") == ["/a", "/b", "/c"]


def test_squash_a_commit_that_is_a_branch_head_keeps_the_branch_usable(images: PfsService) -> None:
    put(images, "images@master", {"/a": b"1"})
    c2 = put(images, "images@master", {"/b": b"2"})
    put(images, "images@master", {"/c": b"3"})
    images.create_branch(R("images"), "pinned", head=C(f"images@{c2.id}"))
    # Squashing would leave 'pinned' pointing at a deleted commit, so it is refused.
    with pytest.raises(FailedPrecondition):
        images.squash_commit_set(c2.id)
    assert paths(images, "images@pinned") == ["/a", "/b"]
    assert {b.name for b in images.list_branches(R("images"))} == {"master", "pinned"}
    images.delete_branch(R("images"), "pinned")
    images.squash_commit_set(c2.id)
    assert paths(images, "images@master") == ["/a", "/b", "/c"]


def test_squash_across_a_commit_set(svc: PfsService) -> None:
    pipeline_dag(svc, "images", "edges")
    c1 = put(svc, "images@master", {"/a": b"1"})
    svc.finish_commit(C("edges@master"))
    c2 = put(svc, "images@master", {"/b": b"2"})
    svc.finish_commit(C("edges@master"))
    svc.squash_commit_set(c1.id)
    assert svc.inspect_commit(C(f"edges@{c2.id}")).finished
    with pytest.raises(NotFound):
        svc.inspect_commit_set(c1.id)
    assert paths(svc, "images@master") == ["/a", "/b", "/seed"]


def test_a_branch_with_two_upstreams_records_both_heads(svc: PfsService) -> None:
    svc.create_repo(R("images"))
    svc.create_repo(R("labels"))
    svc.create_repo(R("model"))
    put(svc, "images@master", {"/i": b"1"})
    lab = put(svc, "labels@master", {"/l": b"2"})
    svc.create_branch(
        R("model"), "master", provenance=[(R("images"), "master"), (R("labels"), "master")]
    )
    svc.finish_commit(C("model@master"))
    img = put(svc, "images@master", {"/i2": b"3"})
    head = svc.inspect_commit(C("model@master"))
    assert head.id == img.id
    assert head.provenance == (f"images@master={img.id}", f"labels@master={lab.id}")
    # labels did not take part in this set: its head is provenance, not a member.
    assert sorted(x.repo for x in svc.inspect_commit_set(img.id).commits) == ["images", "model"]


def test_concurrent_writers_to_one_branch_lose_no_commit(images: PfsService) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(5):
                put(images, "images@master", {f"/w{n}/{i}": f"{n}.{i}".encode()})
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = images.list_commits(C("images@master"))
    assert len(history) == 20 and len(set(ids(history))) == 20
    assert len(paths(images, "images@master")) == 20
    assert cat(images, "images@master:/w3/4") == b"3.4"


def test_squash_keeps_data_in_an_open_commit_behind_an_errored_child(images: PfsService) -> None:
    put(images, "images@master", {"/a": b"1"})
    c2 = put(images, "images@master", {"/b": b"2"})
    images.start_commit(R("images"), "master")
    images.finish_commit(C("images@master"), error="failed job")
    images.start_commit(R("images"), "master")  # builds on c2, skipping the errored commit
    put(images, "images@master", {"/c": b"3"})
    with pytest.raises(FailedPrecondition):
        images.squash_commit_set(c2.id)
    images.finish_commit(C("images@master"))
    assert paths(images, "images@master") == ["/a", "/b", "/c"]
