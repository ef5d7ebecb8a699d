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
