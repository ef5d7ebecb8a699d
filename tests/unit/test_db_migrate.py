"""A root made by an older tusk opens with a newer one: missing columns are added."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from tusk.storage.db import Database


def test_missing_columns_are_added_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    db = Database(url)
    with db.tx() as conn:
        conn.exec_driver_sql("ALTER TABLE datum_runs DROP COLUMN why")
        conn.exec_driver_sql("ALTER TABLE jobs DROP COLUMN salt")
    with db.read() as conn:
        assert "why" not in {c["name"] for c in inspect(conn).get_columns("datum_runs")}

    reopened = Database(url)
    with reopened.read() as conn:
        cols = {c["name"]: c for c in inspect(conn).get_columns("datum_runs")}
        assert "why" in cols
        assert "salt" in {c["name"] for c in inspect(conn).get_columns("jobs")}
    with reopened.tx() as conn:  # old rows get the default, so the column reads as ""
        conn.exec_driver_sql(
            "INSERT INTO datum_runs (job_pk, datum_id, state, hash, attempts, inputs, outputs, reason,"
            " started_at, finished_at) VALUES (1, 'd', 'success', 'h', 1, x'90', x'90', '', 0, 0)")
        assert conn.exec_driver_sql("SELECT why FROM datum_runs").scalar() == ""


def _old_root(url: str) -> None:
    """A root as tusk made it before schema version 2: ids without AUTOINCREMENT."""
    from sqlalchemy import MetaData, create_engine

    from tusk.storage import schema

    old = MetaData()
    for t in schema.metadata.sorted_tables:
        copy = t.to_metadata(old)
        copy.dialect_options["sqlite"]["autoincrement"] = False
    engine = create_engine(url)
    with engine.begin() as conn:
        old.create_all(conn)
        conn.exec_driver_sql("INSERT INTO meta_info VALUES ('schema', '1')")
        conn.exec_driver_sql("INSERT INTO projects VALUES ('default', '', 0)")
        conn.exec_driver_sql("INSERT INTO repos (id, project, name, type, description, created_at)"
                             " VALUES (1, 'default', 'in', 'user', '', 0)")
        for pk in (1, 2, 3):
            conn.exec_driver_sql(
                "INSERT INTO commits (id, repo_id, commit_id, branch, parent_id, origin, description,"
                " state, error, started_at, size_bytes, file_count)"
                f" VALUES ({pk}, 1, 'c{pk}', 'master', {pk - 1 or 'NULL'}, 'USER', '', 'finished', '', 0, 0, 0)")
        # A job left over by a delete of commit 4 under the old tusk.
        conn.exec_driver_sql(
            "INSERT INTO jobs (id, pipeline_id, job_id, version, commit_pk, state, reason, processed,"
            " skipped, failed, recovered, total, created_at) VALUES"
            " (7, 1, 'c4', 1, 4, 'SUCCESS', '', 0, 0, 0, 0, 0, 0)")
    engine.dispose()


def test_an_old_root_is_migrated_so_no_id_is_ever_reused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    _old_root(url)
    db = Database(url)
    with db.read() as conn:
        for table in ("repos", "commits", "branches", "pipelines", "jobs"):
            sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).scalar()
            assert "AUTOINCREMENT" in sql, table
        assert conn.exec_driver_sql("SELECT value FROM meta_info WHERE key='schema'").scalar() == "2"
        assert [r[0] for r in conn.exec_driver_sql("SELECT commit_id FROM commits ORDER BY id")] == \
            ["c1", "c2", "c3"]
        indexes = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"ix_commits_commit_id", "ix_commits_parent", "ix_jobs_state"} <= indexes

    def new_commit(conn) -> int:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql(
            "INSERT INTO commits (repo_id, commit_id, branch, origin, description, state, error,"
            " started_at, size_bytes, file_count) VALUES (1, 'new' || random(), 'master', 'USER', '',"
            " 'open', '', 0, 0, 0)")
        return int(conn.exec_driver_sql("SELECT last_insert_rowid()").scalar())

    with db.tx() as conn:
        first = new_commit(conn)
        assert first > 4  # above the id the leftover job still names
        conn.exec_driver_sql(f"DELETE FROM commits WHERE id = {first}")
        assert new_commit(conn) > first  # a deleted newest id is not handed out again
    Database(url).dispose()  # opening again migrates nothing and loses nothing
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM commits").scalar() == 4
    db.dispose()
