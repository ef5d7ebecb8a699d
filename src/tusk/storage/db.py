"""The metadata database: engines, transactions and schema creation.

``Database.tx()`` is the one way to write: a transaction that takes the write lock up front
(``BEGIN IMMEDIATE`` on SQLite) so compare-and-set on refs never deadlocks between processes.
``Database.read()`` is a snapshot for readers. The schema is created from ``schema.metadata``;
the same definition serves SQLite (embedded default) and PostgreSQL (scale-out).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event, select

from tusk.storage import schema


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        # Take transaction control away from pysqlite so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged commit survives power loss (one WAL sync per transaction).
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=OFF")
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """A metadata store reached by URL (``sqlite:///path`` or ``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self._write = _sqlite_engine(url, immediate=True)
            self._read = _sqlite_engine(url, immediate=False)
        else:
            self._write = create_engine(url, pool_pre_ping=True)
            self._read = self._write
        self._ensure_schema()

    def _ensure_schema(self) -> None:
        with self._write.begin() as conn:
            schema.metadata.create_all(conn)
            have = conn.execute(
                select(schema.meta_info.c.value).where(schema.meta_info.c.key == "schema")
            ).scalar()
            if have is None:
                conn.execute(
                    schema.meta_info.insert().values(key="schema", value=str(schema.SCHEMA_VERSION))
                )
                conn.execute(
                    schema.projects.insert().values(
                        name="default", description="", created_at=time.time()
                    )
                )

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction: commits on success, rolls back on any exception."""
        with self._write.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read snapshot."""
        with self._read.begin() as conn:
            yield conn

    def insert_ignore(self, conn: Connection, table, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
        """Insert rows, silently skipping those whose primary key already exists."""
        if not rows:
            return
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        conn.execute(insert(table).on_conflict_do_nothing(), rows)

    def dispose(self) -> None:
        self._write.dispose()
        self._read.dispose()
