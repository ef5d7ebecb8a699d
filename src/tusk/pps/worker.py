"""A datum worker: a process that takes a job's datum tasks under a lease and runs them.

The controller keeps ``parallelism`` of these running while it has work (``python -m
tusk.pps.worker``; ``tusk worker`` by hand, as many as you like, against the same root), and
they serve any job's tasks. Each worker
reaches only the metadata store, the object store and its runtime: it claims a task
(``tasks.TaskTable``), materialises the datum's inputs from their content references, runs the
user's code, stores the outputs as content and hands their listing to the output commit
(``pfs.output``), then completes the task. A thread renews the lease while the datum runs; a
lost lease (the task was handed to someone else, or the job was stopped) cancels the datum.

A worker killed mid-datum costs that datum one attempt and nothing else: its lease expires and
another worker takes the task. It exits after ``TUSK_WORKER_IDLE`` seconds without a task, or
on SIGTERM (the running datum is cancelled and its task given back).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import select

from tusk.errors import FailedPrecondition
from tusk.images.store import ImageStore
from tusk.pfs.service import PfsService
from tusk.pps import secrets, task_spec
from tusk.pps.jobs import JobRunner
from tusk.pps.outcomes import SUCCESS, cut_short
from tusk.pps.spec import parse_spec
from tusk.pps.tasks import Result, Task, TaskTable
from tusk.pps.watch import JobWatch
from tusk.pps.workspace import reset
from tusk.storage import schema as s
from tusk.workers.base import Workspace
from tusk.workers.mount_ns import show_at_pfs
from tusk.workers.runtimes import Runtimes


def lease_seconds() -> float:
    """How long a task stays with a worker that stopped renewing (``TUSK_LEASE_SECONDS``)."""
    try:
        return max(1.0, float(os.environ.get("TUSK_LEASE_SECONDS", "30")))
    except ValueError:
        return 30.0


def idle_seconds() -> float:
    """How long a worker waits for a task before it exits (``TUSK_WORKER_IDLE``)."""
    try:
        return max(0.5, float(os.environ.get("TUSK_WORKER_IDLE", "20")))
    except ValueError:
        return 20.0


# How often an idle worker looks for a task: soon after its last one (a job's next datum, or
# the next job of a DAG, waits this long), then less often the longer it has been idle.
POLL, POLL_MAX = 0.05, 0.5


class _JobContext:
    """What a worker keeps about a job while it runs the job's tasks."""

    def __init__(self, worker: Worker, job_pk: int) -> None:
        b = worker.b
        with b.db.read() as conn:
            self.job = conn.execute(select(s.jobs).where(s.jobs.c.id == job_pk)).one()
            self.pipe = conn.execute(
                select(s.pipelines).where(s.pipelines.c.id == self.job.pipeline_id)).one()
        self.spec = parse_spec(json.loads(self.pipe.spec), f"pipeline {self.pipe.name}")
        self.runtime = worker.jr.runtimes.for_pipeline(self.spec)
        # The image the controller resolved and unpacked when the job started.
        self.image = ImageStore(b.root).root_of(self.job.image_id) \
            if self.runtime.capabilities.honours_image and self.job.image_id else None
        self.secrets = secrets.for_datum(secrets.SecretStore(b.root), self.spec)
        self.watch = JobWatch(b.db, job_pk)
        self.output = worker.pfs.output.open(self.job.commit_pk)
        self.log_dir = b.root / "logs" / self.pipe.project / self.pipe.name / self.job.job_id
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.deadline = None
        if self.spec.job_timeout is not None and self.job.started_at:
            left = self.job.started_at + self.spec.job_timeout - time.time()
            self.deadline = time.monotonic() + max(0.0, left)

    def close(self) -> None:
        self.watch.close()


