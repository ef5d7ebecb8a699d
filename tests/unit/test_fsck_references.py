"""fsck sees dangling references: rows that name rows which are not there (pfs/fsck.py).

Each test damages a real root the way a bug (or an older tusk) could, and checks that fsck
names the damage in one line, and that a healthy root with pipelines' tables in use is clean.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, insert, select, update

from tusk.pfs import trees
from tusk.pfs.refs import parse_commit, parse_repo
from tusk.pfs.service import PfsService
from tusk.storage import schema as s


def two_commits(svc: PfsService) -> tuple[int, int]:
    svc.create_repo(parse_repo("data"))
    pks = []
    for name in ("/a", "/b"):
        with svc.modify(parse_commit("data@master")) as fs:
            fs.put_bytes(name, name.encode())
    with svc.b.db.read() as conn:
        pks = list(conn.execute(select(s.commits.c.id).order_by(s.commits.c.id)).scalars())
    return pks[0], pks[1]


def add_job(svc: PfsService, commit_pk: int, job_id: str, state: str = "SUCCESS",
            datum_map: bytes | None = None) -> int:
    now = time.time()
    with svc.b.db.tx() as conn:
        pipe = conn.execute(insert(s.pipelines).values(
            project="default", name=f"p{job_id[:6]}", version=1, spec="{}", user_spec="{}", salt="x",
            state="running", reason="", created_at=now, updated_at=now)).inserted_primary_key[0]
        return int(conn.execute(insert(s.jobs).values(
            pipeline_id=pipe, job_id=job_id, version=1, commit_pk=commit_pk, state=state, reason="",
            processed=0, skipped=0, failed=0, recovered=0, total=0, datum_map=datum_map,
            created_at=now)).inserted_primary_key[0])


def problems(svc: PfsService) -> list[str]:
    return svc.fsck().problems or []


def test_a_healthy_root_with_jobs_is_clean(svc: PfsService) -> None:
    _first, second = two_commits(svc)
    with svc.b.db.read() as conn:
        cid = conn.execute(select(s.commits.c.commit_id).where(s.commits.c.id == second)).scalar()
    add_job(svc, second, cid)
    assert problems(svc) == []


def test_a_job_whose_output_commit_is_another_sets(svc: PfsService) -> None:
    _first, second = two_commits(svc)
    add_job(svc, second, "f" * 32)  # as when a deleted commit's id was handed out again
    (found,) = problems(svc)
    assert f"job {'f' * 32} has output commit #{second}, which belongs to commit set" in found


def test_an_unfinished_job_whose_output_commit_is_gone(svc: PfsService) -> None:
    two_commits(svc)
    add_job(svc, 999, "e" * 32, state="CREATED")
    (found,) = problems(svc)
    assert "job eeee" in found and "#999, which does not exist" in found


def test_a_branch_whose_head_is_gone_and_a_commit_whose_parent_is_gone(svc: PfsService) -> None:
    first, _second = two_commits(svc)
    with svc.b.db.tx() as conn:
        conn.execute(delete(s.commits).where(s.commits.c.id == first))
        conn.execute(update(s.branches).values(head_id=12345))
    found = problems(svc)
    assert any(f"names parent commit #{first}, which does not exist" in p for p in found)
    assert any("branch master" in p and "#12345" in p for p in found)


def test_staged_changes_of_a_deleted_commit(svc: PfsService) -> None:
    two_commits(svc)
    with svc.b.db.tx() as conn:
        conn.execute(insert(s.staging).values(commit_pk=777, prefix=False, path="/x", op="delete", entry=None))
    (found,) = problems(svc)
    assert "commit #777" in found


def test_datum_records_of_a_deleted_job(svc: PfsService) -> None:
    two_commits(svc)
    with svc.b.db.tx() as conn:
        conn.execute(insert(s.datum_runs).values(
            job_pk=555, datum_id="d", state="success", hash="h", attempts=1, inputs=b"\x90",
            outputs=b"\x90", reason="", started_at=0, finished_at=0, why=""))
    (found,) = problems(svc)
    assert "datum_runs" in found and "job #555" in found


def test_a_datum_map_naming_a_missing_job_or_missing_nodes(svc: PfsService) -> None:
    _first, second = two_commits(svc)
    with svc.b.db.read() as conn:
        cid = conn.execute(select(s.commits.c.commit_id).where(s.commits.c.id == second)).scalar()
    res = trees.build([trees.Entry("/d1", 4242, b"\x01" * 32, [], "success")])
    with svc.b.db.tx() as conn:
        svc.b.db.insert_ignore(conn, s.tree_nodes, [{"hash": h, "data": d} for h, d in res.nodes.items()])
    add_job(svc, second, cid, datum_map=res.root)
    (found,) = problems(svc)
    assert "the datum map of job" in found and "#4242" in found
    # gc keeps a job's datum map (it is how the next job knows what to skip)...
    svc.garbage_collect()
    with svc.b.db.read() as conn:
        assert conn.execute(select(s.tree_nodes.c.hash).where(s.tree_nodes.c.hash == res.root)).first()
    # ... and fsck reports it missing.
    with svc.b.db.tx() as conn:
        conn.execute(delete(s.tree_nodes).where(s.tree_nodes.c.hash == res.root))
    assert any("tree node" in p and "datum map" in p for p in problems(svc))
