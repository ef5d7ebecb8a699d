"""The metadata store contract: schema creation, transactions and compare-and-set on refs.

Runs against SQLite (a real file); set ``TUSK_TEST_POSTGRES_URL`` to run it on PostgreSQL too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from tusk.errors import Conflict
from tusk.pfs.refs import parse_repo
from tusk.pfs.service import PfsService
from tusk.storage import schema
from tusk.storage.db import Database

URLS = ["sqlite"] + (["postgres"] if os.environ.get("TUSK_TEST_POSTGRES_URL") else [])


@pytest.fixture(params=URLS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return os.environ["TUSK_TEST_POSTGRES_URL"]


@pytest.fixture
def fresh(url: str) -> Iterator[Database]:
    d = Database(url)
    yield d
    d.dispose()


def test_schema_is_created_on_a_fresh_database(fresh: Database, url: str) -> None:
    with fresh.read() as conn:
        tables = set(inspect(conn).get_table_names())
        assert set(schema.metadata.tables) <= tables
        version = conn.execute(
            select(schema.meta_info.c.value).where(schema.meta_info.c.key == "schema")
        ).scalar()
        projects = conn.execute(select(schema.projects.c.name)).scalars().all()
    assert version == str(schema.SCHEMA_VERSION)
    assert projects == ["default"]
    if url.startswith("sqlite"):
        assert Path(url[len("sqlite:///"):]).is_file()


def test_reopening_keeps_data_and_adds_no_second_default(fresh: Database, url: str) -> None:
    with fresh.tx() as conn:
        conn.execute(schema.projects.insert().values(name="p1", description="d", created_at=1.0))
    fresh.dispose()
    again = Database(url)
    try:
        with again.read() as conn:
            names = conn.execute(select(schema.projects.c.name).order_by(schema.projects.c.name))
            assert names.scalars().all() == ["default", "p1"]
            assert conn.execute(select(func.count()).select_from(schema.meta_info)).scalar() == 1
    finally:
        again.dispose()


def test_a_failed_transaction_leaves_nothing_behind(fresh: Database) -> None:
    with pytest.raises(RuntimeError), fresh.tx() as conn:
        conn.execute(schema.projects.insert().values(name="ghost", description="", created_at=1.0))
        raise RuntimeError("boom")
    with fresh.read() as conn:
        assert conn.execute(select(schema.projects.c.name)).scalars().all() == ["default"]


def test_insert_ignore_skips_existing_keys(fresh: Database) -> None:
    rows = [{"hash": bytes([i]) * 32, "pack": "packs/aa/a", "offset": i, "length": 1} for i in range(3)]
    with fresh.tx() as conn:
        fresh.insert_ignore(conn, schema.chunks, rows[:2])
    with fresh.tx() as conn:
        changed = [dict(rows[0], pack="packs/bb/b")] + rows[1:]
        fresh.insert_ignore(conn, schema.chunks, changed)
        fresh.insert_ignore(conn, schema.chunks, [])
    with fresh.read() as conn:
        got = conn.execute(
            select(schema.chunks.c.pack, schema.chunks.c.offset).order_by(schema.chunks.c.offset)
        ).all()
    assert [tuple(r) for r in got] == [("packs/aa/a", 0), ("packs/aa/a", 1), ("packs/aa/a", 2)]


def test_writers_are_serialised(fresh: Database) -> None:
    """Two concurrent read-modify-write transactions never lose an update."""
    with fresh.tx() as conn:
        conn.execute(schema.meta_info.insert().values(key="counter", value="0"))
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(10):
                with fresh.tx() as conn:
                    v = conn.execute(
                        select(schema.meta_info.c.value).where(schema.meta_info.c.key == "counter")
                    ).scalar_one()
                    time.sleep(0.001)
                    conn.execute(
                        schema.meta_info.update()
                        .where(schema.meta_info.c.key == "counter")
                        .values(value=str(int(v) + 1))
                    )
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=bump) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with fresh.read() as conn:
        v = conn.execute(
            select(schema.meta_info.c.value).where(schema.meta_info.c.key == "counter")
        ).scalar_one()
    assert v == "30"


def test_move_head_refuses_a_stale_expected_head(svc: PfsService) -> None:
    repo = parse_repo("images")
    svc.create_repo(repo)
    first = svc.start_commit(repo, "master")
    with svc.b.db.read() as conn:
        rid = svc.catalog.repo_row(conn, repo).id
        br = svc.catalog.branch_row(conn, rid, "master")
        pk_first = br.head_id
    second_pk = _new_commit(svc, rid, pk_first)
    # Someone else moves the head first ...
    with svc.b.db.tx() as conn:
        svc.rows.move_head(conn, br.id, pk_first, second_pk, time.time())
    # ... so a writer still expecting the old head loses the race, and changes nothing.
    with pytest.raises(Conflict), svc.b.db.tx() as conn:
        svc.rows.move_head(conn, br.id, pk_first, pk_first, time.time())
    head = svc.inspect_branch(repo, "master").head
    assert head != first.id
    with svc.b.db.read() as conn:
        assert svc.catalog.branch_row(conn, rid, "master").head_id == second_pk


def _new_commit(svc: PfsService, repo_id: int, parent: int) -> int:
    from tusk.pfs.commit_rows import USER, new_id

    with svc.b.db.tx() as conn:
        return svc.rows.new_commit(conn, repo_id, "master", parent, USER, new_id(), time.time(), finished=True)
