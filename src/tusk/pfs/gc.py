"""Garbage collection and consistency checks for the data PFS stores.

Mark and sweep: everything reachable from a commit (its tree nodes and the chunks their entries
name) or from an open commit's staged changes is live; the rest is freed. Packs whose chunks
are all dead are deleted; packs that are mostly dead are rewritten with only their live chunks.
GC holds the data lock exclusively, so no writer can deduplicate against a chunk it is freeing,
and works inside one metadata transaction, so no commit can land half-way through the mark.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

import blake3
import msgpack
from sqlalchemy import Connection, delete, func, select, update

from tusk.errors import FailedPrecondition, NotFound
from tusk.storage import file_cache
from tusk.storage import schema as s
from tusk.storage.backend import Backend
from tusk.storage.content import pack_key

REPACK_BELOW = 0.5  # rewrite a pack when less than half of it is live
ORPHAN_GRACE = 3600.0  # an unindexed pack younger than this may belong to a writer in flight


@dataclass
class GcStats:
    nodes_freed: int = 0
    chunks_freed: int = 0
    packs_deleted: int = 0
    packs_rewritten: int = 0
    bytes_freed: int = 0

    def to_dict(self) -> dict[str, int]:
        return self.__dict__.copy()


def _mark(conn: Connection, missing: list[str] | None = None) -> tuple[set[bytes], set[bytes]]:
    """Live tree nodes and chunks. A missing node is appended to ``missing`` (fsck) or, when
    that is None, aborts: without the node its chunks cannot be marked, so a sweep would free
    live data."""
    nodes: set[bytes] = set()
    chunks: set[bytes] = set()

    def node(h: bytes) -> bytes | None:
        data = conn.execute(select(s.tree_nodes.c.data).where(s.tree_nodes.c.hash == h)).scalar()
        if data is None:
            msg = f"tree node {h.hex()[:16]} is referenced but missing"
            if missing is None:
                raise FailedPrecondition(f"{msg}; not collecting garbage (run 'tusk fsck')")
            missing.append(msg)
        return data

    roots = conn.execute(select(s.commits.c.tree).where(s.commits.c.tree.is_not(None)).distinct()).scalars()
    for root in list(roots):
        if root in nodes:
            continue
        nodes.add(root)
        root_data = node(root)
        for rng in msgpack.unpackb(root_data, raw=False) if root_data is not None else ():
            h = rng[2]
            if h in nodes:
                continue
            nodes.add(h)
            range_data = node(h)
            for entry in msgpack.unpackb(range_data, raw=False) if range_data is not None else ():
                chunks.update(c[0] for c in entry[3])
    for blob in conn.execute(select(s.staging.c.entry).where(s.staging.c.entry.is_not(None))).scalars():
        chunks.update(c[0] for c in msgpack.unpackb(blob, raw=False)[3])
    return nodes, chunks


def collect_garbage(b: Backend, orphan_grace: float = ORPHAN_GRACE, wait: bool = True) -> GcStats:
    stats = GcStats()
    doomed: list[str] = []
    with b.data_lock(exclusive=True, wait=wait):
        with b.db.tx() as conn:
            live_nodes, live_chunks = _mark(conn)
            all_nodes = conn.execute(select(s.tree_nodes.c.hash)).scalars().all()
            dead_nodes = [h for h in all_nodes if h not in live_nodes]
            for i in range(0, len(dead_nodes), 500):
                conn.execute(delete(s.tree_nodes).where(s.tree_nodes.c.hash.in_(dead_nodes[i : i + 500])))
            stats.nodes_freed = len(dead_nodes)
            dead_chunks = [
                (h, n) for h, n in conn.execute(select(s.chunks.c.hash, s.chunks.c.length)) if h not in live_chunks
            ]
            for i in range(0, len(dead_chunks), 500):
                batch = [h for h, _ in dead_chunks[i : i + 500]]
                conn.execute(delete(s.chunks).where(s.chunks.c.hash.in_(batch)))
            stats.chunks_freed = len(dead_chunks)
            live_by_pack = dict(
                conn.execute(select(s.chunks.c.pack, func.sum(s.chunks.c.length)).group_by(s.chunks.c.pack)).all()
            )
            for key, size in conn.execute(select(s.packs.c.key, s.packs.c.size)).all():
                live = live_by_pack.get(key, 0)
                if live == 0:
                    conn.execute(delete(s.packs).where(s.packs.c.key == key))
                    doomed.append(key)
                    stats.packs_deleted += 1
                    stats.bytes_freed += size
                elif live < size * REPACK_BELOW:
                    _repack(b, conn, key)
                    doomed.append(key)
                    stats.packs_rewritten += 1
                    stats.bytes_freed += size - live
            known = set(conn.execute(select(s.packs.c.key)).scalars())
        # Objects go only after the index no longer names them.
        for key in doomed:
            b.objects.delete(key)
        now = time.time()
        for key in b.objects.list("packs/"):
            if key in known:
                continue
            try:
                age = now - b.objects.mtime(key)
            except NotFound:
                continue
            if age >= orphan_grace:
                b.objects.delete(key)
    return stats


def _repack(b: Backend, conn: Connection, key: str) -> None:
    rows = conn.execute(
        select(s.chunks.c.hash, s.chunks.c.offset, s.chunks.c.length).where(s.chunks.c.pack == key)
        .order_by(s.chunks.c.offset)
    ).all()
    new_id = uuid.uuid4().hex
    new_key = pack_key(new_id)
    tmp = b.objects.scratch_dir() / f"pack-{new_id}"
    pos = 0
    with open(tmp, "wb") as f:
        for h, off, n in rows:
            f.write(b.objects.read(key, off, n))
            conn.execute(update(s.chunks).where(s.chunks.c.hash == h).values(pack=new_key, offset=pos))
            pos += n
        f.flush()
        os.fsync(f.fileno())
    b.objects.put_file(new_key, tmp)
    conn.execute(delete(s.packs).where(s.packs.c.key == key))
    conn.execute(s.packs.insert().values(key=new_key, size=pos, created_at=time.time()))


@dataclass
class FsckReport:
    chunks_checked: int = 0
    problems: list[str] | None = None

    def to_dict(self) -> dict:
        return {"chunks_checked": self.chunks_checked, "problems": self.problems or []}


def fsck(b: Backend, verify_hashes: bool = True) -> FsckReport:
    """Check that every tree node and chunk a commit needs is present and (optionally) intact."""
    report = FsckReport(problems=[])
    with b.db.read() as conn:
        _nodes, live_chunks = _mark(conn, report.problems)
        index = {h: (k, o, n) for h, k, o, n in conn.execute(
            select(s.chunks.c.hash, s.chunks.c.pack, s.chunks.c.offset, s.chunks.c.length))}
    for h in sorted(live_chunks):
        report.chunks_checked += 1
        where = index.get(h)
        if where is None:
            report.problems.append(f"chunk {h.hex()[:16]} is referenced but not indexed")
            continue
        key, off, n = where
        try:
            data = b.objects.read(key, off, n)
        except Exception as e:  # noqa: BLE001 - any read failure is a finding, not a crash
            report.problems.append(f"chunk {h.hex()[:16]} unreadable from {key}: {e}")
            continue
        if len(data) != n or (verify_hashes and blake3.blake3(data).digest() != h):
            report.problems.append(f"chunk {h.hex()[:16]} in {key} is corrupt")
    if verify_hashes:
        report.problems += file_cache.verify(b.root / "cache", lambda hs: _chunks_of(b, hs),
                                             b.reader().iter_bytes)
    return report


def _chunks_of(b: Backend, wanted: set[bytes]) -> dict[bytes, list]:
    """Content hash -> chunk list, for the wanted hashes any stored tree still names."""
    found: dict[bytes, list] = {}
    with b.db.read() as conn:
        for data in conn.execute(select(s.tree_nodes.c.data)).scalars():
            for item in msgpack.unpackb(data, raw=False):
                # Leaf entries are (path, size, hash, chunks, ...); index rows have a count.
                if len(item) > 3 and isinstance(item[3], list) and item[2] in wanted:
                    found[item[2]] = [tuple(c) for c in item[3]]
            if len(found) == len(wanted):
                break
    return found
