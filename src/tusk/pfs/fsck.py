"""Consistency checks over a whole root: what ``tusk fsck`` reports.

Three kinds of finding:

* **data**: a tree node (of a commit or of a job's datum map) or a chunk that something needs
  is missing, unreadable or corrupt;
* **references**: a row naming a row that is not there (a commit whose parent or repo is gone,
  a branch whose head is gone, provenance or staged changes of a deleted commit, a job whose
  pipeline or unfinished output commit is gone or whose output commit belongs to another
  commit set, a datum map naming a job that no longer exists, datum records of a deleted job);
* **input cache**: a file of the datum input cache (``storage/file_cache.py``) whose bytes
  differ from the store's (it is removed, and rebuilt when next used);
* **reclaimable**: what killed writers left behind (scratch files of dead writers, packs no
  index names). That is not damage, so it does not fail the check; ``tusk gc`` frees it.
"""

from __future__ import annotations

from collections.abc import Iterable

import blake3
import msgpack
from sqlalchemy import Connection, and_, func, select

from tusk.errors import NotFound
from tusk.pfs import trees
from tusk.pfs.gc import FsckReport, _mark, default_grace
from tusk.storage import file_cache
from tusk.storage import schema as s
from tusk.storage.backend import Backend
from tusk.storage.scratch import abandoned

SHOW = 10  # findings of one kind listed one by one; the rest are counted
UNFINISHED_JOBS = ("CREATED", "STARTING", "RUNNING", "EGRESSING")


def fsck(b: Backend, verify_hashes: bool = True) -> FsckReport:
    """Check every reference between rows, every node and chunk something needs, and (with
    ``verify_hashes``) every chunk's bytes against its hash."""
    report = FsckReport(problems=[])
    problems = report.problems
    assert problems is not None
    with b.db.read() as conn:
        _nodes, live_chunks = _mark(conn, problems)
        problems.extend(dangling_references(conn, b))
        index = {h: (k, o, n) for h, k, o, n in conn.execute(
            select(s.chunks.c.hash, s.chunks.c.pack, s.chunks.c.offset, s.chunks.c.length))}
        known_packs = set(conn.execute(select(s.packs.c.key)).scalars())
    for h in sorted(live_chunks):
        report.chunks_checked += 1
        where = index.get(h)
        if where is None:
            problems.append(f"chunk {h.hex()[:16]} is referenced but not indexed")
            continue
        key, off, n = where
        try:
            data = b.objects.read(key, off, n)
        except Exception as e:  # noqa: BLE001 - any read failure is a finding, not a crash
            problems.append(f"chunk {h.hex()[:16]} unreadable from {key}: {e}")
            continue
        if len(data) != n or (verify_hashes and blake3.blake3(data).digest() != h):
            problems.append(f"chunk {h.hex()[:16]} in {key} is corrupt")
    if verify_hashes:
        problems.extend(file_cache.verify(b.root / "cache", lambda hs: _chunks_of(b, hs),
                                          b.reader().iter_bytes))
    report.reclaimable = _reclaimable(b, known_packs)
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


def _reclaimable(b: Backend, known_packs: set[str]) -> dict[str, int]:
    scratch = abandoned(b.objects.scratch_dir(), default_grace())
    orphans = [k for k in b.objects.list("packs/") if k not in known_packs]
    orphan_bytes = 0
    for k in orphans:
        try:
            orphan_bytes += b.objects.size(k)
        except NotFound:  # removed meanwhile
            continue
    return {"scratch_files": len(scratch), "scratch_bytes": sum(f.size for f in scratch),
            "unindexed_packs": len(orphans), "unindexed_bytes": orphan_bytes}


def _listed(kind: str, lines: Iterable[str]) -> list[str]:
    """At most ``SHOW`` lines of one kind of finding, then how many more there were."""
    out = list(lines)
    if len(out) > SHOW:
        return out[:SHOW] + [f"... and {len(out) - SHOW} more {kind}"]
    return out


