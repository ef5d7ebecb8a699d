"""Garbage collection and fsck over a real root: what is freed, what must survive."""

from __future__ import annotations

import random

import pytest

from tusk.errors import FailedPrecondition
from tusk.pfs.model import CommitInfo
from tusk.pfs.refs import parse_commit, parse_file, parse_repo
from tusk.pfs.service import PfsService

R, C, F = parse_repo, parse_commit, parse_file
KIB = 1024


def put(svc: PfsService, ref: str, files: dict[str, bytes]) -> CommitInfo:
    with svc.modify(C(ref)) as fs:
        for path, data in files.items():
            fs.put_bytes(path, data)
    assert fs.commit is not None
    return fs.commit


def cat(svc: PfsService, ref: str) -> bytes:
    return b"".join(svc.read_file(F(ref)))


def packs(svc: PfsService) -> dict[str, bytes]:
    store = svc.b.objects
    return {k: store.read(k) for k in store.list("packs/")}


def pack_bytes(svc: PfsService) -> int:
    return sum(len(v) for v in packs(svc).values())


def stored_anywhere(svc: PfsService, data: bytes) -> bool:
    probe = data[len(data) // 2 : len(data) // 2 + 64]
    return any(probe in blob for blob in packs(svc).values())


def rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def test_delete_repo_then_gc_frees_its_unique_bytes_and_keeps_shared_data(svc: PfsService) -> None:
    unique, shared, other = rand(2048 * KIB, 1), rand(300 * KIB, 2), rand(300 * KIB, 3)
    svc.create_repo(R("doomed"))
    svc.create_repo(R("kept"))
    put(svc, "doomed@master", {"/unique.bin": unique, "/shared.bin": shared})
    put(svc, "doomed@master", {"/more.bin": rand(500 * KIB, 4)})
    put(svc, "kept@master", {"/shared-copy.bin": shared, "/other.bin": other})
    assert pack_bytes(svc) >= len(unique) + len(shared) + len(other)

    svc.delete_repo(R("doomed"))
    stats = svc.garbage_collect()
    assert stats.chunks_freed > 0 and stats.nodes_freed > 0
    assert pack_bytes(svc) == len(shared) + len(other)
    assert not stored_anywhere(svc, unique)
    assert cat(svc, "kept@master:/shared-copy.bin") == shared
    assert cat(svc, "kept@master:/other.bin") == other
    assert svc.fsck().problems == []


def test_gc_keeps_everything_history_and_other_branches_need(svc: PfsService) -> None:
    svc.create_repo(R("data"))
    v1, v2 = rand(400 * KIB, 5), rand(400 * KIB, 6)
    put(svc, "data@master", {"/f": v1, "/small": b"tiny"})
    put(svc, "data@master", {"/f": v2})
    put(svc, "data@dev", {"/g": b"on dev"})
    before = pack_bytes(svc)
    stats = svc.garbage_collect()
    assert (stats.chunks_freed, stats.packs_deleted, stats.packs_rewritten) == (0, 0, 0)
    assert pack_bytes(svc) == before
    assert cat(svc, "data@master^:/f") == v1
    assert cat(svc, "data@master:/f") == v2
    assert cat(svc, "data@master:/small") == b"tiny"
    assert cat(svc, "data@dev:/g") == b"on dev"


def test_gc_keeps_the_staged_data_of_open_commits(svc: PfsService) -> None:
    svc.create_repo(R("data"))
    put(svc, "data@master", {"/a": b"1"})
    svc.start_commit(R("data"), "master")
    staged = rand(300 * KIB, 7)
    put(svc, "data@master", {"/staged.bin": staged, "/tiny": b"t"})
    svc.garbage_collect()
    assert cat(svc, "data@master:/staged.bin") == staged
    svc.finish_commit(C("data@master"))
    svc.garbage_collect()
    assert cat(svc, "data@master:/staged.bin") == staged
    assert cat(svc, "data@master:/tiny") == b"t"


def test_deleting_a_commit_set_frees_its_data(svc: PfsService) -> None:
    svc.create_repo(R("data"))
    put(svc, "data@master", {"/keep": b"k" * 1000})
    oops = rand(1024 * KIB, 8)
    c = put(svc, "data@master", {"/oops.bin": oops})
    svc.delete_commit_set(c.id)
    svc.garbage_collect()
    assert not stored_anywhere(svc, oops)
    assert cat(svc, "data@master:/keep") == b"k" * 1000


def test_mostly_dead_packs_are_rewritten_with_their_live_chunks(svc: PfsService) -> None:
    svc.create_repo(R("data"))
    live, dead = rand(300 * KIB, 9), rand(1024 * KIB, 10)
    put(svc, "data@master", {"/live.bin": live, "/dead.bin": dead})  # one pack, both files
    c2 = put(svc, "data@master", {"/x": b"x"})
    with svc.modify(C("data@master")) as fs:
        fs.delete("/dead.bin")
    svc.squash_commit_set(c2.id)  # no longer needed
    # /dead.bin is still in history (the first commit); drop that history.
    first = svc.inspect_commit(C("data@master.1"))
    svc.squash_commit_set(first.id)
    stats = svc.garbage_collect()
    assert stats.packs_rewritten == 1
    assert not stored_anywhere(svc, dead)
    assert cat(svc, "data@master:/live.bin") == live
    assert svc.fsck().problems == []


def test_fsck_is_clean_on_a_healthy_store(svc: PfsService) -> None:
    svc.create_repo(R("data"))
    put(svc, "data@master", {"/a": rand(2048 * KIB, 11), "/b": b"small", "/c": rand(300 * KIB, 12)})
    report = svc.fsck()
    assert report.problems == []
    assert report.chunks_checked >= 3


def test_fsck_reports_a_corrupted_pack(svc: PfsService) -> None:
    svc.create_repo(R("data"))
    put(svc, "data@master", {"/a": rand(300 * KIB, 13)})
    (key,) = list(svc.b.objects.list("packs/"))
    path = svc.b.objects.local_path(key)
    assert path is not None
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(b"\xff" * 16)
    report = svc.fsck()
    assert len(report.problems) == 1
    assert "corrupt" in report.problems[0]
    assert report.to_dict()["problems"] == report.problems


def test_fsck_reports_a_missing_pack(svc: PfsService) -> None:
    svc.create_repo(R("data"))
    put(svc, "data@master", {"/a": b"some bytes"})
    for key in list(svc.b.objects.list("packs/")):
        svc.b.objects.delete(key)
    problems = svc.fsck().problems
    assert problems and "unreadable" in problems[0]


def test_gc_on_an_empty_root(svc: PfsService) -> None:
    stats = svc.garbage_collect()
    assert stats.to_dict() == {
        "nodes_freed": 0, "chunks_freed": 0, "packs_deleted": 0, "packs_rewritten": 0, "bytes_freed": 0,
        "scratch_freed": 0,
    }
    assert svc.fsck().problems == []


def test_a_refused_write_does_not_keep_gc_out(svc: PfsService) -> None:
    svc.create_repo(R("data"))
    c = put(svc, "data@master", {"/a": b"1"})
    with pytest.raises(FailedPrecondition) as info:
        svc.modify(C(f"data@{c.id}"))
    assert info.value is not None  # the caller still holds the error, as a server would log it
    svc.garbage_collect(wait=False)


def _drop_one_tree_node(svc: PfsService) -> None:
    from sqlalchemy import delete, select

    from tusk.storage import schema

    with svc.b.db.tx() as conn:
        root = conn.execute(select(schema.commits.c.tree).where(schema.commits.c.tree.is_not(None))).scalar()
        conn.execute(delete(schema.tree_nodes).where(schema.tree_nodes.c.hash == root))


def test_fsck_reports_a_missing_tree_node(svc: PfsService) -> None:
    svc.create_repo(R("data"))
    put(svc, "data@master", {"/a": b"1"})
    _drop_one_tree_node(svc)
    problems = svc.fsck().problems
    assert len(problems) == 1 and "tree node" in problems[0]


def test_gc_refuses_to_sweep_when_a_tree_node_is_missing(svc: PfsService) -> None:
    svc.create_repo(R("data"))
    put(svc, "data@master", {"/a": rand(300 * KIB, 14)})
    put(svc, "data@master", {"/b": b"2"})
    _drop_one_tree_node(svc)
    before = packs(svc)
    with pytest.raises(FailedPrecondition):
        svc.garbage_collect()
    assert packs(svc) == before  # nothing was freed on an incomplete mark
