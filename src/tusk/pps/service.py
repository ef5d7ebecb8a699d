"""The PPS façade: pipelines, jobs and datums, as every surface sees them.

Creating a pipeline validates the whole spec first (nothing is created for a refused spec),
then makes the output repo and an output branch whose provenance is the input branches: that
branch's first commit is the pipeline's initial job, and every later input commit propagates
a new one. The controller (``controller.py``) turns those open output commits into jobs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
from sqlalchemy import delete, func, select

from tusk.errors import FailedPrecondition, NotFound
from tusk.pfs import trees
from tusk.pfs.refs import CommitRef, FileRef, RepoRef
from tusk.pfs.service import PfsService
from tusk.pps import datums as dm
from tusk.pps import lifecycle
from tusk.pps.jobs import leaves, to_node
from tusk.pps.logs import LogLine, LogQuery, LogReader
from tusk.pps.model import DatumInfo, JobInfo, PipelineInfo
from tusk.pps.spec import PipelineSpec, parse_spec
from tusk.pps.supervisor import stop_recorded
from tusk.storage import schema as s

STATE_OF = {"success": "SUCCESS", "failed": "FAILED", "recovered": "RECOVERED"}


class PpsService:
    def __init__(self, pfs: PfsService) -> None:
        self.pfs = pfs
        self.b = pfs.b

    # -- pipelines ----------------------------------------------------------------------------

    def create_pipeline(self, spec: PipelineSpec, update: bool = False, reprocess: bool = False,
                        dry_run: bool = False, coming: frozenset[RepoRef] = frozenset(),
                        set_id: str | None = None) -> PipelineInfo:
        """Create (or update) a pipeline. ``coming``: repos that specs checked together with this
        one will create (a DAG in one file), which count as existing for a dry run. Inside a
        transaction the change is checked now and queued for 'finish transaction'
        (``txn_pipelines``); ``set_id`` is then the transaction's commit set, which the
        pipeline's first output commit (and job) joins."""
        if self.pfs.transaction is not None:
            from tusk.pps import txn_pipelines

            if dry_run:
                return txn_pipelines.check(self, spec, update, coming)
            return txn_pipelines.queue(self, spec, update, reprocess)
        from tusk.pps.create import create_pipeline

        return create_pipeline(self, spec, update, reprocess, dry_run, coming, set_id)

    def _repo_exists(self, ref: RepoRef) -> bool:
        try:
            self.pfs.inspect_repo(ref)
        except NotFound:
            return False
        return True

    def _find(self, project: str, name: str):  # type: ignore[no-untyped-def]
        with self.b.db.read() as conn:
            return conn.execute(select(s.pipelines).where(
                s.pipelines.c.project == project, s.pipelines.c.name == name)).first()

    def _row(self, name: str, project: str = "default"):  # type: ignore[no-untyped-def]
        row = self._find(project, name)
        if row is None:
            raise NotFound(f"pipeline {name} not found")
        return row

    def _info(self, row) -> PipelineInfo:  # type: ignore[no-untyped-def]
        spec = json.loads(row.spec)
        with self.b.db.read() as conn:
            last = conn.execute(select(s.jobs.c.state).where(s.jobs.c.pipeline_id == row.id)
                                .order_by(s.jobs.c.id.desc()).limit(1)).scalar()
        parsed = parse_spec(spec, f"pipeline {row.name}")
        repos = tuple(dict.fromkeys(leaf.repo for leaf in parsed.input.walk())) if parsed.input else ()
        return PipelineInfo(row.project, row.name, row.version, row.state, row.reason, spec,
                            row.created_at, row.updated_at, last, repos)

    def _info_of_spec(self, spec: PipelineSpec) -> PipelineInfo:
        now = time.time()
        repos = tuple(dict.fromkeys(leaf.repo for leaf in spec.input.walk())) if spec.input else ()
        return PipelineInfo(spec.project, spec.name, 0, "dry-run", "", spec.to_dict(), now, now, None, repos)

    def finish_transaction(self, txn_id: str | None = None):  # type: ignore[no-untyped-def]
        """Finish a transaction, pipelines included: ``PfsService.finish_transaction`` applies
        the commits, branches and repos; the queued pipeline changes follow (``txn_pipelines``)."""
        from tusk.pps import txn_pipelines

        return txn_pipelines.finish(self, txn_id)

    def inspect_pipeline(self, name: str, project: str = "default") -> PipelineInfo:
        return self._info(self._row(name, project))

    def list_pipelines(self, project: str | None = "default") -> list[PipelineInfo]:
        with self.b.db.read() as conn:
            q = select(s.pipelines).order_by(s.pipelines.c.created_at.desc())
            if project is not None:
                q = q.where(s.pipelines.c.project == project)
            rows = conn.execute(q).all()
        return [self._info(r) for r in rows]

    def delete_pipeline(self, name: str, project: str = "default", keep_repo: bool = False,
                        force: bool = False) -> None:
        row = self._row(name, project)
        if not force:
            lifecycle.check_no_dependents(self, name, project)
        ref = RepoRef(project, name)
        if not keep_repo and not force:
            # Checked before anything is deleted, so a refusal leaves the pipeline whole.
            with self.b.db.read() as conn:
                self.pfs.check_repo_deletable(conn, ref)
        with self.b.db.tx() as conn:
            lifecycle.kill_jobs(self, conn, s.jobs.c.pipeline_id == row.id, "pipeline was deleted")
            job_pks = select(s.jobs.c.id).where(s.jobs.c.pipeline_id == row.id)
            conn.execute(delete(s.datum_runs).where(s.datum_runs.c.job_pk.in_(job_pks)))
            conn.execute(delete(s.datum_inputs).where(s.datum_inputs.c.job_pk.in_(job_pks)))
            conn.execute(delete(s.restart_requests).where(s.restart_requests.c.job_pk.in_(job_pks)))
            conn.execute(delete(s.datum_tasks).where(s.datum_tasks.c.job_pk.in_(job_pks)))
            conn.execute(delete(s.jobs).where(s.jobs.c.pipeline_id == row.id))
            conn.execute(delete(s.pipeline_versions).where(s.pipeline_versions.c.pipeline_id == row.id))
            conn.execute(delete(s.pipelines).where(s.pipelines.c.id == row.id))
        stop_recorded(self.b.root, project, name)  # a spout or service: before its repo goes
        if keep_repo:
            for b in self.pfs.list_branches(ref):
                if b.provenance:
                    self.pfs.create_branch(ref, b.name, provenance=[])
        elif self._repo_exists(ref):
            self.pfs.delete_repo(ref, force=True)

    # -- lifecycle (pps/lifecycle.py) -----------------------------------------------------------

    def stop_pipeline(self, name: str, project: str = "default") -> PipelineInfo:
        info = lifecycle.stop_pipeline(self, name, project)
        # A spout's or service's process ends now, not when a controller next looks (the paused
        # state, written first, keeps the controller from restarting it).
        stop_recorded(self.b.root, project, name)
        return info

    def start_pipeline(self, name: str, project: str = "default") -> PipelineInfo:
        return lifecycle.start_pipeline(self, name, project)

    def rerun_pipeline(self, name: str, project: str = "default", reprocess: bool = False) -> PipelineInfo:
        return lifecycle.rerun_pipeline(self, name, project, reprocess)

    def pipeline_history(self, name: str | None = None, project: str | None = "default",
                         limit: int | None = None) -> list[PipelineInfo]:
        return lifecycle.history(self, name, project, limit)

    def stop_job(self, pipeline: str, job_id: str, project: str = "default") -> None:
        lifecycle.stop_job(self, pipeline, job_id, project)

    def delete_job(self, pipeline: str, job_id: str, project: str = "default") -> None:
        lifecycle.delete_job(self, pipeline, job_id, project)

    def restart_datum(self, pipeline: str, job_id: str, patterns: list[str], project: str = "default") -> None:
        lifecycle.restart_datum(self, pipeline, job_id, patterns, project)

    def draw(self, project: str | None = "default") -> str:
        return lifecycle.draw(self, project)

    def user_spec(self, name: str, project: str = "default") -> dict:
        """The spec as the user last wrote it (what 'edit pipeline' opens)."""
        return json.loads(self._row(name, project).user_spec)

    def run_cron(self, name: str, project: str = "default") -> list[tuple[str, str]]:
        from tusk.pps.cron import run_cron

        return run_cron(self, name, project)

    # -- jobs ---------------------------------------------------------------------------------

    def _job_info(self, conn, job, pipe) -> JobInfo:  # type: ignore[no-untyped-def]
        return JobInfo(pipe.project, pipe.name, job.job_id, job.version, job.state, job.reason,
                       job.processed, job.skipped, job.failed, job.recovered, job.total,
                       job.created_at, job.started_at, job.finished_at, job.job_id,
                       job.image or "")

    def list_jobs(self, pipeline: str | None = None, job_id: str | None = None,
                  project: str = "default", number: int = 0) -> list[JobInfo]:
        with self.b.db.read() as conn:
            q = (select(s.jobs, s.pipelines.c.project, s.pipelines.c.name)
                 .select_from(s.jobs.join(s.pipelines, s.jobs.c.pipeline_id == s.pipelines.c.id))
                 .order_by(s.jobs.c.id.desc()))
            if pipeline is not None:
                q = q.where(s.pipelines.c.id == self._row(pipeline, project).id)
            if job_id is not None:
                q = q.where(s.jobs.c.job_id == job_id)
            if number:
                q = q.limit(number)
            rows = conn.execute(q).all()
            return [self._job_info(conn, r, r) for r in rows]

    def inspect_job(self, pipeline: str, job_id: str, project: str = "default", wait: bool = False,
                    timeout: float | None = None) -> JobInfo:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            jobs = self.list_jobs(pipeline, job_id, project)
            if not jobs:
                raise NotFound(f"job {pipeline}@{job_id} not found")
            if not wait or jobs[0].done:
                return jobs[0]
            if deadline is not None and time.monotonic() > deadline:
                raise FailedPrecondition(f"timed out waiting for job {pipeline}@{job_id}")
            time.sleep(0.1)

    def subscribe_jobs(self, pipeline: str | None = None, project: str = "default",
                       new_only: bool = False, timeout: float | None = None) -> Iterator[JobInfo]:
        """Yield a job when it appears and again each time its state or progress changes
        (of one pipeline, or all); runs until ``timeout`` seconds pass, or forever.

        Each poll reads only from the oldest job still running on, so a long history costs
        nothing once its jobs are done.
        """
        jobs, pipes = s.jobs, s.pipelines
        pipe_id = self._row(pipeline, project).id if pipeline is not None else None
        deadline = None if timeout is None else time.monotonic() + timeout
        floor = 0
        if new_only:
            with self.b.db.read() as conn:
                floor = conn.execute(select(func.max(jobs.c.id))).scalar() or 0
        last: dict[int, tuple] = {}
        while True:
            with self.b.db.read() as conn:
                q = (select(jobs, pipes.c.project, pipes.c.name)
                     .select_from(jobs.join(pipes, jobs.c.pipeline_id == pipes.c.id))
                     .where(jobs.c.id > floor).order_by(jobs.c.id))
                if pipe_id is not None:
                    q = q.where(jobs.c.pipeline_id == pipe_id)
                rows = conn.execute(q).all()
            running: list[int] = []
            for r in rows:
                info = self._job_info(None, r, r)
                key = (info.state, info.processed, info.skipped, info.failed, info.recovered,
                       info.total, info.reason)
                if last.get(r.id) != key:
                    last[r.id] = key
                    yield info
                if not info.done:
                    running.append(r.id)
            if rows:
                floor = (min(running) - 1) if running else rows[-1].id
                last = {k: v for k, v in last.items() if k > floor}
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(0.2)

    def _job_row(self, pipeline: str, job_id: str | None, project: str):  # type: ignore[no-untyped-def]
        pipe = self._row(pipeline, project)
        with self.b.db.read() as conn:
            q = select(s.jobs).where(s.jobs.c.pipeline_id == pipe.id)
            q = q.where(s.jobs.c.job_id == job_id) if job_id else q.order_by(s.jobs.c.id.desc()).limit(1)
            job = conn.execute(q).first()
        if job is None:
            raise NotFound(f"job {pipeline}@{job_id or 'latest'} not found")
        return pipe, job

    def list_datums(self, pipeline: str, job_id: str | None = None, project: str = "default") -> list[DatumInfo]:
        """Every datum of a job with its state (SKIPPED when an earlier job's output stands)."""
        pipe, job = self._job_row(pipeline, job_id, project)
        runs: dict[tuple[int, str], object] = {}
        with self.b.db.read() as conn:
            for r in conn.execute(select(s.datum_runs).where(s.datum_runs.c.job_pk == job.id)):
                runs[(job.id, r.datum_id)] = r
            job_ids = dict(conn.execute(select(s.jobs.c.id, s.jobs.c.job_id).where(
                s.jobs.c.pipeline_id == pipe.id)).all())
        out: list[DatumInfo] = []
        seen: set[str] = set()
        entries = list(trees.Tree(self.b.nodes, job.datum_map))
        # Skipped datums show the files of the run whose output they kept.
        earlier: dict[int, list[str]] = {}
        for e in entries:
            if e.size != job.id:
                earlier.setdefault(e.size, []).append(e.path[1:])
        with self.b.db.read() as conn:
            for pk, ids in earlier.items():
                for i in range(0, len(ids), 500):
                    for r in conn.execute(select(s.datum_runs).where(
                            s.datum_runs.c.job_pk == pk, s.datum_runs.c.datum_id.in_(ids[i:i + 500]))):
                        runs[(pk, r.datum_id)] = r
        for e in entries:
            did = e.path[1:]
            seen.add(did)
            r = runs.get((e.size, did))
            if e.size == job.id and r is not None:
                out.append(self._datum_info(r, job.job_id))
            elif r is not None:
                info = self._datum_info(r, job_ids.get(e.size, ""))
                out.append(DatumInfo(did, "SKIPPED", info.job, info.files, info.outputs))
            else:
                out.append(DatumInfo(did, "SKIPPED", job_ids.get(e.size, "")))
        for (pk, did), r in runs.items():  # datums of a job that failed before its map was saved
            if did not in seen:
                out.append(self._datum_info(r, job.job_id))
        return out

    def inspect_datum(self, pipeline: str, job_id: str, datum: str,
                      project: str = "default") -> DatumInfo:
        """One datum of a job, by ID or unique prefix, with the last stderr lines of its last
        attempt in ``extra["stderr"]`` (a skipped datum's come from the job that ran it)."""
        from dataclasses import replace

        from tusk.pps.logs import TAIL_LINES, find_datum, stderr_tail

        d = find_datum(self, pipeline, job_id, datum, project)
        tail = stderr_tail(self.b.root, project, pipeline, d.job or job_id, d.id, TAIL_LINES)
        return replace(d, extra={**d.extra, "stderr": tail})

    def _datum_info(self, r, job_id: str) -> DatumInfo:  # type: ignore[no-untyped-def]
        inputs = msgpack.unpackb(r.inputs)
        return DatumInfo(r.datum_id, STATE_OF.get(r.state, r.state.upper()), job_id,
                         tuple(f"{name}:{path}" for name, _repo, path, _h in inputs),
                         tuple(msgpack.unpackb(r.outputs)), r.reason, r.attempts,
                         r.finished_at - r.started_at)

    def preview_datums(self, spec: PipelineSpec) -> list[DatumInfo]:
        """The datums a spec would have on the current input heads (creates nothing)."""
        if spec.input is None:
            return []
        node = to_node(spec.input)
        trees_of: dict[tuple[str, str, str], trees.Tree] = {}
        for leaf in leaves(node):
            key = (leaf.project, leaf.repo, leaf.branch)
            try:
                with self.b.db.read() as conn:
                    row = self.pfs.resolve_commit(conn, CommitRef(RepoRef(leaf.project, leaf.repo), leaf.branch))
                    trees_of[key] = self.pfs.view(conn, row)
            except NotFound:
                trees_of[key] = trees.Tree(self.b.nodes, None)

        def listing(src: dm.PfsSource) -> list[dm.FileRecord]:
            return [dm.FileRecord(e.path, e.hash, e.size) for e in trees_of[(src.project, src.repo, src.branch)]]

        return [DatumInfo(d.id, "PREVIEW", "", tuple(f"{di.name}:{di.path}" for di in d.inputs))
                for d in dm.plan(node, listing)]

    def logs(self, pipeline: str, job_id: str | None = None, datum: str | None = None,
             project: str = "default", inputs: tuple[str, ...] = (),
             follow: bool = False) -> Iterator[LogLine]:
        """Timestamped lines of user code, oldest job first (see ``tusk.pps.logs``).

        ``job_id`` and ``datum`` may be ID prefixes; ``inputs`` are input file paths a datum
        must have. ``follow`` keeps yielding new lines: until ``job_id`` finishes, or forever.
        """
        self._row(pipeline, project)  # an unknown pipeline is an error, not an empty log
        reader = LogReader(self, LogQuery(pipeline, project, job_id, datum, inputs))
        return reader.follow() if follow else reader.lines()

    def log_dir(self) -> Path:
        return self.b.root / "logs"

    # -- lineage (pps/lineage.py) -------------------------------------------------------------

    def lineage(self, ref: FileRef, depth: int | None = None) -> dict[str, Any]:
        """Where a file came from: the datum, job and input files, recursively up the DAG."""
        from tusk.pps.lineage import Lineage

        return Lineage(self.pfs).upstream(ref, depth)

    def lineage_downstream(self, ref: FileRef, superseded: bool = False) -> list[dict[str, Any]]:
        """Every output file made from this version of a file, recursively down the DAG."""
        from tusk.pps.lineage import Lineage

        return Lineage(self.pfs).downstream(ref, superseded)

    def explain_job(self, pipeline: str, job_id: str | None = None,
                    project: str = "default") -> list[dict[str, Any]]:
        """Each datum of a job with why it ran or was skipped."""
        from tusk.pps.lineage import Lineage

        return Lineage(self.pfs).explain(self, pipeline, job_id, project)
