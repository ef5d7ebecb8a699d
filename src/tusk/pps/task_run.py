"""Running a job's datums as durable tasks on worker processes (the controller's side).

The controller writes the datums that must run as tasks (``tasks.TaskTable.enqueue``: a task
already there from a controller that died is kept, so a datum that finished is never run
again), keeps ``parallelism`` worker processes (``pps/worker.py``) running, and watches: it keeps the
job's progress counts, replaces a worker that died while tasks remain, and on a stop or the
job's timeout settles the remaining tasks (a worker's next lease renewal then fails, which
cancels the datum it runs). Once every task is done, ``JobRunner.run`` reads the results
back from the table a batch at a time (``TaskOutcomes``): the outputs are already stored as
content and listed on the output commit by the workers, so no result is held in memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Row, update

from tusk.errors import FailedPrecondition
from tusk.pfs.merge import Listing
from tusk.pps import datums as dm
from tusk.pps import task_spec
from tusk.pps.outcomes import STOPPED, DatumResult
from tusk.pps.tasks import TaskTable
from tusk.pps.watch import JobWatch
from tusk.storage import schema as s

# How often the controller looks at the task table while workers run: soon after enqueuing
# (a one-datum job is done in a few ms), ten times a second while datums complete (progress
# shows promptly without the controller taking a core from the workers), less often while
# nothing changes (a long datum).
TICK, TICK_BUSY, TICK_MAX = 0.02, 0.1, 0.25
TERM_GRACE = 5.0  # how long a worker has to give its task back after SIGTERM


class TaskOutcomes:
    """A job's results as its completed tasks hold them (see ``outcomes.py``)."""

    def __init__(self, table: TaskTable, job_pk: int, todo: list[dm.Datum]) -> None:
        self.table = table
        self.job_pk = job_pk
        self.by_id = {d.id: d for d in todo}

    def listings(self) -> Iterable[Listing]:
        return ()  # the workers listed each datum's outputs on the output commit

    def batches(self, conn: Any = None) -> Iterator[list[DatumResult]]:
        for done in self.table.done_batches(self.job_pk, conn=conn):
            yield [DatumResult(d, t.result, t.hash, [], t.reason, t.attempts, t.started_at,
                               t.finished_at, written=[str(p) for p in t.outputs])
                   for t in done if (d := self.by_id.get(t.datum_id)) is not None]
            # (a task the plan no longer has was planned by an earlier run of this job)


def run_as_tasks(jr: Any, job: Row, spec: Any, todo: list[dm.Datum], entries: dict,
                 commit_ids: dict, salt: str, deadline: float | None) -> TaskOutcomes:
    """Run ``todo`` as tasks; their results stay in the task table until the job is sealed."""
    db = jr.b.db
    table = TaskTable(db)
    with db.tx() as conn:
        table.enqueue(conn, job.id, ((d.id, d.hash(salt), task_spec.encode(d, entries, commit_ids))
                                     for d in todo), spec.datum_tries)
    watch = JobWatch(db, job.id)
    want = max(1, spec.parallelism)
    last = {"success": 0, "failed": 0, "recovered": 0}  # as the job starts (run() zeroed them)
    tick = TICK / 1.5
    try:
        while True:
            looked = time.monotonic()
            counts = table.counts(job.id)
            shown = {k: counts.get(k, 0) for k in ("success", "failed", "recovered")}
            tick = min(tick * 1.5, TICK_MAX)
            # Counting a big job's tasks takes a while: look at most a tenth of the time.
            tick = max(tick, 10 * (time.monotonic() - looked))
            if shown != last:
                last, tick = shown, max(TICK_BUSY, tick)
                jr.pool.progressed()
                with db.tx() as conn:
                    conn.execute(update(s.jobs).where(s.jobs.c.id == job.id).values(
                        processed=shown["success"], failed=shown["failed"],
                        recovered=shown["recovered"]))
            left = sum(v for k, v in counts.items() if k in ("pending", "running"))
            if left == 0:
                break
            if watch.stopped.is_set() or (deadline is not None and time.monotonic() >= deadline):
                why = (f"not run: {STOPPED}" if watch.stopped.is_set()
                       else f"not run: job_timeout of {spec.job_timeout:g}s exceeded")
                with db.tx() as conn:
                    table.cancel(conn, job.id, why)
                break
            try:
                jr.pool.ensure(min(want, left))
            except FailedPrecondition as e:
                with db.tx() as conn:
                    table.cancel(conn, job.id, f"not run: {e.message}")
                break
            time.sleep(tick)
    finally:
        watch.close()
    return TaskOutcomes(table, job.id, todo)


class WorkerPool:
    """The controller's worker processes. They serve any job's tasks and exit by themselves
    after an idle spell, so the pool only tops up: a job's first datum does not wait for a
    process to start when one is already there.

    Workers that keep dying as they start (a broken installation, a store they cannot open)
    would otherwise be replaced forever while the job waits: after ``START_FAILURES`` in a
    row, ``ensure`` raises instead, and the job's remaining datums fail with that reason."""

    START_FAILURES = 3
    START_GRACE = 10.0  # a worker that fails within this many seconds of its start "dies as it starts"

    def __init__(self, root: Path, idle: float, argv: list[str] | None = None) -> None:
        self.root = root
        self.idle = idle
        self.argv = argv or [sys.executable, "-m", "tusk.pps.worker"]
        self.procs: list[subprocess.Popen[bytes]] = []
        self._started: dict[int, float] = {}
        self._failed_starts = 0
        self._last_code = 0

    def ensure(self, n: int) -> None:
        """Keep ``n`` workers running; FailedPrecondition when they keep dying at start."""
        alive = []
        for p in self.procs:
            code = p.poll()
            if code is None:
                alive.append(p)
                continue
            lived = time.monotonic() - self._started.pop(p.pid)
            if code != 0 and lived < self.START_GRACE:
                self._failed_starts, self._last_code = self._failed_starts + 1, code
            else:
                self._failed_starts = 0
        self.procs = alive
        if self._failed_starts >= self.START_FAILURES:
            raise FailedPrecondition(
                f"{self._failed_starts} worker processes in a row exited as they started (exit"
                f" code {self._last_code}); see {self.root / 'controller.log'}")
        while len(self.procs) < n:
            proc = self._spawn()
            self._started[proc.pid] = time.monotonic()
            self.procs.append(proc)

    def progressed(self) -> None:
        """Datums are completing: the workers that died before were not dying at start."""
        self._failed_starts = 0

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "TUSK_ROOT": str(self.root), "TUSK_WORKER_IDLE": str(self.idle)}
        with open(self.root / "controller.log", "ab") as log:
            return subprocess.Popen([*self.argv, "--parent", str(os.getpid())],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                    start_new_session=True, close_fds=True)

    def close(self) -> None:
        """SIGTERM (a worker cancels its datum and gives the task back), then SIGKILL."""
        for w in self.procs:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        end = time.monotonic() + TERM_GRACE
        for w in self.procs:
            try:
                w.wait(max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        self.procs = []
        self._started.clear()
