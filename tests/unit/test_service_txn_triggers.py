"""Transactions and branch triggers through the PFS service: the races the CLI cannot stage.

A transaction's commits are hidden until it finishes; if their branch moves meanwhile an open
commit is re-parented onto the new head, a finished one makes the finish a Conflict that
applies nothing. Triggers: size parsing, the any/all combination, chains.
"""

from __future__ import annotations

import pytest

from tusk.errors import Conflict, InvalidArgument
from tusk.pfs.model import CommitInfo
from tusk.pfs.refs import parse_commit, parse_file, parse_repo
from tusk.pfs.service import PfsService
from tusk.pfs.triggers import Trigger, parse_size

R, C, F = parse_repo, parse_commit, parse_file


def put(svc: PfsService, ref: str, files: dict[str, bytes]) -> CommitInfo:
    with svc.modify(C(ref)) as fs:
        for path, data in files.items():
            fs.put_bytes(path, data)
    assert fs.commit is not None
    return fs.commit


def paths(svc: PfsService, ref: str) -> list[str]:
    return [f.path for f in svc.walk_file(F(ref + ":/"))]


def head(svc: PfsService, ref: str) -> str:
    repo, _, branch = ref.partition("@")
    return svc.inspect_branch(R(repo), branch).head


def test_open_commit_is_reparented_when_its_branch_moved(svc: PfsService) -> None:
    svc.create_repo(R("a"))
    put(svc, "a@master", {"/one": b"1"})
    tid = svc.start_transaction().id
    svc.transaction = tid
    put(svc, "a@master", {"/in-txn": b"t"})  # an implicit commit of the transaction
    svc.transaction = None  # another client, outside the transaction
    outside = put(svc, "a@master", {"/outside": b"o"})
    svc.finish_transaction(tid)
    assert head(svc, "a@master") == tid
    info = svc.inspect_commit(C("a@master"))
    assert info.parent == outside.id and info.finished
    assert paths(svc, "a@master") == ["/in-txn", "/one", "/outside"]


def test_finished_commit_on_a_moved_branch_is_a_conflict_applying_nothing(svc: PfsService) -> None:
    svc.create_repo(R("a"))
    svc.create_repo(R("b"))
    put(svc, "a@master", {"/one": b"1"})
    tid = svc.start_transaction().id
    svc.transaction = tid
    svc.start_commit(R("b"), "master")
    svc.start_commit(R("a"), "master")
    svc.finish_commit(C("a@master"))
    svc.transaction = None
    outside = put(svc, "a@master", {"/outside": b"o"})
    with pytest.raises(Conflict):
        svc.finish_transaction(tid)
    assert head(svc, "a@master") == outside.id
    assert svc.list_branches(R("b")) == []  # b@master was not created either
    assert svc.inspect_transaction(tid).state == "OPEN"
    svc.delete_transaction(tid)
    assert svc.list_transactions() == []
    left = [c.id for c in svc.list_commits(R("a"))]
    assert len(left) == 2 and left[0] == outside.id and tid not in left


def test_parse_size() -> None:
    assert parse_size("1MB") == 1_000_000
    assert parse_size("1 KiB") == 1024
    assert parse_size("1.5kb") == 1500
    assert parse_size("10") == 10
    for bad in ("10QB", "", "MB", "1iB", "-1KB"):
        with pytest.raises(InvalidArgument):
            parse_size(bad)


def test_all_conditions_and_chains(svc: PfsService) -> None:
    svc.create_repo(R("d"))
    svc.create_branch(R("d"), "staging")
    # Both 2 commits and 10 bytes must hold; "release" follows master in turn.
    svc.create_branch(R("d"), "master", trigger=Trigger("staging", size="10", commits=2, all=True))
    svc.create_branch(R("d"), "release", trigger=Trigger("master", commits=1))
    start = head(svc, "d@master")
    put(svc, "d@staging", {"/a": b"0123456789ab"})  # size holds, one commit
    assert head(svc, "d@master") == start
    put(svc, "d@staging", {"/b": b""})  # two commits now, size still holds
    assert head(svc, "d@master") == head(svc, "d@staging") == head(svc, "d@release")
    info = svc.inspect_branch(R("d"), "master")
    assert info.trigger == {"branch": "staging", "all": True, "cron_spec": "", "size": "10",
                            "commits": 2}
