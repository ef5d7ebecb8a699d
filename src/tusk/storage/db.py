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

from sqlalchemy import Connection, Engine, create_engine, event, select, update

from tusk.storage import migrate, schema


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


def _add_missing_columns(conn: Connection) -> None:
    """Bring a root made by an older tusk up to date: add columns that later versions added.

    Only additive changes happen this way (new nullable or defaulted columns); ``create_all``
    has already made any missing tables. A column is added with its server default, or as
    NULL-able when it has none, so existing rows stay valid.
    """
    from sqlalchemy import inspect as sa_inspect

    have = sa_inspect(conn)
    for table in schema.metadata.sorted_tables:
        existing = {c["name"] for c in have.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing:
                continue
            ddl_type = column.type.compile(dialect=conn.dialect)
            default = ""
            if column.default is not None and getattr(column.default, "is_scalar", False):
                value = column.default.arg
                default = f" DEFAULT {value!r}" if isinstance(value, str) else f" DEFAULT {value}"
            conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {ddl_type}{default}')


class Database:
    """A metadata store reached by URL (``sqlite:///path`` or ``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._probe = None
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
            _add_missing_columns(conn)
            have = conn.execute(
                select(schema.meta_info.c.value).where(schema.meta_info.c.key == "schema")
            ).scalar()
            if have is not None and int(have) < schema.SCHEMA_VERSION:
                migrate.never_reuse_ids(conn)
                conn.execute(update(schema.meta_info).where(schema.meta_info.c.key == "schema")
                             .values(value=str(schema.SCHEMA_VERSION)))
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
            # Straight to the driver: bulk index inserts are hot (a commit of 100k files) and
            # SQLAlchemy's per-row bookkeeping would cost more than SQLite itself.
            cols = list(rows[0])
            sql = (f"INSERT OR IGNORE INTO {table.name} ({', '.join(cols)}) "
                   f"VALUES ({', '.join('?' * len(cols))})")
            conn.exec_driver_sql(sql, [tuple(r[c] for c in cols) for r in rows])
            return
        from sqlalchemy.dialects.postgresql import insert

        conn.execute(insert(table).on_conflict_do_nothing(), rows)

    def has_key(self, table, column: str, value: object) -> bool:  # type: ignore[no-untyped-def]
        """Whether a row with ``column == value`` exists, as cheaply as the backend allows.

        Hot path (a dedup probe per chunk): on SQLite it uses one long-lived autocommit driver
        connection, so each probe is a single indexed SELECT with no transaction overhead.
        """
        if self.is_sqlite:
            if self._probe is None:
                self._probe = self._read.raw_connection()
            cur = self._probe.cursor()
            try:
                cur.execute(f"SELECT 1 FROM {table.name} WHERE {column} = ? LIMIT 1", (value,))
                return cur.fetchone() is not None
            finally:
                cur.close()
        col = table.c[column]
        with self.read() as conn:
            return conn.execute(select(col).where(col == value).limit(1)).first() is not None

    def dispose(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        self._write.dispose()
        self._read.dispose()
