"""The controller: the one process per root that turns input commits into finished jobs.

It finds open output commits of running pipelines that have no job yet and creates their jobs,
then runs each pipeline's oldest unfinished job once all its input commits are finished (a
failed upstream makes it UNRUNNABLE). One controller per root is enforced by an exclusive lock
on ``controller.lock`` (``launch.py``). In embedded mode the CLI starts it on demand
(``launch.ensure_running``) and it exits after a quiet spell. The hand-off is race-free:
before exiting it releases the lock and looks for work once more, and a CLI that finds the
lock free starts a new one. A background controller also exits between two steps when a
``tusk serve`` on the root asks for the lock (``launch.handover_requested``).
"""

from __future__ import annotations

import os
import threading
import time
import traceback

from sqlalchemy import Connection, select, update

from tusk.pfs.output import PendingOutput
from tusk.pfs.service import PfsService
from tusk.pfs.triggers import has_cron_triggers
from tusk.pps.jobs import JobRunner
from tusk.pps.launch import handover_requested, release, try_lock
from tusk.pps.supervisor import Supervisor
from tusk.storage import schema as s
from tusk.workers.base import Runtime
from tusk.workers.runtimes import Runtimes

IDLE_SECONDS = float(os.environ.get("TUSK_CONTROLLER_IDLE", "20"))
POLL = 0.05
MAX_POLL = 0.25
CLOCK_EVERY = 0.25  # how often the clock thread looks for cron ticks, triggers, spouts, services