class Worker:
    def __init__(self, pfs: PfsService, jobs: list[int] | None = None,
                 name: str | None = None, parent: int | None = None) -> None:
        self.pfs = pfs
        self.b = pfs.b
        self.jobs = jobs  # only these jobs' tasks (None: any job's)
        # A controller's worker takes no new task once its controller is gone: a worker that
        # outlived it would go on with the old controller's settings (runtime override, env).
        self.parent = parent
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.tasks = TaskTable(self.b.db)
        self.lease = lease_seconds()
        self.jr = JobRunner(pfs, Runtimes(self.b.root))
        self.quit = threading.Event()
        self.current: Task | None = None
        self._ctx: _JobContext | None = None
        self._lock = threading.Lock()
        self.ws = Workspace(self.b.root / "work" / f"w{os.getpid()}-{uuid.uuid4().hex[:6]}")

    def run(self, idle: float | None = None) -> int:
        """Run tasks until none has come for ``idle`` seconds (or SIGTERM); how many this
        worker completed."""
        idle = idle_seconds() if idle is None else idle
        # Before any thread starts: this thread's /pfs becomes the workspace (mount_ns.py).
        reset(self.ws)
        show_at_pfs(self.ws.pfs)
        renewer = threading.Thread(target=self._renew, daemon=True)
        renewer.start()
        done = 0
        quiet_since = time.monotonic()
        task: Task | None = None
        try:
            while not self.quit.is_set():
                if task is None:
                    if self._orphaned():
                        break
                    task = self.tasks.claim(self.name, self.lease, self.jobs)
                if task is None:
                    quiet = time.monotonic() - quiet_since
                    if quiet >= idle:
                        break
                    self.quit.wait(min(POLL_MAX, POLL + quiet / 10))
                    continue
                try:
                    completed, task = self._run_task(task)
                    done += completed
                finally:
                    # Nothing of a datum outlives its task: the next may be another pipeline's.
                    reset(self.ws)
                quiet_since = time.monotonic()
        finally:
            self.quit.set()
            if task is not None:
                self.tasks.release(task)  # taken with the last completion, never begun
            if self._ctx is not None:
                self._ctx.close()
            shutil.rmtree(self.ws.root, ignore_errors=True)
        return done

    def _orphaned(self) -> bool:
        return self.parent is not None and os.getppid() != self.parent

    def _context(self, job_pk: int) -> _JobContext:
        if self._ctx is None or self._ctx.job.id != job_pk:
            if self._ctx is not None:
                self._ctx.close()
            self._ctx = None
            self._ctx = _JobContext(self, job_pk)
        return self._ctx

    def _run_task(self, task: Task) -> tuple[int, Task | None]:
        """Run ``task``'s datum and complete it: (1 if this worker completed it, else 0; the
        next task, taken in the completing transaction, or None)."""
        try:
            ctx = self._context(task.job_pk)
        except Exception as e:  # noqa: BLE001 - the job or its pipeline went away meanwhile
            self.tasks.complete(task, Result("failed", [], f"cannot run: {e}"))
            return 0, None
        self.jr.runtime, self.jr._watch, self.jr.image = ctx.runtime, ctx.watch, ctx.image
        self.jr.secrets = ctx.secrets
        with self._lock:
            self.current = task
        d, entries, commit_ids = task_spec.decode(task.spec)
        job, pipe = ctx.job, ctx.pipe
        writer = self.b.writer()
        with self.b.data_lock():
            r = self.jr._run_datum(job, ctx.spec, d, self.ws, entries, commit_ids, writer,
                                   threading.Lock(), job.salt or pipe.salt,
                                   ctx.log_dir / f"{d.id}.log", ctx.deadline,
                                   used=task.attempt - 1, on_attempt=self._attempt)
            content = writer.seal()
            with self._lock:
                held, self.current = self.current, None
            if held is None:
                return 0, None  # the lease was lost while the datum ran: another worker has it
            if cut_short(r) or self.quit.is_set():
                self.tasks.release(held, began=True)
                return 0, None
            result = Result(r.state, [e.path for e in r.outputs], r.reason, r.started, r.finished)
            # The result and the output listing land together, and only for the lease holder;
            # the next task is taken in the same write (one commit per datum, not two).
            try:
                with self.b.db.tx() as conn:
                    if not self.tasks.complete(held, result, conn):
                        return 0, None
                    if r.state == SUCCESS:
                        ctx.output.add_listing(d.id, r.outputs, (), content, conn)
                    more = not (self.quit.is_set() or self._orphaned())
                    return 1, self.tasks.claim(self.name, self.lease, self.jobs, conn) if more else None
            except FailedPrecondition:
                return 0, None  # the output commit is gone (job deleted or finished meanwhile)

    def _attempt(self, n: int) -> bool:
        """Before attempt ``n`` of the current datum: count it in the task table."""
        with self._lock:
            task = self.current
            if task is None:
                return False
            if n <= task.attempt:  # begun by claim, or a restarted attempt: already counted
                return True
            now = self.tasks.begin_attempt(task, self.lease)
            self.current = now
            return now is not None

    def _renew(self) -> None:
        """Keep the current task's lease; a lost lease cancels the datum running under it."""
        # Renewing often keeps the time a stopped job's datum goes on running short.
        while not self.quit.wait(min(self.lease / 3, 1.0)):
            with self._lock:
                task, ctx = self.current, self._ctx
                if task is None or self.tasks.renew(task, self.lease):
                    continue
                self.current = None
            if ctx is not None:
                ctx.watch.cancel(task.datum_id)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tusk worker", description=__doc__.split("\n")[0])
    ap.add_argument("--job", type=int, action="append", default=None,
                    help="only this job's tasks (internal number; repeatable)")
    ap.add_argument("--idle", type=float, default=None, help="exit after this many idle seconds")
    ap.add_argument("--name", default=None)
    ap.add_argument("--parent", type=int, default=None,
                    help="take no new task once this process (the controller) has exited")
    args = ap.parse_args(argv)
    pfs = PfsService.open(Path(os.environ["TUSK_ROOT"]) if os.environ.get("TUSK_ROOT") else None)
    worker = Worker(pfs, args.job, args.name, args.parent)
    signal.signal(signal.SIGTERM, lambda *_: shutdown(worker))
    try:
        worker.run(args.idle)
    finally:
        pfs.close()
    return 0


def shutdown(worker: Worker) -> None:
    """Stop taking tasks and cancel the running datum (its task is given back)."""
    worker.quit.set()
    ctx = worker._ctx
    if ctx is not None:
        ctx.watch.halt()


if __name__ == "__main__":
    sys.exit(main())
