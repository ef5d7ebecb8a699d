"""Running one job: plan datums, skip what is unchanged, run the rest, build the output commit.

Incremental processing follows Pachyderm 2.x: the *base* is the pipeline's last successful
job. A datum whose ID and hash match a datum the base processed successfully (or whose failure
err_cmd recovered) is skipped and its output stays. A changed datum has its old output
retracted and runs again. A datum that disappeared has its output removed. Each job keeps a *datum map* (a tree, like a commit's:
``/<datum id> -> (hash, state, job that ran it)``), so a job that changes k of n datums writes
O(k) map data and planning does not depend on how many jobs came before.

Everything a job produces lands in one metadata transaction at the end: the output commit's
tree, the datum map, the lineage rows and the job's final state. A controller killed mid-job
leaves the job RUNNING with an open output commit, and the next controller simply runs it again.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
from sqlalchemy import Row, select, update

from tusk.errors import FailedPrecondition, NotFound
from tusk.images.store import ImageStore
from tusk.pfs import trees
from tusk.pfs.merge import Listing
from tusk.pfs.service import PfsService
from tusk.pps import datums as dm
from tusk.pps import image_use, logs, secrets
from tusk.pps.egress import run_job_egress
from tusk.pps.incremental import affected
from tusk.pps.lineage import why_ran
from tusk.pps.outcomes import (
    FAILED,
    RECOVERED,
    STOPPED,
    SUCCESS,
    DatumResult,
    HeldOutcomes,
    Outcomes,
    Tally,
    cut_short,
)
from tusk.pps.spec import PipelineSpec, parse_spec
from tusk.pps.spec_inputs import (
    CronInput,
    CrossInput,
    GroupInput,
    Input,
    JoinInput,
    PfsInput,
    UnionInput,
)
from tusk.pps.tasks import TaskTable
from tusk.pps.watch import JobWatch
from tusk.pps.workspace import ContentCache, OutputError, harvest, materialize, reset
from tusk.storage import schema as s
from tusk.workers.base import ImageRoot, Invocation, Runtime, Workspace
from tusk.workers.runtimes import Runtimes

# Datum states a later job skips (same ID and hash): as in Pachyderm, a datum that err_cmd
# recovered is done with, like a processed one; 'rerun pipeline --reprocess' runs it again.
DONE = (SUCCESS, RECOVERED)


def to_node(inp: Input) -> dm.Node:
    """The planner's view of a spec's input tree."""
    if isinstance(inp, PfsInput):
        return dm.PfsSource(inp.name, inp.repo, inp.branch, inp.glob, inp.project, inp.join_on,
                            inp.outer_join, inp.group_by, inp.lazy, inp.empty_files)
    if isinstance(inp, CronInput):
        return dm.PfsSource(inp.name, inp.repo, "master", "/*", inp.project)
    kids = tuple(to_node(c) for c in inp.children)
    if isinstance(inp, CrossInput):
        return dm.Cross(kids)
    if isinstance(inp, UnionInput):
        return dm.Union(kids)
    if isinstance(inp, JoinInput):
        return dm.Join(kids)  # type: ignore[arg-type]
    if isinstance(inp, GroupInput):
        return dm.Group(kids)  # type: ignore[arg-type]
    raise TypeError(f"unknown input {inp!r}")


def leaves(node: dm.Node) -> list[dm.PfsSource]:
    if isinstance(node, dm.PfsSource):
        return [node]
    return [leaf for child in node.inputs for leaf in leaves(child)]


class JobRunner:
    """Executes jobs for one root; the controller calls ``run(job_row)``."""

    def __init__(self, pfs: PfsService, runtimes: Runtimes,
                 say: Callable[[str], None] = lambda m: None) -> None:
        self.pfs = pfs
        self.b = pfs.b
        self.runtimes = runtimes
        self.runtime: Runtime | None = None  # the running job's pipeline's (one job at a time)
        self.image: ImageRoot | None = None  # the running job's image, for a runtime that honours it
        # The running job's secrets: variables, and files by mount path (pps/secrets.py).
        self.secrets: tuple[dict[str, str], dict[str, dict[str, bytes]]] = ({}, {})
        self.say = say
        self.cache = ContentCache(self.b.root / "cache", self.b.reader())
        self._watch: JobWatch | None = None  # the running job's watch (one job at a time)
        # Datums run as durable tasks on worker processes, unless a runtime object was handed
        # in (it cannot travel to another process) or TUSK_WORKERS=0 keeps them in threads.
        self.use_tasks = runtimes.fixed is None and os.environ.get("TUSK_WORKERS") != "0"
        from tusk.pps.task_run import WorkerPool

        self.pool = WorkerPool(self.b.root, float(os.environ.get("TUSK_CONTROLLER_IDLE", "20")))

    def warm(self) -> None:
        """Start one worker now if pipelines may soon have datums: a controller is started
        because something changed, and the worker's start-up (imports, ~0.5 s) then overlaps
        the controller's own work instead of following it."""
        if not self.use_tasks:
            return
        with self.b.db.read() as conn:
            running = conn.execute(select(s.pipelines.c.id).where(
                s.pipelines.c.state == "running").limit(1)).first()
        if running is not None:
            self.pool.ensure(1)

    # -- inputs -------------------------------------------------------------------------------

    def input_trees(self, commit_pk: int, node: dm.Node | None = None,
                    ) -> dict[tuple[str, str, str], tuple[str, trees.Tree]]:
        """(project, repo, branch) -> (commit id, tree) for the commits a job's output came from.

        Keyed by the branch each commit was made on. With ``node``, each input's branch is also
        a key: a commit made on ``staging`` and then made ``master``'s head (deferred
        processing) is what an input reading ``master`` sees.
        """
        with self.b.db.read() as conn:
            out = self.pfs.output.input_trees(conn, commit_pk)
        for leaf in leaves(node) if node is not None else ():
            key = (leaf.project, leaf.repo, leaf.branch)
            same_repo = [k for k in list(out) if k[:2] == key[:2]]
            if key not in out and len(same_repo) == 1:
                out[key] = out[same_repo[0]]
        return out

    # -- the job ------------------------------------------------------------------------------

    def run(self, job: Row) -> str:
        """Run a job to a terminal state; returns that state."""
        db = self.b.db
        if job.state == "EGRESSING":
            # A controller died mid-egress: the output commit is sealed, copying it again is safe.
            state, reason = run_job_egress(self.pfs, job, self.say)
            self.say(f"job {job.job_id}: {state}{': ' + reason if reason else ''}")
            return state
        with db.read() as conn:
            pipe = conn.execute(select(s.pipelines).where(s.pipelines.c.id == job.pipeline_id)).one()
            base = conn.execute(
                select(s.jobs).where(s.jobs.c.pipeline_id == job.pipeline_id, s.jobs.c.id < job.id,
                                     s.jobs.c.state == "SUCCESS").order_by(s.jobs.c.id.desc()).limit(1)
            ).first()
        spec = parse_spec(json.loads(pipe.spec), f"pipeline {pipe.name}")
        node = to_node(spec.input) if spec.input is not None else None
        inputs = self.input_trees(job.commit_pk, node)
        entries: dict[tuple[str, str, str], dict[str, trees.Entry]] = {}

        def listing(src: dm.PfsSource) -> list[dm.FileRecord]:
            key = (src.project, src.repo, src.branch)
            if key not in entries:
                found = inputs.get(key)
                entries[key] = {} if found is None else {e.path: e for e in found[1]}
            return [dm.FileRecord(e.path, e.hash, e.size) for e in entries[key].values()]

        nodes = self.b.nodes
        base_map = trees.Tree(nodes, base.datum_map if base is not None else None)
        salt = pipe.salt
        # Why each datum that runs does (lineage.why_ran), recorded with its datum_runs row.
        why: dict[str, str] = {}
        base_salt = base.salt if base is not None else None
        fast = self._changed_only(job, base, node, spec, inputs)
        if fast is not None:
            # Only the datums touched by what changed since the base job (see incremental.py).
            key, new_tree, changed, gone_ids = fast
            to_run, base_runs, gone, new_ids = [], {}, [], 0
            for d in changed:
                e = base_map.get("/" + d.id)
                if e is None:
                    new_ids += 1
                else:
                    base_runs[d.id] = e.size
                if e is None or e.datum not in DONE or e.hash.hex() != d.hash(salt):
                    to_run.append(d)
                    why[d.id] = why_ran(d, None if e is None else e.datum,
                                       None if e is None else e.hash.hex(), salt, base_salt)
            for did in gone_ids:
                e = base_map.get("/" + did)
                if e is not None:
                    base_runs[did] = e.size
                    gone.append(did)
            total = base_map.count + new_ids - len(gone)
            entries[key] = {f.path: new_tree.get(f.path) for d in to_run for di in d.inputs
                            for f in di.files}
        else:
            datums = dm.plan(node, listing) if node is not None else []
            previous: dict[str, str] = {}
            base_runs = {}  # datum id -> job pk that produced its current output
            base_states: dict[str, str] = {}
            for e in base_map:
                did = e.path[1:]
                base_runs[did] = e.size
                base_states[did] = e.datum
                if e.datum in DONE:
                    previous[did] = e.hash.hex()
            to_run, _skipped, _ = dm.diff_datums(previous, datums, salt)
            if spec.reprocess_spec == "every_job":
                to_run = list(datums)
            for d in to_run:
                why[d.id] = why_ran(d, base_states.get(d.id), previous.get(d.id), salt, base_salt)
            current_ids = {d.id for d in datums}
            gone = [did for did in base_runs if did not in current_ids]
            total = len(datums)
        skipped = total - len(to_run)
        now = time.time()
        with db.tx() as conn:
            conn.execute(update(s.jobs).where(s.jobs.c.id == job.id).values(
                state="RUNNING", started_at=now, total=total, skipped=skipped,
                processed=0, failed=0, recovered=0, salt=salt))
        # The output commit the datums' listings are merged into, onto the base job's output.
        output = self.pfs.output.open(job.commit_pk, None if base is None else base.commit_pk)
        self.say(f"job {pipe.name}@{job.job_id}: {total} datums, {len(to_run)} to run,"
                 f" {skipped} skipped")

        # Held shared while this job writes content, as every PFS writer holds it: gc (which
        # takes it exclusively) must not free a chunk the outputs deduplicated against before
        # the output commit names it.
        with self.b.data_lock():
            writer = self.b.writer()
            lock = threading.Lock()
            commit_ids = {k: v[0] for k, v in inputs.items()}
            deadline = None if spec.job_timeout is None else time.monotonic() + spec.job_timeout
            outcome = self._run_datums(job, pipe, spec, to_run, entries, commit_ids, writer, lock, salt, deadline)
            # Sealing closes the open small-file bundle, which fills in the chunk digests of the
            # outputs written into it: it must happen before those entries go into any tree.
            content = writer.seal()

            # -- the output: each datum's listing, merged onto the base by PFS -----------------
            retract = [d.id for d in to_run if d.id in base_runs] + gone
            outputs_of = self._outputs_of(retract, base_runs)
            listings = {did: Listing(did, (), tuple(outputs_of.get(did, ()))) for did in retract}
            for lst in outcome.listings():  # held in memory; the others are on the commit
                before = listings.get(lst.datum_id)
                listings[lst.datum_id] = Listing(lst.datum_id, lst.entries,
                                                 before.retract if before is not None else ())
            # One pass over the results (a batch at a time): the job's counts and its datum map.
            tally = Tally()
            map_ops: dict[str, trees.Op] = {}
            for batch in outcome.batches():
                for r in batch:
                    tally.add(r)
                    if r.state in (SUCCESS, FAILED, RECOVERED):
                        map_ops["/" + r.datum.id] = trees.Op(trees.PUT, trees.Entry(
                            "/" + r.datum.id, job.id, bytes.fromhex(r.hash), [], r.state))
            for did in gone:
                map_ops["/" + did] = trees.Op(trees.DELETE)
            map_res = trees.apply(nodes, base.datum_map if base is not None else None, sorted(map_ops.items()))
            del map_ops
            failure = ""
            first = tally.first_failed
            if first is not None:
                failure = (f"{tally.failed} of {total} datum(s) failed; first: datum"
                           f" {first.datum.id[:12]} ({_describe(first.datum)}) failed after"
                           f" {first.attempts} attempt(s): {first.reason}")
            if deadline is not None and time.monotonic() > deadline and not failure:
                failure = f"job_timeout of {spec.job_timeout:g}s exceeded"
            merged = output.prepare(listings.values(), failure)
            reason = merged.error

            state = "FAILURE" if reason else "SUCCESS"
            if deadline is not None and time.monotonic() > deadline:
                state = "KILLED"
            # With egress, the job is done only once its sealed output has been copied out too.
            egressing = state == "SUCCESS" and bool(spec.egress)
            with db.tx() as conn:
                current = conn.execute(select(s.jobs.c.state).where(s.jobs.c.id == job.id)).scalar()
                if current != "RUNNING":
                    return current or "KILLED"  # stopped or deleted meanwhile
                # The job's datum map is a tree too: its nodes land with the output's.
                output.seal(conn, merged, content, extra_nodes=map_res.nodes)
                for batch in outcome.batches(conn):
                    self._record_runs(conn, job.id, batch, why)
                TaskTable(db).drop(conn, job.id)  # recorded above as datum runs
                conn.execute(update(s.jobs).where(s.jobs.c.id == job.id).values(
                    state="EGRESSING" if egressing else state, reason=reason,
                    finished_at=None if egressing else time.time(), datum_map=map_res.root,
                    processed=tally.processed, failed=tally.failed, recovered=tally.recovered))
        if egressing:
            state, reason = run_job_egress(self.pfs, job, self.say)
        self.say(f"job {pipe.name}@{job.job_id}: {state}{': ' + reason if reason else ''}")
        return state

    @staticmethod
    def _record_runs(conn, job_pk: int, batch: list[DatumResult], why: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
        """The datum runs of ``batch``, and the reverse lineage index: which datum runs read
        each input file version."""
        if not batch:
            return
        conn.execute(s.datum_runs.insert(), [{
            "job_pk": job_pk, "datum_id": r.datum.id, "state": r.state, "hash": r.hash,
            "attempts": r.attempts, "reason": r.reason, "started_at": r.started,
            "finished_at": r.finished,
            "inputs": msgpack.packb([[di.name, di.repo, f.path, f.hash] for di in r.datum.inputs
                                      for f in di.files]),
            "outputs": msgpack.packb(r.paths()),
            "why": why.get(r.datum.id, ""),
        } for r in batch])
        read = [{"project": di.project, "repo": di.repo, "path": f.path, "hash": f.hash.hex(),
                 "job_pk": job_pk, "datum_id": r.datum.id}
                for r in batch for di in r.datum.inputs for f in di.files]
        if read:
            conn.execute(s.datum_inputs.insert(), read)

    def _changed_only(self, job: Row, base: Row | None, node: dm.Node | None, spec: PipelineSpec,
                      inputs: dict):  # type: ignore[no-untyped-def]
        """Plan from the input diff when that is exact: one pfs input, same pipeline version as
        the base job, skipping allowed."""
        if (not isinstance(node, dm.PfsSource) or base is None or base.version != job.version
                or spec.reprocess_spec == "every_job"):
            return None
        key = (node.project, node.repo, node.branch)
        old, new = self.input_trees(base.commit_pk, node).get(key), inputs.get(key)
        if old is None or new is None:
            return None
        changed, gone = affected(node, old[1], new[1])
        return key, new[1], changed, gone

    def _outputs_of(self, datum_ids: list[str], runs: dict[str, int]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        by_job: dict[int, list[str]] = {}
        for did in datum_ids:
            by_job.setdefault(runs[did], []).append(did)
        t = s.datum_runs
        with self.b.db.read() as conn:
            for job_pk, ids in by_job.items():
                for i in range(0, len(ids), 500):
                    for did, blob in conn.execute(select(t.c.datum_id, t.c.outputs).where(
                            t.c.job_pk == job_pk, t.c.datum_id.in_(ids[i:i + 500]))):
                        out[did] = msgpack.unpackb(blob)
        return out

    # -- datums -------------------------------------------------------------------------------

    def _run_datums(self, job: Row, pipe: Row, spec: PipelineSpec, todo: list[dm.Datum],
                    entries: dict, commit_ids: dict, writer, lock: threading.Lock, salt: str,  # type: ignore[no-untyped-def]
                    deadline: float | None) -> Outcomes:
        if not todo:
            return HeldOutcomes([])
        try:
            self.runtime = self.runtimes.for_pipeline(spec)
            self.secrets = secrets.for_datum(secrets.SecretStore(self.b.root), spec)
            self.image = None
            if self.runtime.capabilities.honours_image:
                self.image = self._resolve_image(job, spec)
        except (FailedPrecondition, NotFound) as e:  # cannot run here: say how to fix
            now = time.time()
            return HeldOutcomes([DatumResult(d, FAILED, d.hash(salt), reason=e.message,
                                             started=now, finished=now) for d in todo])
        if self.use_tasks and not spec.transform.datum_batching:
            # Durable datum tasks run by worker processes (task_run.py, worker.py).
            from tusk.pps.task_run import run_as_tasks

            return run_as_tasks(self, job, spec, todo, entries, commit_ids, salt, deadline)
        # Stop requests and datum restarts come from other processes (see watch.py).
        self._watch = JobWatch(self.b.db, job.id)
        log_dir = self.b.root / "logs" / pipe.project / pipe.name / job.job_id
        log_dir.mkdir(parents=True, exist_ok=True)
        # A fresh scratch directory per run: processes orphaned by a killed controller (the
        # process runtime cannot take them down with it) may still write into the old one.
        work_root = self.b.root / "work"
        for stale in work_root.glob(f"{job.id}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        work = work_root / f"{job.id}-{uuid.uuid4().hex[:8]}"
        if spec.transform.datum_batching:
            # One long-lived user process per slot, fed datums over a socket (batching.py).
            from tusk.pps.batching import run_batched

            try:
                results = run_batched(self, job, spec, todo, entries, commit_ids, writer, lock,
                                      salt, work, log_dir, deadline)
            finally:
                self._watch.close()
            shutil.rmtree(work, ignore_errors=True)
            return HeldOutcomes(results)
        slots = list(range(max(1, spec.parallelism)))
        free = list(slots)
        slot_lock = threading.Lock()
        # Live counts for 'list job' while the job runs. A datum cut short by 'stop' counts as
        # nothing, so a killed job shows what it really finished.
        progress = {"done": 0, SUCCESS: 0, FAILED: 0, RECOVERED: 0}

        def one(d: dm.Datum) -> DatumResult:
            with slot_lock:
                slot = free.pop()
            try:
                ws = Workspace(work / str(slot))
                r = self._run_datum(job, spec, d, ws, entries, commit_ids, writer, lock, salt,
                                    log_dir / f"{d.id}.log", deadline)
            finally:
                with slot_lock:
                    free.append(slot)
            with slot_lock:
                progress["done"] += 1
                if not cut_short(r):
                    progress[r.state] += 1
                if progress["done"] % 50 == 0 or progress["done"] == len(todo):
                    self._progress(job.id, progress[SUCCESS], progress[FAILED], progress[RECOVERED])
            return r

        try:
            with ThreadPoolExecutor(max_workers=len(slots)) as pool:
                results = list(pool.map(one, todo))
        finally:
            self._watch.close()
        shutil.rmtree(work, ignore_errors=True)
        return HeldOutcomes(results)

    def _resolve_image(self, job: Row, spec: PipelineSpec) -> ImageRoot:
        """Resolve the spec's image to its digest now (a tag pushed anew since the last job
        gives the new image), make sure its root is unpacked, and record it on the job. A job
        run again after a crash keeps the digest it started with."""
        store = ImageStore(self.b.root)
        if job.image_id:
            try:
                return store.root_of(job.image_id)
            except NotFound:
                pass
        resolved, root = image_use.fetch(self.b.root, spec)
        with self.b.db.tx() as conn:
            conn.execute(update(s.jobs).where(s.jobs.c.id == job.id).values(
                image=resolved.pinned, image_id=resolved.image_id))
        self.say(f"job {job.job_id}: image {spec.transform.image} is {resolved.pinned}"
                 f" (from {resolved.source})")
        return root

    def _progress(self, job_pk: int, processed: int, failed: int, recovered: int) -> None:
        with self.b.db.tx() as conn:
            conn.execute(update(s.jobs).where(s.jobs.c.id == job_pk)
                         .values(processed=processed, failed=failed, recovered=recovered))

    def _run_datum(self, job: Row, spec: PipelineSpec, d: dm.Datum, ws: Workspace, entries: dict,
                   commit_ids: dict, writer, lock: threading.Lock, salt: str, log: Path,  # type: ignore[no-untyped-def]
                   deadline: float | None, used: int = 0,
                   on_attempt: Callable[[int], bool] | None = None) -> DatumResult:
        """Run one datum to its result: up to ``datum_tries`` attempts, of which ``used`` were
        already spent (by workers that were lost), then ``err_cmd``. ``on_attempt`` is asked
        before each attempt (a worker counts it in the task table) and False stops."""
        t = spec.transform
        result = DatumResult(d, FAILED, d.hash(salt), started=time.time())
        env = {**datum_env(job, spec, d, commit_ids), **self.secrets[0]}
        by_name = inputs_by_name(d, entries)
        names = list(dict.fromkeys(di.name for di in d.inputs))
        runtime = self.runtime
        assert runtime is not None, "datums run inside _run_datums"
        # Links into the shared cache only where the runtime shows inputs read-only.
        link = runtime.capabilities.links_inputs
        # The log names its input files first, so 'logs --inputs' works while the job runs.
        logs.write_header(log, [(di.name, di.repo, f.path, f.hash) for di in d.inputs for f in di.files])
        watch = self._watch
        assert watch is not None, "datums run inside _run_datums"
        paths = tuple(f.path for di in d.inputs for f in di.files)
        limits = spec.limits()
        attempt = used
        while attempt < spec.datum_tries:
            attempt += 1
            if on_attempt is not None and not on_attempt(attempt):
                watch.halt()
            if watch.stopped.is_set():
                result.reason = f"not run: {STOPPED}"
                break
            if deadline is not None and time.monotonic() >= deadline:
                # The job is out of time: do not start more work, just account for the datum.
                result.reason = f"not run: job_timeout of {spec.job_timeout:g}s exceeded"
                break
            result.attempts = attempt
            timeout = spec.datum_timeout
            if deadline is not None:
                left = max(0.1, deadline - time.monotonic())
                timeout = left if timeout is None else min(timeout, left)
            reset(ws)
            for di in d.inputs:
                src_entries = [entries[(di.project, di.repo, di.branch)][f.path] for f in di.files]
                materialize(ws, di.name, src_entries, self.cache, link, _empty(spec, di.name))
            inv = Invocation(list(t.cmd), list(t.stdin), env, t.working_dir, timeout, names, attempt,
                             limits=limits, image=self.image, user=str(t.extras.get("user") or ""),
                             secret_files=self.secrets[1])
            inv.cancel = watch.attempt(d.id, paths)
            outcome = runtime.run(ws, inv, log)
            restarted = watch.finished(d.id)
            if outcome.cancelled:
                if restarted and not watch.stopped.is_set():
                    attempt -= 1  # 'restart datum': run it again without using up a try
                    continue
                result.reason = STOPPED
                break
            ok = not outcome.timed_out and not outcome.limit and (outcome.returncode == 0
                                            or outcome.returncode in t.accept_return_code)
            if ok:
                try:
                    result.outputs = harvest(ws, d.id, writer, lock, by_name)
                except OutputError as e:
                    result.reason = str(e)
                    break
                result.state = SUCCESS
                break
            result.reason = (outcome.error or outcome.limit
                             or (f"timed out after {timeout:g}s" if outcome.timed_out
                                 else f"exit code {outcome.returncode}"))
            result.reason = logs.with_stderr(result.reason, outcome.stderr_tail)
        if result.state == FAILED and t.err_cmd and result.attempts and not watch.stopped.is_set():
            inv = Invocation(list(t.err_cmd), list(t.err_stdin), env, t.working_dir, spec.datum_timeout, names,
                             result.attempts, limits=limits, image=self.image,
                             user=str(t.extras.get("user") or ""), secret_files=self.secrets[1])
            outcome = runtime.run(ws, inv, log)
            if outcome.returncode == 0 and not outcome.timed_out and not outcome.limit:
                result.state = RECOVERED
                result.outputs = []
        result.finished = time.time()
        return result


def datum_env(job: Row, spec: PipelineSpec, d: dm.Datum, commit_ids: dict) -> dict[str, str]:  # type: ignore[type-arg]
    """The environment user code sees for datum ``d`` (Pachyderm's ``UserCodeEnv``)."""
    env = {**spec.transform.env, "PACH_JOB_ID": job.job_id, "PACH_DATUM_ID": d.id,
           "PACH_OUTPUT_COMMIT_ID": job.job_id, "PACH_PIPELINE_NAME": spec.name}
    for di in d.inputs:
        env[di.name] = f"/pfs/{di.name}" + ("" if di.path == "/" else di.path)
        env[f"{di.name}_COMMIT"] = commit_ids.get((di.project, di.repo, di.branch), "")
        if di.join_key:
            env[f"PACH_DATUM_{di.name}_JOIN_ON"] = di.join_key
        if di.group_key:
            env[f"PACH_DATUM_{di.name}_GROUP_BY"] = di.group_key
    return env


def inputs_by_name(d: dm.Datum, entries: dict) -> dict[str, dict[str, trees.Entry]]:  # type: ignore[type-arg]
    """Input name -> path -> entry of a datum's files (to materialise and resolve links)."""
    by_name: dict[str, dict[str, trees.Entry]] = {}
    for di in d.inputs:
        src = entries[(di.project, di.repo, di.branch)]
        by_name.setdefault(di.name, {}).update({f.path: src[f.path] for f in di.files})
    return by_name


def _describe(d: dm.Datum, limit: int = 3) -> str:
    """A datum's matched input paths for messages: "in:/a.txt, other:/dir" (at most ``limit``)."""
    files = [f"{di.name}:{di.path}" for di in d.inputs]
    more = f" and {len(files) - limit} more" if len(files) > limit else ""
    return ", ".join(files[:limit]) + more


def _empty(spec: PipelineSpec, name: str) -> bool:
    for leaf in spec.input.walk() if spec.input else ():
        if leaf.name == name and isinstance(leaf, PfsInput):
            return leaf.empty_files
    return False