class Controller:
    def __init__(self, pfs: PfsService, runtime: Runtime | None = None, verbose: bool = True) -> None:
        self.pfs = pfs
        self.b = pfs.b
        # Each pipeline's runtime is chosen when its code runs (tusk.workers.runtimes); a
        # runtime given here overrides every choice, as TUSK_RUNNER does.
        self.runtimes = Runtimes(pfs.b.root, runtime)
        from tusk.pps.cron import CronTicker
        from tusk.pps.service import PpsService

        self.cron = CronTicker(PpsService(pfs))
        self.jobs = JobRunner(pfs, self.runtimes, self.say if verbose else (lambda m: None))
        # Spout and service pipelines: long-running processes, not jobs (see supervisor.py).
        self.supervisor = Supervisor(pfs, self.runtimes, self.say if verbose else (lambda m: None))
        self._active = 0.0  # when the clock thread last did something (monotonic)

    def say(self, msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    def pending(self) -> bool:
        """Is there anything a controller should do (jobs to create or run)?"""
        # A running cron pipeline is standing work: its ticks must come on time.
        return (self._create_jobs(dry=True) or bool(self._runnable(dry=True)) or self.cron.active()
                or self._cron_triggers()
                or self.supervisor.pending())  # a spout or service to keep running

    def _cron_triggers(self) -> bool:
        """Whether a branch has a cron trigger: someone must be awake to fire it on time."""
        with self.b.db.read() as conn:
            return has_cron_triggers(conn)

    def timekeeping(self) -> bool:
        """The work that is due by the clock, not by a commit; True if any was done."""
        self.pfs.fire_due_triggers(time.time())  # cron branch triggers (pfs/triggers.py)
        ticked = self.cron.tick_due()
        supervised = self.supervisor.tick()  # spouts and services: (re)start, stop, follow inputs
        return bool(ticked or supervised)

    def _clock(self, stop: threading.Event) -> None:
        """``timekeeping`` on a thread of its own while ``serve`` runs, so a long job does not
        hold up a cron tick or a service's restart."""
        while not stop.wait(CLOCK_EVERY):
            try:
                if self.timekeeping():
                    self._active = time.monotonic()
            except Exception:  # noqa: BLE001 - a bug here must not stop the clock for good
                self.say(f"clock: internal error\n{traceback.format_exc()}")

    def step(self, clock: bool = True) -> bool:
        """Create missing jobs and run at most one job; True if anything happened. ``clock``:
        also do the timekeeping (``serve`` does it on its clock thread instead)."""
        did = self.timekeeping() if clock else False
        created = self._create_jobs() or did
        for job in self._runnable():
            try:
                self.jobs.run(job)
            except Exception as e:  # noqa: BLE001 - a bug must not wedge every later job
                # Left RUNNING, the job would be retried by every controller the CLI starts,
                # failing the same way each time while 'wait commit' waits forever. Fail it
                # instead, with the details in the controller's log.
                self.say(f"job {job.job_id}: internal error\n{traceback.format_exc()}")
                self._fail(job, f"internal error: {type(e).__name__}: {e}"
                                " (details in the root's controller.log)")
            return True
        return created

    def _fail(self, job, reason: str) -> None:  # type: ignore[no-untyped-def]
        with self.b.db.tx() as conn:
            state = conn.execute(select(s.jobs.c.state).where(s.jobs.c.id == job.id)).scalar()
            if state not in ("CREATED", "STARTING", "RUNNING", "EGRESSING"):
                return
            conn.execute(update(s.jobs).where(s.jobs.c.id == job.id).values(
                state="FAILURE", reason=reason, finished_at=time.time()))
            self.pfs.output.fail(conn, job.commit_pk, reason)

    def _create_jobs(self, dry: bool = False) -> bool:
        with self.b.db.read() as conn:
            rows = self._jobless_outputs(conn)
        if dry or not rows:
            return bool(rows)
        now = time.time()
        with self.b.db.tx() as conn:
            for out, (pid, version) in rows:
                self.b.db.insert_ignore(conn, s.jobs, [{
                    "pipeline_id": pid, "job_id": out.commit_id, "version": version,
                    "commit_pk": out.commit_pk, "state": "CREATED", "reason": "", "processed": 0,
                    "skipped": 0, "failed": 0, "recovered": 0, "total": 0, "datum_map": None,
                    "created_at": now, "started_at": None, "finished_at": None}])
        return True

    def _jobless_outputs(self, conn: Connection) -> list[tuple[PendingOutput, tuple[int, int]]]:
        """Open output commits of running pipelines that have no job yet, oldest first, each
        with its pipeline's (id, version)."""
        pending = self.pfs.output.open_commits(conn)
        if not pending:
            return []
        p, j = s.pipelines, s.jobs
        running = {(r.project, r.name): (r.id, r.version) for r in conn.execute(
            select(p.c.id, p.c.project, p.c.name, p.c.version).where(p.c.state == "running"))}
        mine = [o for o in pending if (o.project, o.repo) in running]
        pks = [o.commit_pk for o in mine]
        have: set[int] = set()
        for i in range(0, len(pks), 500):
            have.update(conn.execute(select(j.c.commit_pk).where(j.c.commit_pk.in_(pks[i:i + 500]))).scalars())
        return [(o, running[(o.project, o.repo)]) for o in mine if o.commit_pk not in have]

    def _runnable(self, dry: bool = False) -> list:  # type: ignore[type-arg]
        """Each pipeline's oldest unfinished job whose inputs are all finished. A job whose
        input failed is made UNRUNNABLE (unless ``dry``: then it just counts as work)."""
        j, p = s.jobs, s.pipelines
        ready, doomed = [], []
        with self.b.db.read() as conn:
            heads = conn.execute(
                select(j).select_from(j.join(p, j.c.pipeline_id == p.c.id))
                .where(j.c.state.in_(["CREATED", "STARTING", "RUNNING", "EGRESSING"]),
                       p.c.state == "running")
                .order_by(j.c.id)
            ).all()
            first_per_pipeline: dict[int, object] = {}
            for job in heads:
                first_per_pipeline.setdefault(job.pipeline_id, job)
            for job in first_per_pipeline.values():
                # An EGRESSING job already ran (its controller died mid-copy): redo the egress.
                verdict = True if job.state == "EGRESSING" else self._inputs_ready(conn, job)
                if verdict is True:
                    ready.append(job)
                elif isinstance(verdict, str):
                    doomed.append((job, verdict))
        if dry:
            return ready + [job for job, _ in doomed]
        for job, reason in doomed:
            self._unrunnable(job, reason)
        return ready

    def _inputs_ready(self, conn, job) -> bool | str:  # type: ignore[no-untyped-def]
        ups = self.pfs.output.input_commits(conn, job.commit_pk)
        for repo, up in ups:
            if up.state == "finished" and up.error:
                return f"upstream commit {repo.name}@{up.commit_id} failed: {up.error}"
        return all(up.state == "finished" for _repo, up in ups)

    def _unrunnable(self, job, reason: str) -> None:  # type: ignore[no-untyped-def]
        with self.b.db.tx() as conn:
            conn.execute(update(s.jobs).where(s.jobs.c.id == job.id).values(
                state="UNRUNNABLE", reason=reason, finished_at=time.time()))
            self.pfs.output.fail(conn, job.commit_pk, reason)
        self.say(f"job {job.job_id}: UNRUNNABLE: {reason}")

    def serve(self, idle: float = IDLE_SECONDS, lock_fd: int | None = None,
              stop: threading.Event | None = None) -> None:
        """Work until idle for ``idle`` seconds (forever if idle <= 0), or until ``stop`` is set.

        ``lock_fd`` is the lock this controller holds when it should hand over on exit (the
        background controller); a caller that holds the lock itself passes None and releases
        it after this returns.
        """
        self._active = time.monotonic()
        stop_clock = threading.Event()
        clock = threading.Thread(target=self._clock, args=(stop_clock,), name="tusk-clock",
                                 daemon=True)
        clock.start()
        handover: int | None = None
        try:
            self.jobs.warm()
            handover = self._serve(idle, lock_fd, stop)
        finally:
            stop_clock.set()
            clock.join()
            self.jobs.pool.close()  # idle by now; a worker mid-datum gives its task back
            if handover is not None:
                # Nothing of ours may run once the server's controller has the lock: the
                # clock has stopped, spouts and services stop now, then the lock goes.
                self.supervisor.stop_all()
                release(handover)

    def _serve(self, idle: float, lock_fd: int | None, stop: threading.Event | None) -> int | None:
        """The work loop of ``serve``; returns the lock to release when handing over to a
        server (``serve`` releases it once the clock thread has stopped), else None."""
        last = time.monotonic()
        root = self.b.root
        delay = POLL
        while stop is None or not stop.is_set():
            if lock_fd is not None and handover_requested(root):
                # A 'tusk serve' on this root takes over: go between two steps (a job that
                # was running has finished), so its controller can take the lock.
                self.say("a server takes over this root's controller; exiting")
                return lock_fd
            last = max(last, self._active)  # the clock thread did something
            if self.step(clock=False):
                last = time.monotonic()
                delay = POLL
                continue
            if idle > 0 and time.monotonic() - last > idle:
                if self.supervisor.busy():
                    # A spout or service runs (or waits for its restart): that is work, and
                    # releasing the lock could let a second controller start a second copy.
                    last = time.monotonic()
                elif lock_fd is None:
                    if not self.pending():
                        return
                else:
                    release(lock_fd)
                    if not self.pending():
                        return
                    lock_fd = try_lock(root)
                    if lock_fd is None:
                        return  # another controller took over
                last = time.monotonic()
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
            # Back off while nothing happens, so an idle controller costs next to nothing.
            delay = min(delay * 1.5, MAX_POLL)


def main() -> None:
    pfs = PfsService.open()
    if handover_requested(pfs.b.root):
        return  # a server is taking over this root's controller
    fd = try_lock(pfs.b.root)
    if fd is None:
        return
    controller = Controller(pfs)
    controller.supervisor.stop_on_sigterm()  # SIGTERM must not orphan spouts and services
    try:
        controller.serve(lock_fd=fd)
    finally:
        controller.supervisor.stop_all()


if __name__ == "__main__":
    main()
