"""Cron inputs: ticking a pipeline's cron repos on schedule, as Pachyderm's cron input does.

Each tick is a one-off commit to the cron repo (``<pipeline>_<input name>`` unless the spec
names one) adding an empty file named after the tick time in RFC 3339 (``/2026-11-25T03:00:10Z``).
With ``overwrite`` the earlier tick files are deleted in the same commit, so the pipeline only
ever sees the latest tick. The commit propagates like any input commit, so it makes a job.

The controller calls ``CronTicker.tick_due`` on every step. The time of the last tick is the
newest tick file's name, read once per input and then remembered; until the first tick it is
the spec's ``start`` or, without one, when the cron repo was made. Ticks missed while nothing
ran (the embedded controller was not running) are not replayed one by one: one tick catches up.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from tusk.errors import FailedPrecondition
from tusk.pfs.refs import CommitRef, FileRef, RepoRef
from tusk.pps.spec import parse_spec
from tusk.pps.spec_inputs import CronInput
from tusk.pps.timing import format_time, parse_time
from tusk.storage import schema as s

MAX_CATCH_UP = 100_000  # schedule steps examined when catching up after a long pause


def cron_inputs(spec_doc: dict, name: str) -> list[CronInput]:
    spec = parse_spec(spec_doc, f"pipeline {name}")
    return [leaf for leaf in spec.input.walk() if isinstance(leaf, CronInput)] if spec.input else []


def _last_tick(pps, leaf: CronInput) -> datetime:  # type: ignore[no-untyped-def]
    """When this input last ticked (its newest tick file), else when counting starts."""
    ref = RepoRef(leaf.project, leaf.repo)
    try:
        files = pps.pfs.list_file(FileRef(CommitRef(ref, "master"), "/"))
    except Exception:  # noqa: BLE001 - an empty or missing head: no tick yet
        files = []
    times = []
    for f in files:
        try:
            times.append(parse_time(f.path.lstrip("/")))
        except ValueError:
            continue  # a file the user put there by hand
    if times:
        return max(times)
    if leaf.start is not None:
        return leaf.start
    info = pps.pfs.inspect_repo(ref)
    return datetime.fromtimestamp(info.created_at, UTC)


def tick(pps, leaf: CronInput, when: datetime) -> str:  # type: ignore[no-untyped-def]
    """Commit one tick file to the input's cron repo; returns its path."""
    path = "/" + format_time(when.astimezone(UTC).replace(microsecond=0))
    ref = CommitRef(RepoRef(leaf.project, leaf.repo), "master")
    with pps.pfs.modify(ref, description=f"cron tick {path[1:]}") as session:
        if leaf.overwrite:
            for f in pps.pfs.list_file(FileRef(ref, "/")):
                if f.path != path:
                    session.delete(f.path, recursive=True)
        session.put_bytes(path, b"")
    return path


def run_cron(pps, name: str, project: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """``tusk run cron``: tick every cron input of a pipeline now."""
    row = pps._row(name, project)
    leaves = cron_inputs(json.loads(row.spec), name)
    if not leaves:
        raise FailedPrecondition(f"pipeline {name} has no cron input")
    if row.state != "running":
        raise FailedPrecondition(f"pipeline {name} is stopped; 'tusk start pipeline {name}' first")
    now = datetime.now(UTC)
    return [(leaf.repo, tick(pps, leaf, now)) for leaf in leaves]


class CronTicker:
    """Remembers each cron input's next tick time and ticks the ones that are due."""

    def __init__(self, pps) -> None:  # type: ignore[no-untyped-def]
        self.pps = pps
        self._next: dict[tuple[int, int, str], datetime | None] = {}  # (pipeline, version, input)

    def active(self) -> bool:
        """Whether a running pipeline has a cron input (so the controller should stay up)."""
        return bool(self._running())

    def _running(self) -> list:  # type: ignore[type-arg]
        p = s.pipelines
        with self.pps.b.db.read() as conn:
            rows = conn.execute(select(p.c.id, p.c.name, p.c.version, p.c.spec)
                                .where(p.c.state == "running", p.c.spec.like('%"cron"%'))).all()
        return rows

    def tick_due(self, now: datetime | None = None) -> bool:
        """Tick every cron input whose next time has come; True if any ticked."""
        now = now or datetime.now(UTC)
        ticked = False
        live: set[tuple[int, int, str]] = set()
        for row in self._running():
            for leaf in cron_inputs(json.loads(row.spec), row.name):
                key = (row.id, row.version, leaf.name)
                live.add(key)
                if key not in self._next:
                    self._next[key] = self._after(leaf, _last_tick(self.pps, leaf), now)
                due = self._next[key]
                if due is None or due > now:
                    continue
                tick(self.pps, leaf, due)
                ticked = True
                self._next[key] = self._after(leaf, due, now)
        for key in list(self._next):
            if key not in live:
                del self._next[key]
        return ticked

    @staticmethod
    def _after(leaf: CronInput, last: datetime, now: datetime) -> datetime | None:
        """The next tick after ``last``; when several are already past, the latest of those
        (one tick catches up), else the first one in the future."""
        schedule = leaf.schedule
        due = schedule.next_after(last)
        steps = 0
        while due is not None and steps < MAX_CATCH_UP:
            following = schedule.next_after(due)
            if following is None or following > now:
                return due
            due = following
            steps += 1
        return due
