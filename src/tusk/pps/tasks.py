"""The datum task table: durable units of work, taken by workers under a lease.

A job's datums that must run are written here (``enqueue``) before any runs. A worker takes
one (``claim``), says when it starts an attempt (``begin_attempt``, which counts it against
``datum_tries``), keeps its lease alive while the datum runs (``renew``) and completes it with
the datum's result and output listing (``complete``). Only the worker that holds the lease, on
the attempt it began, can complete a task, so a task completes exactly once even when a worker
that was thought dead comes back.

A worker that dies stops renewing; once its lease has expired the task is claimable again, and
the attempt it had begun still counts: a datum whose attempts are used up that way is settled
as failed ("its worker was lost") instead of being handed out again. That is Pachyderm's rule
for a worker lost mid-datum.

Claiming is a compare-and-set on the row inside one write transaction (serialised on SQLite by
``BEGIN IMMEDIATE``; ``FOR UPDATE SKIP LOCKED`` keeps PostgreSQL workers off each other's rows),
so it needs nothing but the metadata store: workers may be other processes or other hosts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack
from sqlalchemy import and_, bindparam, delete, func, or_, select, update

from tusk.storage import schema as s
from tusk.storage.db import Database

PENDING, RUNNING, DONE = "pending", "running", "done"
LOST = "its worker was lost (no lease renewal) on every try"

t = s.datum_tasks


# The hot statements, built once (building a statement costs more Python than running it):
# a worker takes, renews and completes one task per datum.
_HELD = and_(t.c.id == bindparam("tid"), t.c.state == RUNNING, t.c.owner == bindparam("towner"),
             t.c.attempt == bindparam("tattempt"))
_IN_JOBS = t.c.job_pk.in_(bindparam("jobs", expanding=True))
# The oldest claimable task is the older of the first pending one and the first running one
# whose lease has expired, asked for separately: each is an index seek on (state, id). One
# query with "pending OR expired" made SQLite gather every open task and sort them for each
# claim, so a claim cost grew with the job (23 ms per datum at 100,000 datums, not 7).
_FIRST_OPEN = {
    (only, state): select(t).where(
        t.c.state == state,
        *([t.c.lease_until < bindparam("now")] if state == RUNNING else []),
        *([_IN_JOBS] if only else [])).order_by(t.c.id).limit(1).with_for_update(skip_locked=True)
    for only in (False, True) for state in (PENDING, RUNNING)}
_TAKE = update(t).where(t.c.id == bindparam("tid"), t.c.state == bindparam("was_state"),
                        t.c.owner == bindparam("was_owner"),
                        t.c.attempt == bindparam("was_attempt")).values(
    state=RUNNING, owner=bindparam("worker"), lease_until=bindparam("until"),
    attempt=bindparam("attempt"), started_at=bindparam("started"))
_SETTLE_LOST = update(t).where(t.c.id == bindparam("tid")).values(
    state=DONE, result="failed", reason=LOST, owner="", finished_at=bindparam("now"))
_RENEW = update(t).where(_HELD).values(lease_until=bindparam("until"))
_COMPLETE = update(t).where(_HELD).values(
    state=DONE, result=bindparam("result"), reason=bindparam("reason"), owner="",
    outputs=bindparam("outputs"), started_at=bindparam("started"),
    finished_at=bindparam("finished"))


def _held(task: Task) -> dict[str, Any]:
    return {"tid": task.id, "towner": task.owner, "tattempt": task.attempt}


@dataclass(frozen=True)
class Task:
    """A task as its worker holds it."""

    id: int
    job_pk: int
    datum_id: str
    hash: str
    spec: dict[str, Any]
    tries: int
    owner: str
    attempt: int  # attempts begun so far (by any worker)


@dataclass
class Result:
    """What a worker hands back: the datum's state, output listing and why it ended so."""

    result: str  # success | failed | recovered
    outputs: list[Any] = field(default_factory=list)
    reason: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass(frozen=True)
class Done:
    """A completed task, as the controller merges it."""

    datum_id: str
    hash: str
    result: str
    outputs: list[Any]
    reason: str
    attempts: int
    started_at: float
    finished_at: float


