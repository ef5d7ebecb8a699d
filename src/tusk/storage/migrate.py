"""Schema migrations that are more than adding a column (``db._add_missing_columns`` does that).

Version 2: ids other rows refer to are never reused. SQLite hands out ``max(id) + 1`` for a
plain ``INTEGER PRIMARY KEY``, so after deleting the newest commit the next commit got its id,
and a row still naming the old one (a job, say) then named the new one. ``AUTOINCREMENT``
never goes back; SQLite cannot add it to an existing table, so a root made before is rebuilt
table by table (SQLite's documented create-copy-drop-rename procedure) in the one transaction
that opens it, and each table's sequence starts above every id still named anywhere, so not even
a row left over from before the migration can be matched by a new one. PostgreSQL's sequences
never reuse ids, so there is nothing to do there.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.schema import CreateIndex, CreateTable

from tusk.storage import schema

# table -> the (table, column) pairs that hold its ids.
REFERENCED_BY: dict[str, list[tuple[str, str]]] = {
    "repos": [("commits", "repo_id"), ("branches", "repo_id"), ("branch_triggers", "repo_id"),
              ("transaction_ops", "repo_id")],
    "commits": [("commits", "parent_id"), ("branches", "head_id"),
                ("commit_provenance", "commit_pk"), ("commit_provenance", "upstream_pk"),
                ("staging", "commit_pk"), ("output_listings", "commit_pk"), ("jobs", "commit_pk"),
                ("transaction_ops", "commit_pk"), ("transaction_ops", "expect_pk")],
    "branches": [("branch_provenance", "branch_id"), ("branch_provenance", "upstream_id"),
                 ("branch_triggers", "branch_id")],
    "pipelines": [("jobs", "pipeline_id"), ("pipeline_versions", "pipeline_id")],
    "jobs": [("datum_runs", "job_pk"), ("datum_inputs", "job_pk"), ("restart_requests", "job_pk")],
}


def never_reuse_ids(conn: Connection) -> list[str]:
    """Rebuild the tables of ``REFERENCED_BY`` that lack AUTOINCREMENT (SQLite); the rebuilt
    tables' names. Runs inside the caller's write transaction."""
    if conn.dialect.name != "sqlite":
        return []
    rebuilt: list[str] = []
    for name in REFERENCED_BY:
        sql = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).scalar()
        if sql is None or "AUTOINCREMENT" in sql.upper():
            continue
        _rebuild(conn, schema.metadata.tables[name])
        rebuilt.append(name)
    return rebuilt


def _rebuild(conn: Connection, table: Table) -> None:
    tmp = f"{table.name}__new"
    ddl = str(CreateTable(table).compile(dialect=conn.dialect))
    head = f"CREATE TABLE {table.name} ("
    assert ddl.lstrip().startswith(head), ddl
    conn.exec_driver_sql(ddl.lstrip().replace(head, f'CREATE TABLE "{tmp}" (', 1))
    have = {r[1] for r in conn.exec_driver_sql(f'PRAGMA table_info("{table.name}")')}
    cols = ", ".join(f'"{c.name}"' for c in table.columns if c.name in have)
    conn.exec_driver_sql(f'INSERT INTO "{tmp}" ({cols}) SELECT {cols} FROM "{table.name}"')
    conn.exec_driver_sql(f'DROP TABLE "{table.name}"')  # its indexes go with it
    conn.exec_driver_sql(f'ALTER TABLE "{tmp}" RENAME TO "{table.name}"')
    for index in table.indexes:
        conn.execute(CreateIndex(index))
    floor = _highest_id_named(conn, table.name)
    conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table.name,))
    conn.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table.name, floor))


def _highest_id_named(conn: Connection, name: str) -> int:
    """The highest id of table ``name`` that any row holds (its own, or a reference to one)."""
    top = conn.exec_driver_sql(f'SELECT MAX(id) FROM "{name}"').scalar() or 0
    for table, column in REFERENCED_BY[name]:
        if table not in schema.metadata.tables:
            continue
        found = conn.exec_driver_sql(f'SELECT MAX("{column}") FROM "{table}"').scalar()
        top = max(top, found or 0)
    return int(top)
