"""One opened installation: the metadata database, the object store and the tree node store.

``Backend`` is what the services hold. Nothing above ``storage/`` learns which concrete backends
it got; it only sees the Protocols.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from tusk.config import RootConfig, load_config
from tusk.errors import NotFound
from tusk.storage import schema
from tusk.storage.content import ContentReader, ContentWriter
from tusk.storage.db import Database
from tusk.storage.locks import held_flock
from tusk.storage.objects import ObjectStore, open_object_store


class DbNodeStore:
    """Tree nodes kept in the metadata database (see schema.py for why)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get_node(self, digest: bytes) -> bytes:
        with self.db.read() as conn:
            data = conn.execute(
                select(schema.tree_nodes.c.data).where(schema.tree_nodes.c.hash == digest)
            ).scalar()
        if data is None:
            raise NotFound(f"tree node {digest.hex()[:16]} is missing; run 'tusk fsck'")
        return data


class OverlayNodeStore:
    """New, not yet persisted nodes over a base store (to read a tree before committing it)."""

    def __init__(self, nodes: dict[bytes, bytes], base: DbNodeStore) -> None:
        self.nodes = nodes
        self.base = base

    def get_node(self, digest: bytes) -> bytes:
        data = self.nodes.get(digest)
        return data if data is not None else self.base.get_node(digest)


@dataclass
class Backend:
    config: RootConfig
    db: Database
    objects: ObjectStore
    nodes: DbNodeStore

    @property
    def root(self) -> Path:
        return self.config.root

    def writer(self) -> ContentWriter:
        return ContentWriter(self.objects, self.db)

    def reader(self) -> ContentReader:
        return ContentReader(self.objects, self.db)

    @contextmanager
    def data_lock(self, exclusive: bool = False, wait: bool = True,
                  timeout: float | None = None) -> Iterator[None]:
        """Writers hold it shared while they write chunks; garbage collection exclusive.

        Without it GC could free a chunk that a writer has just deduplicated against but not
        yet committed a reference to. ``wait``: block until it is free (for at most
        ``timeout`` seconds, then Busy). The lock dies with its holder: it is an flock, and
        processes forked while it is held drop their inherited copy (``storage.locks``).
        """
        with held_flock(self.root / "data.lock", exclusive, wait, timeout,
                        "another tusk process is writing data; try again shortly"):
            yield

    def close(self) -> None:
        self.db.dispose()


def open_backend(root: Path | None = None) -> Backend:
    config = load_config(root)
    db = Database(config.metadata_url)
    return Backend(config, db, open_object_store(config.object_url), DbNodeStore(db))