def dangling_references(conn: Connection, b: Backend) -> list[str]:
    """Rows that name a row that does not exist (see the module docstring)."""
    c, r, br, j = s.commits, s.repos, s.branches, s.jobs
    parent = c.alias("parent")
    out: list[str] = []

    def missing(col, table_col):  # type: ignore[no-untyped-def]
        return ~select(table_col).where(table_col == col).exists()

    out += _listed("commits", (
        f"commit {cid} names repo #{rid}, which does not exist"
        for cid, rid in conn.execute(select(c.c.commit_id, c.c.repo_id).where(missing(c.c.repo_id, r.c.id)))))
    out += _listed("commits", (
        f"commit {cid} names parent commit #{pid}, which does not exist"
        for cid, pid in conn.execute(
            select(c.c.commit_id, c.c.parent_id).where(c.c.parent_id.is_not(None),
                                                      missing(c.c.parent_id, parent.c.id)))))
    out += _listed("branches", (
        f"branch {name} (repo #{rid}) has head commit #{head}, which does not exist"
        for name, rid, head in conn.execute(
            select(br.c.name, br.c.repo_id, br.c.head_id).where(missing(br.c.head_id, c.c.id)))))
    cp = s.commit_provenance
    out += _listed("provenance rows", (
        f"commit provenance #{a} -> #{u} names a commit that does not exist"
        for a, u in conn.execute(select(cp.c.commit_pk, cp.c.upstream_pk).where(
            missing(cp.c.commit_pk, c.c.id) | missing(cp.c.upstream_pk, c.c.id)))))
    bp = s.branch_provenance
    out += _listed("provenance rows", (
        f"branch provenance #{a} -> #{u} names a branch that does not exist"
        for a, u in conn.execute(select(bp.c.branch_id, bp.c.upstream_id).where(
            missing(bp.c.branch_id, br.c.id) | missing(bp.c.upstream_id, br.c.id)))))
    st = s.staging
    out += _listed("staged changes", (
        f"{n} staged change(s) belong to commit #{pk}, which does not exist or is finished"
        for pk, n in conn.execute(
            select(st.c.commit_pk, func.count()).where(
                ~select(c.c.id).where(c.c.id == st.c.commit_pk, c.c.state == "open").exists())
            .group_by(st.c.commit_pk))))
    out += _jobs(conn)
    out += _datum_maps(conn, b)
    for table in (s.datum_runs, s.datum_inputs, s.restart_requests):
        out += _listed(f"{table.name} rows", (
            f"{n} {table.name} row(s) belong to job #{pk}, which does not exist"
            for pk, n in conn.execute(select(table.c.job_pk, func.count())
                                      .where(missing(table.c.job_pk, j.c.id)).group_by(table.c.job_pk))))
    return out


def _jobs(conn: Connection) -> list[str]:
    c, j, p = s.commits, s.jobs, s.pipelines
    out = _listed("jobs", (
        f"job {jid} names pipeline #{pid}, which does not exist"
        for jid, pid in conn.execute(select(j.c.job_id, j.c.pipeline_id).where(
            ~select(p.c.id).where(p.c.id == j.c.pipeline_id).exists()))))
    # A finished job whose output commit was squashed away is history (Pachyderm keeps it);
    # an unfinished one would wait forever, and one whose commit is another set's would
    # make that commit look as if it had a job.
    rows = conn.execute(
        select(j.c.job_id, j.c.state, j.c.commit_pk, c.c.commit_id)
        .select_from(j.outerjoin(c, c.c.id == j.c.commit_pk))
        .where((c.c.id.is_(None) & j.c.state.in_(UNFINISHED_JOBS))
               | and_(c.c.id.is_not(None), c.c.commit_id != j.c.job_id))).all()
    out += _listed("jobs", (
        f"job {jid} ({state}) has output commit #{pk}, which does not exist" if cid is None
        else f"job {jid} has output commit #{pk}, which belongs to commit set {cid}"
        for jid, state, pk, cid in rows))
    return out


def _datum_maps(conn: Connection, b: Backend) -> list[str]:
    """The newest datum map of each pipeline (the one its next job starts from) names, per
    datum, the job that ran it: that job must exist."""
    j = s.jobs
    newest = (select(j.c.pipeline_id, func.max(j.c.id).label("id"))
              .where(j.c.datum_map.is_not(None)).group_by(j.c.pipeline_id).subquery())
    jobs = set(conn.execute(select(j.c.id)).scalars())
    out: list[str] = []
    for job_id, root in conn.execute(select(j.c.job_id, j.c.datum_map).join(newest, newest.c.id == j.c.id)):
        try:
            gone = {e.size for e in trees.Tree(b.nodes, root) if e.size not in jobs}
        except NotFound:  # a missing node: the mark has reported it already
            continue
        if gone:
            out.append(f"the datum map of job {job_id} names job(s) #"
                       f"{', #'.join(map(str, sorted(gone)[:5]))}, which do not exist")
    return out
