"""File-level lineage: where an output file came from, what depends on an input file, and why
each datum of a job ran.

This module owns the *lineage* concept, answered from indexes the job runner writes, never by
re-running the planner or scanning jobs:

* upstream (``Lineage.upstream``): an output file's tree entry names the datum that wrote it;
  the datum map of the job whose output commit holds the file names the job that actually ran
  that datum (a skipped datum points at an earlier job); that run's ``datum_runs`` row lists
  the input files (name, repo, path, content hash) and the run's output commit's provenance
  gives the input commits. When an input repo is itself a pipeline's output, the walk
  continues there, down to files in plain repos ("original inputs").
* downstream (``Lineage.downstream``): ``datum_inputs`` maps an input file version (project,
  repo, path, hash) to the datum runs that read it; each run's outputs are followed the same
  way, recursively down the DAG.
* reasons (``why_ran`` at planning time, ``Lineage.explain`` afterwards): why a datum ran
  (new, changed, previously failed, reprocess requested) or was skipped (unchanged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgpack
from sqlalchemy import Connection, Row, select

from tusk.errors import InvalidArgument, NotFound
from tusk.pfs import trees
from tusk.pfs.refs import FileRef
from tusk.storage import schema as s

if TYPE_CHECKING:
    from tusk.pfs.service import PfsService
    from tusk.pps import datums as dm
    from tusk.pps.service import PpsService

# Why a datum ran, as recorded in ``datum_runs.why``; UNCHANGED is never recorded (a skipped
# datum has no row for the job), it is what a datum-map entry of an earlier job means.
NEW = "new"
CHANGED = "changed"
PREVIOUSLY_FAILED = "previously failed"
REPROCESS = "reprocess requested"
UNCHANGED = "unchanged"

_SUCCESS = "success"  # jobs.SUCCESS; not imported, since jobs.py imports this module
_RECOVERED = "recovered"  # jobs.RECOVERED: done with too (later jobs skip it)


def why_ran(d: dm.Datum, base_state: str | None, base_hash: str | None, salt: str,
            base_salt: str | None) -> str:
    """Why datum ``d``, which the planner decided to run, runs.

    ``base_state``/``base_hash``: the datum's entry in the base job's datum map (None when the
    datum is not there). A datum the base processed with the same data under an older salt runs
    because a reprocess was requested; so does one whose hash did not change at all (only
    ``reprocess_spec: every_job`` runs those). Comparing the hash under the base's salt is what
    tells "reprocess requested" from "changed" without reading the earlier run's inputs.
    """
    if base_state is None:
        return NEW
    if base_state not in (_SUCCESS, _RECOVERED):
        return PREVIOUSLY_FAILED
    if base_hash == d.hash(salt):
        return REPROCESS
    if base_salt is not None and base_salt != salt and base_hash == d.hash(base_salt):
        return REPROCESS
    return CHANGED


def _hex(h: Any) -> str:
    """A content hash as hex, whether msgpack gave it back as bytes or it was stored as text."""
    return h.hex() if isinstance(h, (bytes, bytearray)) else str(h)


class Lineage:
    """Lineage queries over one root; every query runs in one read snapshot."""

    def __init__(self, pfs: PfsService) -> None:
        self.pfs = pfs
        self.b = pfs.b
        self._spec_sources: dict[int, dict[str, tuple[str, str]]] = {}

    # -- shared lookups -----------------------------------------------------------------------

    def _entry(self, conn: Connection, repo: Row, commit: Row, path: str, where: str) -> trees.Entry:
        """The file at ``path`` of ``commit`` (``where``: as the user named it), or a user error
        naming what is wrong."""
        if path == "/":
            raise InvalidArgument(f"{where}:/ is the root directory: name a file")
        tree = self.pfs.view(conn, commit)
        e = tree.get(path)
        if e is not None:
            return e
        if next(iter(tree.scan_prefix(path.rstrip("/") + "/")), None) is not None:
            raise InvalidArgument(f"{where}:{path} is a directory: name a file")
        raise NotFound(f"file {path} not found in {where}")

    @staticmethod
    def _pipeline(conn: Connection, repo: Row) -> Row | None:
        """The pipeline whose output repo ``repo`` is, if any."""
        p = s.pipelines
        return conn.execute(select(p).where(p.c.project == repo.project, p.c.name == repo.name)).first()

    @staticmethod
    def _producer(conn: Connection, pipe: Row, commit: Row) -> Row | None:
        """The job whose output tree ``commit`` holds.

        Normally the job whose output commit it is. A failed, killed or unfinished job leaves
        its commit with the content of the last successful job before it, so that job's datum
        map is the one that describes the files.
        """
        j = s.jobs
        job = conn.execute(select(j).where(j.c.commit_pk == commit.id)).first()
        if job is not None and job.state == "SUCCESS":
            return job
        if job is None and commit.origin != "AUTO":
            return None  # a commit someone made by hand in the output repo
        q = select(j).where(j.c.pipeline_id == pipe.id, j.c.state == "SUCCESS")
        if job is not None:
            q = q.where(j.c.id < job.id)
        return conn.execute(q.order_by(j.c.id.desc()).limit(1)).first()

    def _added_in(self, conn: Connection, commit: Row, path: str, h: bytes) -> str:
        """The oldest ancestor of ``commit`` from which the file has had this content."""
        found = commit
        while (parent := self.pfs.parent_of(conn, found)) is not None:
            e = self.pfs.view(conn, parent).get(path)
            if e is None or e.hash != h:
                break
            found = parent
        return str(found.commit_id)

    # -- upstream -----------------------------------------------------------------------------

    def upstream(self, ref: FileRef, depth: int | None = None) -> dict[str, Any]:
        """The lineage tree of one file: who produced it, from which input files, recursively.

        ``depth`` limits how many pipeline levels are followed (None: all the way).
        """
        with self.b.db.read() as conn:
            commit = self.pfs.resolve_commit(conn, ref.commit)
            repo = self.pfs.repo_of(conn, commit)
            entry = self._entry(conn, repo, commit, ref.path, str(ref.commit))
            return self._node(conn, repo, commit, entry, depth, {}, {})

    def _node(self, conn: Connection, repo: Row, commit: Row, e: trees.Entry, depth: int | None,
              memo: dict[tuple[int, str], dict[str, Any]],
              prov_cache: dict[int, list[tuple[Row, Row]]]) -> dict[str, Any]:
        key = (commit.id, e.path)
        if key in memo:  # a diamond in the DAG reaches the same file twice
            return memo[key]
        node: dict[str, Any] = {"project": repo.project, "repo": repo.name, "path": e.path,
                                "commit": commit.commit_id, "hash": e.hash.hex(), "size": e.size}
        memo[key] = node
        pipe = self._pipeline(conn, repo)
        job = self._producer(conn, pipe, commit) if pipe is not None else None
        mapped = trees.Tree(self.b.nodes, job.datum_map).get("/" + e.datum) if job is not None else None
        if pipe is None or job is None or mapped is None:
            # A plain input repo (or a file someone put into an output repo by hand).
            node["origin"] = "input"
            node["added_in"] = self._added_in(conn, commit, e.path, e.hash)
            return node
        run_pk = mapped.size  # the job that ran the datum; earlier than ``job`` if it was skipped
        run_job = conn.execute(select(s.jobs).where(s.jobs.c.id == run_pk)).one()
        run = conn.execute(select(s.datum_runs).where(
            s.datum_runs.c.job_pk == run_pk, s.datum_runs.c.datum_id == e.datum)).first()
        node.update(origin="pipeline", pipeline=pipe.name, pipeline_version=run_job.version,
                    job=run_job.job_id, datum=e.datum, inputs=[])
        if run_job.image:
            node["image"] = run_job.image  # the digest the datum's code ran in
        if run is None:
            return node
        if depth is not None and depth <= 0:
            node["truncated"] = True
            return node
        if run_pk not in prov_cache:
            prov_cache[run_pk] = [tuple(i) for i in self.pfs.output.input_commits(conn, run_job.commit_pk)]
        ups = prov_cache[run_pk]
        sources = self._sources(pipe)
        for name, repo_name, path, h in msgpack.unpackb(run.inputs):
            child: dict[str, Any] = {"input": name, "repo": repo_name, "path": path, "hash": _hex(h)}
            up = _pick(ups, repo_name, sources.get(name, (pipe.project, None)))
            if up is None:  # the input commit is gone (e.g. its commit set was deleted)
                child["origin"] = "unknown"
                node["inputs"].append(child)
                continue
            up_repo, up_commit = up
            child.update(project=up_repo.project, commit=up_commit.commit_id)
            up_entry = self.pfs.view(conn, up_commit).get(path)
            if up_entry is None:
                child["origin"] = "unknown"
            else:
                sub = self._node(conn, up_repo, up_commit, up_entry,
                                 None if depth is None else depth - 1, memo, prov_cache)
                child.update({k: v for k, v in sub.items() if k not in child})
            node["inputs"].append(child)
        return node

    def _sources(self, pipe: Row) -> dict[str, tuple[str, str]]:
        """Input name -> (project, branch) from the pipeline's spec: datum_runs records only
        input names and repo names, which is ambiguous when two inputs read one repo."""
        if pipe.id not in self._spec_sources:
            import json

            from tusk.pps.jobs import leaves, to_node
            from tusk.pps.spec import parse_spec

            spec = parse_spec(json.loads(pipe.spec), f"pipeline {pipe.name}")
            self._spec_sources[pipe.id] = {} if spec.input is None else {
                leaf.name: (leaf.project, leaf.branch) for leaf in leaves(to_node(spec.input))}
        return self._spec_sources[pipe.id]

    # -- downstream ---------------------------------------------------------------------------

    def downstream(self, ref: FileRef, superseded: bool = False) -> list[dict[str, Any]]:
        """Every output file that depends on this version of a file, recursively down the DAG.

        Only outputs still standing in their pipeline's latest successful job are listed, unless
        ``superseded``: then earlier outputs made from this version are listed too (marked
        ``current: false``).
        """
        with self.b.db.read() as conn:
            commit = self.pfs.resolve_commit(conn, ref.commit)
            repo = self.pfs.repo_of(conn, commit)
            e = self._entry(conn, repo, commit, ref.path, str(ref.commit))
            out: list[dict[str, Any]] = []
            latest: dict[int, tuple[trees.Tree, trees.Tree] | None] = {}
            seen: set[tuple[str, str, str, str]] = set()
            # Breadth first, so every output is listed at its shortest distance from the file.
            frontier = [(repo.project, repo.name, e.path, e.hash.hex(), 1)]
            while frontier:
                project, name, path, h, level = frontier.pop(0)
                for item in self._readers(conn, project, name, path, h, latest, superseded):
                    item.update(level=level, input={"project": project, "repo": name, "path": path,
                                                    "hash": h})
                    out.append(item)
                    k = (item["project"], item["repo"], item["path"], item.get("hash", ""))
                    if item.get("hash") and k not in seen:
                        seen.add(k)
                        frontier.append((item["project"], item["repo"], item["path"], item["hash"],
                                         level + 1))
            return out

    def _readers(self, conn: Connection, project: str, repo: str, path: str, h: str,
                 latest: dict[int, tuple[trees.Tree, trees.Tree] | None],
                 superseded: bool) -> list[dict[str, Any]]:
        """The outputs of the datum runs that read (project, repo, path) with content ``h``."""
        di, j, p, dr = s.datum_inputs, s.jobs, s.pipelines, s.datum_runs
        rows = conn.execute(
            select(di.c.job_pk, di.c.datum_id, j.c.job_id, j.c.commit_pk, j.c.state.label("job_state"),
                   j.c.version, p.c.id.label("pid"), p.c.project, p.c.name, dr.c.state, dr.c.outputs)
            .select_from(di.join(j, j.c.id == di.c.job_pk).join(p, p.c.id == j.c.pipeline_id)
                         .join(dr, (dr.c.job_pk == di.c.job_pk) & (dr.c.datum_id == di.c.datum_id)))
            .where(di.c.project == project, di.c.repo == repo, di.c.path == path, di.c.hash == h)
            .order_by(di.c.job_pk, di.c.datum_id)).all()
        out: list[dict[str, Any]] = []
        for r in dict.fromkeys(rows):  # one datum may read the same file once per input name
            if r.state != _SUCCESS:
                continue  # a failed or recovered datum left no output
            if r.pid not in latest:
                latest[r.pid] = self._latest(conn, r.pid)
            cur = latest[r.pid]
            standing = False
            if cur is not None:
                mapped = cur[1].get("/" + r.datum_id)
                standing = mapped is not None and mapped.size == r.job_pk and mapped.datum == _SUCCESS
            own: trees.Tree | None = None
            for out_path in msgpack.unpackb(r.outputs):
                e = cur[0].get(out_path) if standing and cur is not None else None
                current = e is not None and e.datum == r.datum_id
                if not current:
                    if not superseded:
                        continue
                    if own is None and r.job_state == "SUCCESS":
                        own = self.pfs.view(conn, self.pfs.commit_by_pk(conn, r.commit_pk))
                    e = own.get(out_path) if own is not None else None
                item: dict[str, Any] = {
                    "project": r.project, "repo": r.name, "path": out_path, "pipeline": r.name,
                    "pipeline_version": r.version, "job": r.job_id, "datum": r.datum_id,
                    "current": current}
                if e is not None and e.datum == r.datum_id:
                    item["hash"] = e.hash.hex()
                out.append(item)
        return out

    def _latest(self, conn: Connection, pipeline_id: int) -> tuple[trees.Tree, trees.Tree] | None:
        """(output tree, datum map) of a pipeline's latest successful job."""
        j = s.jobs
        job = conn.execute(select(j).where(j.c.pipeline_id == pipeline_id, j.c.state == "SUCCESS")
                           .order_by(j.c.id.desc()).limit(1)).first()
        if job is None:
            return None
        commit = self.pfs.commit_by_pk(conn, job.commit_pk)
        return self.pfs.view(conn, commit), trees.Tree(self.b.nodes, job.datum_map)

    # -- why datums ran -----------------------------------------------------------------------

    def explain(self, pps: PpsService, pipeline: str, job_id: str | None,
                project: str = "default") -> list[dict[str, Any]]:
        """Each datum of a job with why it ran or was skipped."""
        datums = pps.list_datums(pipeline, job_id, project)
        _pipe, job = pps._job_row(pipeline, job_id, project)
        with self.b.db.read() as conn:
            why = dict(conn.execute(select(s.datum_runs.c.datum_id, s.datum_runs.c.why).where(
                s.datum_runs.c.job_pk == job.id)).all())
        out = []
        for d in datums:
            row = d.to_dict()
            if d.state == "SKIPPED":
                row["why"] = UNCHANGED
            else:
                row["why"] = why.get(d.id) or "unknown"  # rows from before reasons were recorded
            out.append(row)
        return out


def _pick(ups: list[tuple[Row, Row]], repo_name: str,
          where: tuple[str, str | None]) -> tuple[Row, Row] | None:
    """The input commit of ``repo_name`` among a commit's provenance, preferring the project
    and branch the spec's input names (a spec changed since may no longer name them)."""
    project, branch = where
    found = [u for u in ups if u[0].name == repo_name]
    ranked = sorted(found, key=lambda u: (u[0].project != project, u[1].branch != branch))
    return ranked[0] if ranked else None
