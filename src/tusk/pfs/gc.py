"""Garbage collection of the data PFS stores.

Mark and sweep: everything reachable from a commit (its tree nodes and the chunks their entries
name) or from an open commit's staged changes is live; the rest is freed. Packs whose chunks
are all dead are deleted; packs that are mostly dead are rewritten with only their live chunks.
GC holds the data lock exclusively, so no writer can deduplicate against a chunk it is freeing,
and works inside one metadata transaction, so no commit can land half-way through the mark.

What killed writers leave behind is reclaimed too (``storage.scratch`` says how GC knows whose
it is): scratch files of dead writers, and published packs that no commit indexed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import msgpack
from sqlalchemy import Connection, delete, func, select, update

from tusk.errors import FailedPrecondition, NotFound
from tusk.storage import schema as s
from tusk.storage.backend import Backend
from tusk.storage.content import pack_key
from tusk.storage.scratch import abandoned, new_pack_id, owner_alive, owner_of_pack, scratch_name

REPACK_BELOW = 0.5  # rewrite a pack when less than half of it is live
# An unindexed pack of a live (or unknown) writer younger than this may be in flight to its
# commit; so may an ownerless scratch file (from an older tusk). TUSK_GC_GRACE overrides it.
ORPHAN_GRACE = 3600.0


def default_grace() -> float:
    """``TUSK_GC_GRACE`` (seconds) if set, else ``ORPHAN_GRACE``. Tests and the fault suite set
    0; it is only safe when no writer can be in flight (see docs/reliability.md)."""
    raw = os.environ.get("TUSK_GC_GRACE", "").strip()
    try:
        return max(0.0, float(raw)) if raw else ORPHAN_GRACE
    except ValueError:
        return ORPHAN_GRACE


@dataclass
class GcStats:
    nodes_freed: int = 0
    chunks_freed: int = 0
    packs_deleted: int = 0
    packs_rewritten: int = 0
    bytes_freed: int = 0
    scratch_freed: int = 0  # files killed writers left in the scratch directory

    def to_dict(self) -> dict[str, int]:
        return self.__dict__.copy()


def _mark(conn: Connection, missing: list[str] | None = None) -> tuple[set[bytes], set[bytes]]:
    """Live tree nodes and chunks: the trees of commits and the datum maps of jobs (both are
    trees in ``tree_nodes``), plus the staged entries of open commits.

    A missing node is appended to ``missing`` (fsck) or, when that is None, aborts: without
    the node its chunks cannot be marked, so a sweep would free live data."""
    nodes: set[bytes] = set()
    chunks: set[bytes] = set()

    def node(h: bytes, owner: str) -> bytes | None:
        data = conn.execute(select(s.tree_nodes.c.data).where(s.tree_nodes.c.hash == h)).scalar()
        if data is None:
            msg = f"tree node {h.hex()[:16]} of {owner} is referenced but missing"
            if missing is None:
                raise FailedPrecondition(f"{msg}; not collecting garbage (run 'tusk fsck')")
            missing.append(msg)
        return data

    roots: list[tuple[bytes, str]] = [
        (root, f"commit {cid}") for root, cid in conn.execute(
            select(s.commits.c.tree, func.min(s.commits.c.commit_id))
            .where(s.commits.c.tree.is_not(None)).group_by(s.commits.c.tree))]
    roots += [(root, f"the datum map of job {jid}") for root, jid in conn.execute(
        select(s.jobs.c.datum_map, func.min(s.jobs.c.job_id))
        .where(s.jobs.c.datum_map.is_not(None)).group_by(s.jobs.c.datum_map))]
    for root, owner in roots:
        if root in nodes:
            continue
        nodes.add(root)
        root_data = node(root, owner)
        for rng in msgpack.unpackb(root_data, raw=False) if root_data is not None else ():
            h = rng[2]
            if h in nodes:
                continue
            nodes.add(h)
            range_data = node(h, owner)
            for entry in msgpack.unpackb(range_data, raw=False) if range_data is not None else ():
                chunks.update(c[0] for c in entry[3])
    for blob in conn.execute(select(s.staging.c.entry).where(s.staging.c.entry.is_not(None))).scalars():
        chunks.update(c[0] for c in msgpack.unpackb(blob, raw=False)[3])
    # Listings datums handed in to an open output commit (pfs/output.py) name their content too.
    for blob in conn.execute(select(s.output_listings.c.entries)).scalars():
        for entry in msgpack.unpackb(blob, raw=False):
            chunks.update(c[0] for c in entry[3])
    return nodes, chunks


def collect_garbage(b: Backend, orphan_grace: float | None = None, wait: bool = True,
                    timeout: float | None = None) -> GcStats:
    """Free what nothing references. ``wait``: wait for writers to finish (at most ``timeout``
    seconds, then Busy); ``orphan_grace``: see ``ORPHAN_GRACE`` (default ``default_grace()``)."""
    grace = default_grace() if orphan_grace is None else orphan_grace
    stats = GcStats()
    doomed: list[str] = []
    with b.data_lock(exclusive=True, wait=wait, timeout=timeout):
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
        _sweep_orphans(b, known, grace, stats)
    return stats


def _sweep_orphans(b: Backend, known: set[str], grace: float, stats: GcStats) -> None:
    """Delete unindexed packs and abandoned scratch files (``storage.scratch``)."""
    now = time.time()
    for key in b.objects.list("packs/"):
        if key in known:
            continue
        try:
            age = now - b.objects.mtime(key)
            size = b.objects.size(key)
        except NotFound:
            continue
        # A dead writer's pack can never be indexed; a live one's may be on its way.
        if owner_alive(owner_of_pack(key)) is False or age >= grace:
            b.objects.delete(key)
            stats.bytes_freed += size
    for f in abandoned(b.objects.scratch_dir(), grace):
        try:
            f.path.unlink()
        except FileNotFoundError:
            continue
        stats.scratch_freed += 1
        stats.bytes_freed += f.size


def unindexed_packs(b: Backend, known: set[str]) -> list[str]:
    """Packs in the store that no index row names (fsck reports them as reclaimable)."""
    return [k for k in b.objects.list("packs/") if k not in known]


def _repack(b: Backend, conn: Connection, key: str) -> None:
    rows = conn.execute(
        select(s.chunks.c.hash, s.chunks.c.offset, s.chunks.c.length).where(s.chunks.c.pack == key)
        .order_by(s.chunks.c.offset)
    ).all()
    new_key = pack_key(new_pack_id())
    tmp = b.objects.scratch_dir() / scratch_name("repack")
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
    """What ``fsck`` (``pfs/fsck.py``) found. ``problems`` are damage (exit 1); ``reclaimable``
    counts what killed writers left behind, which is no damage and which ``gc`` frees."""

    chunks_checked: int = 0
    problems: list[str] | None = None
    reclaimable: dict[str, int] | None = None

    def to_dict(self) -> dict:
        return {"chunks_checked": self.chunks_checked, "problems": self.problems or [],
                "reclaimable": self.reclaimable or {}}