class TaskTable:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    # -- the controller's side --------------------------------------------------------------

    def enqueue(self, conn: Any, job_pk: int, items: Iterable[tuple[str, str, dict[str, Any]]],
                tries: int) -> int:
        """Write the job's tasks (datum id, hash, spec) in the caller's transaction; a task
        already there is kept as it is (a controller that died after enqueuing enqueues
        again). Returns how many were written."""
        have = set(conn.execute(select(t.c.datum_id).where(t.c.job_pk == job_pk)).scalars())
        written = 0
        chunk: list[dict[str, Any]] = []
        # Packed and written 500 at a time: a big job's tasks are never all in memory at once.
        for did, h, spec in items:
            if did in have:
                continue
            chunk.append({"job_pk": job_pk, "datum_id": did, "hash": h,
                          "spec": msgpack.packb(spec, use_bin_type=True), "state": PENDING,
                          "attempt": 0, "tries": tries, "owner": "", "lease_until": 0.0,
                          "result": "", "outputs": None, "reason": "", "started_at": 0.0,
                          "finished_at": 0.0})
            if len(chunk) == 500:
                conn.execute(t.insert(), chunk)
                written, chunk = written + len(chunk), []
        if chunk:
            conn.execute(t.insert(), chunk)
            written += len(chunk)
        return written

    def counts(self, job_pk: int) -> dict[str, int]:
        """Tasks per state, and per result for the done ones (``success``, ``failed``, ...)."""
        out: dict[str, int] = {}
        with self.db.read() as conn:
            for state, result, n in conn.execute(
                    select(t.c.state, t.c.result, func.count()).where(t.c.job_pk == job_pk)
                    .group_by(t.c.state, t.c.result)):
                out[state] = out.get(state, 0) + n
                if state == DONE:
                    out[result] = out.get(result, 0) + n
        return out

    def done_batches(self, job_pk: int, batch: int = 1000, conn: Any = None) -> Iterator[list[Done]]:
        """The job's completed tasks in id order, ``batch`` at a time (bounded memory); read
        in ``conn``'s transaction if given."""
        last = 0
        while True:
            q = (select(t).where(t.c.job_pk == job_pk, t.c.state == DONE, t.c.id > last)
                 .order_by(t.c.id).limit(batch))
            if conn is not None:
                rows = conn.execute(q).all()
            else:
                with self.db.read() as c:
                    rows = c.execute(q).all()
            if not rows:
                return
            yield [Done(r.datum_id, r.hash, r.result,
                        msgpack.unpackb(r.outputs, raw=False) if r.outputs else [],
                        r.reason, r.attempt, r.started_at, r.finished_at) for r in rows]
            last = rows[-1].id

    def done(self, job_pk: int, batch: int = 1000) -> Iterator[Done]:
        """The job's completed tasks in id order, read in batches."""
        for rows in self.done_batches(job_pk, batch):
            yield from rows

    def drop(self, conn: Any, job_pk: int) -> None:
        """Forget a job's tasks (its commit was deleted, or the job is sealed and recorded)."""
        conn.execute(delete(t).where(t.c.job_pk == job_pk))

    def cancel(self, conn: Any, job_pk: int, reason: str) -> int:
        """Settle every task of the job that has not run to completion (stopped jobs)."""
        return conn.execute(update(t).where(t.c.job_pk == job_pk, t.c.state != DONE).values(
            state=DONE, result="failed", reason=reason, owner="",
            finished_at=self.clock())).rowcount

    # -- a worker's side --------------------------------------------------------------------

    def claim(self, worker: str, lease: float, jobs: Iterable[int] | None = None,
              conn: Any | None = None) -> Task | None:
        """Take the oldest claimable task (pending, or running under an expired lease) of
        ``jobs`` (all jobs by default) and begin its next attempt; None when there is none.
        In ``conn``'s transaction if given (a worker completes one task and takes the next in
        one write), with one try: a task lost to another worker there is simply not taken."""
        only = None if jobs is None else list(jobs)
        where = [] if only is None else [t.c.job_pk.in_(only)]
        if conn is not None:
            return self._take(conn, worker, lease, only)[0]
        # A read first: an idle worker polls, and must not take the write lock to find nothing.
        with self.db.read() as rconn:
            expired = and_(t.c.state == RUNNING, t.c.lease_until < self.clock())
            if rconn.execute(select(t.c.id).where(or_(t.c.state == PENDING, expired), *where)
                             .limit(1)).first() is None:
                return None
        for _ in range(8):  # lost a compare-and-set to another worker: look again
            with self.db.tx() as wconn:
                task, none_left = self._take(wconn, worker, lease, only)
                if task is not None or none_left:
                    return task
        return None

    def _take(self, conn: Any, worker: str, lease: float, jobs: list[int] | None
              ) -> tuple[Task | None, bool]:
        """The task taken, or None and whether there was none to take at all."""
        while True:
            now = self.clock()
            params: dict[str, Any] = {"now": now} if jobs is None else {"now": now, "jobs": jobs}
            pending = conn.execute(_FIRST_OPEN[jobs is not None, PENDING], params).first()
            expired = conn.execute(_FIRST_OPEN[jobs is not None, RUNNING], params).first()
            found = [r for r in (pending, expired) if r is not None]
            if not found:
                return None, True
            row = min(found, key=lambda r: r.id)
            if row.state == RUNNING and row.attempt >= row.tries:
                # Its lease expired on its last try: used up by lost workers, settled as
                # failed and never handed out again.
                conn.execute(_SETTLE_LOST, {"tid": row.id, "now": now})
                continue
            # Taking a task begins its next attempt (one write per datum, not two).
            took = conn.execute(_TAKE, {
                "tid": row.id, "was_state": row.state, "was_owner": row.owner,
                "was_attempt": row.attempt, "worker": worker, "until": now + lease,
                "attempt": row.attempt + 1, "started": row.started_at or now}).rowcount
            if took != 1:
                return None, False
            return Task(row.id, row.job_pk, row.datum_id, row.hash,
                        msgpack.unpackb(row.spec, raw=False), row.tries, worker,
                        row.attempt + 1), False

    def begin_attempt(self, task: Task, lease: float) -> Task | None:
        """Count one more attempt of a held task (a retry after a failed one; the first is
        begun by ``claim``), renewing the lease; None if the lease was lost."""
        with self.db.tx() as conn:
            n = conn.execute(update(t).where(_HELD).values(
                attempt=task.attempt + 1, lease_until=self.clock() + lease), _held(task)).rowcount
        if n != 1:
            return None
        return Task(task.id, task.job_pk, task.datum_id, task.hash, task.spec, task.tries,
                    task.owner, task.attempt + 1)

    def renew(self, task: Task, lease: float) -> bool:
        """Keep the lease; False when it was lost (expired and taken, or the job stopped)."""
        with self.db.tx() as conn:
            return conn.execute(_RENEW, {**_held(task), "until": self.clock() + lease}
                                ).rowcount == 1

    def complete(self, task: Task, result: Result, conn: Any | None = None) -> bool:
        """Record the datum's result (in ``conn``'s transaction if given); True only for the
        lease holder on its current attempt."""
        if conn is None:
            with self.db.tx() as tx:
                return self.complete(task, result, tx)
        return conn.execute(_COMPLETE, {
            **_held(task), "result": result.result, "reason": result.reason,
            "outputs": msgpack.packb(result.outputs, use_bin_type=True),
            "started": result.started_at or self.clock(),
            "finished": result.finished_at or self.clock()}).rowcount == 1

    def release(self, task: Task, began: bool = True) -> bool:
        """Give the task back (a worker shutting down, not a datum failing): pending again,
        and an attempt it had begun (``began``) does not count."""
        with self.db.tx() as conn:
            return conn.execute(update(t).where(_HELD).values(
                state=PENDING, owner="", lease_until=0.0,
                attempt=max(task.attempt - 1, 0) if began else task.attempt), _held(task)
            ).rowcount == 1
