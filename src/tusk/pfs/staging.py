"""Staged changes of a commit that is not finished yet.

A write session collects operations in a ``ChangeSet`` (pure, in memory): per-path operations
composed in order (put, append, delete) plus recursive directory deletions. A one-off commit
applies its change set straight onto the parent's tree; an open commit stores it durably as
rows of the ``staging`` table, composed with what is already staged, until ``finish commit``
applies the lot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack
from sqlalchemy import Connection, delete, select

from tusk.pfs.trees import APPEND, DELETE, PUT, Entry, Op, combine
from tusk.storage import schema


def compose(first: Op | None, then: Op) -> Op:
    """One operation equivalent to ``first`` followed by ``then`` on the same path."""
    if first is None or then.kind in (PUT, DELETE):
        return then
    # then is an append
    if first.kind == DELETE:
        return Op(PUT, then.entry)
    merged = combine(first.entry, then)
    return Op(first.kind, merged)  # put+append = put; append+append = append


@dataclass
class ChangeSet:
    """Operations of one write session, composed per path."""

    ops: dict[str, Op] = field(default_factory=dict)
    deleted_dirs: set[str] = field(default_factory=set)  # prefixes ending in '/'
    appended: bool = False  # any append so far (its hash may wait for the bundle to seal)

    def put(self, entry: Entry, append: bool = False) -> None:
        if not append:  # the common case, kept cheap: a put replaces whatever came before
            self.ops[entry.path] = Op(PUT, entry)
            return
        self.appended = True
        self.ops[entry.path] = compose(self.ops.get(entry.path), Op(APPEND, entry))

    def delete(self, path: str) -> None:
        self.ops[path] = Op(DELETE)

    def delete_dir(self, prefix: str) -> None:
        for p in [p for p in self.ops if p.startswith(prefix)]:
            del self.ops[p]
        self.deleted_dirs.add(prefix)

    def sorted_ops(self) -> list[tuple[str, Op]]:
        return sorted(self.ops.items())

    def __bool__(self) -> bool:
        return bool(self.ops or self.deleted_dirs)


def _pack_op(op: Op) -> bytes | None:
    return None if op.entry is None else msgpack.packb(op.entry, use_bin_type=True)


def _unpack_op(kind: str, blob: bytes | None) -> Op:
    return Op(kind, None if blob is None else Entry(*msgpack.unpackb(blob, raw=False)))


def load(conn: Connection, commit_pk: int) -> ChangeSet:
    """The change set staged for an open commit."""
    t = schema.staging
    cs = ChangeSet()
    for prefix, path, kind, blob in conn.execute(
        select(t.c.prefix, t.c.path, t.c.op, t.c.entry).where(t.c.commit_pk == commit_pk)
    ):
        if prefix:
            cs.deleted_dirs.add(path)
        else:
            cs.ops[path] = _unpack_op(kind, blob)
    return cs


def stage(conn: Connection, commit_pk: int, changes: ChangeSet) -> None:
    """Compose ``changes`` onto what is staged for ``commit_pk`` (inside the caller's tx)."""
    t = schema.staging
    for prefix in sorted(changes.deleted_dirs):
        conn.execute(
            delete(t).where(
                t.c.commit_pk == commit_pk, t.c.prefix.is_(False), t.c.path.startswith(prefix, autoescape=True)
            )
        )
        conn.execute(
            delete(t).where(t.c.commit_pk == commit_pk, t.c.prefix.is_(True), t.c.path == prefix)
        )
        conn.execute(t.insert().values(commit_pk=commit_pk, prefix=True, path=prefix, op="deldir", entry=None))
    if not changes.ops:
        return
    paths = list(changes.ops)
    existing: dict[str, Op] = {}
    for i in range(0, len(paths), 500):
        for path, kind, blob in conn.execute(
            select(t.c.path, t.c.op, t.c.entry).where(
                t.c.commit_pk == commit_pk, t.c.prefix.is_(False), t.c.path.in_(paths[i : i + 500])
            )
        ):
            existing[path] = _unpack_op(kind, blob)
    if existing:
        conn.execute(
            delete(t).where(
                t.c.commit_pk == commit_pk, t.c.prefix.is_(False), t.c.path.in_(list(existing))
            )
        )
    rows = []
    for path, op in sorted(changes.ops.items()):
        final = compose(existing.get(path), op)
        rows.append(
            {"commit_pk": commit_pk, "prefix": False, "path": path, "op": final.kind, "entry": _pack_op(final)}
        )
    conn.execute(t.insert(), rows)


def clear(conn: Connection, commit_pk: int) -> None:
    conn.execute(delete(schema.staging).where(schema.staging.c.commit_pk == commit_pk))
