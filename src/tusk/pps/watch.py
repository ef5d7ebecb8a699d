"""Watching a running job from inside its runner: stop requests and datum restarts.

``stop pipeline``, ``stop job`` and ``delete job`` change the job's row (KILLED) from another
process; ``restart datum`` adds a ``restart_requests`` row. A ``JobWatch`` polls both a few
times a second while the job's datums run and sets the cancel event of each affected attempt,
which makes the runner kill the user's process group. A cancelled attempt of a restarted datum
runs again without using up one of its ``datum_tries``.
"""

from __future__ import annotations

import threading

from sqlalchemy import select

from tusk.storage import schema as s
from tusk.storage.db import Database

POLL_SECONDS = 0.25


class JobWatch:
    def __init__(self, db: Database, job_pk: int, poll: float = POLL_SECONDS) -> None:
        self.db = db
        self.job_pk = job_pk
        self.poll = poll
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[str, tuple[threading.Event, tuple[str, ...]]] = {}
        self._restarted: set[str] = set()
        self._seen_request = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch-job-{job_pk}", daemon=True)
        self._thread.start()

    def attempt(self, datum_id: str, paths: tuple[str, ...]) -> threading.Event:
        """The cancel event for a datum's next attempt (already set if the job was stopped)."""
        ev = threading.Event()
        with self._lock:
            self._active[datum_id] = (ev, paths)
            if self.stopped.is_set():
                ev.set()
        return ev

    def finished(self, datum_id: str) -> bool:
        """Unregister a datum's attempt; True if it was cancelled to be restarted."""
        with self._lock:
            self._active.pop(datum_id, None)
            if datum_id in self._restarted:
                self._restarted.discard(datum_id)
                return True
        return False

    def halt(self) -> None:
        """Stop as if the job had been stopped: every running attempt is cancelled and no new
        one starts (a worker that lost its lease, or was asked to shut down)."""
        self.stopped.set()
        with self._lock:
            for ev, _paths in self._active.values():
                ev.set()

    def cancel(self, datum_id: str) -> None:
        """Cancel the running attempt of one datum (its worker lost the task's lease)."""
        with self._lock:
            active = self._active.get(datum_id)
            if active is not None:
                active[0].set()

    def close(self) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(self.poll):
            try:
                self._check()
            except Exception:  # noqa: BLE001, S112 - a busy database must not end the watch
                continue

    def _check(self) -> None:
        r = s.restart_requests
        with self.db.read() as conn:
            state = conn.execute(select(s.jobs.c.state).where(s.jobs.c.id == self.job_pk)).scalar()
            requests = conn.execute(select(r.c.id, r.c.pattern).where(
                r.c.job_pk == self.job_pk, r.c.id > self._seen_request).order_by(r.c.id)).all()
        if state != "RUNNING":
            self.stopped.set()
            with self._lock:
                for ev, _paths in self._active.values():
                    ev.set()
            return
        for req_id, pattern in requests:
            self._seen_request = req_id
            with self._lock:
                for did, (ev, paths) in self._active.items():
                    if did.startswith(pattern) or pattern in paths or "/" + pattern.lstrip("/") in paths:
                        self._restarted.add(did)
                        ev.set()
