"""Branch triggers: move a branch to another branch's head once a condition holds.

``create branch data@master --trigger staging --trigger-size 1MB`` lets users commit to
``staging`` as often as they like while ``master`` (which pipelines read) only moves when
enough has piled up. Conditions, as in Pachyderm: the size added since the target's head
(``size``), the number of commits since it (``commits``), a cron tick passed since the target
last moved (``cron_spec``); with several, any one fires unless ``all`` is set.

When a trigger fires it moves the target head by compare-and-set and propagates downstream
with a fresh commit set, exactly like ``create branch --head``; triggers on the target are then
evaluated in turn (chains). Evaluation happens in the caller's metadata transaction whenever a
source branch's head moves to or lands a finished commit (``fire_for_sources``), and
periodically for cron conditions (``fire_due``, called by the pipeline controller and at the
end of ``finish commit``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, and_, select, update

from tusk.errors import InvalidArgument
from tusk.storage import schema as s

if TYPE_CHECKING:
    from tusk.pfs.branches import Branches

# Chained triggers re-enter evaluation; refused cycles make this unreachable in practice, the
# bound only guards against a bug turning into a stack overflow inside a write transaction.
MAX_CHAIN = 32

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


def parse_size(text: str) -> int:
    """Bytes in a human size: ``500KB``, ``1MB``, ``1.5GiB``, ``1024`` (KB = 1000, KiB = 1024)."""
    m = _SIZE_RE.match(text)
    if not m or (m.group(3) and not m.group(2)):
        raise InvalidArgument(
            f'bad trigger size "{text}": write a number with an optional unit, like 500KB, 1MB'
            " or 1.5GiB"
        )
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** _POWERS[m.group(2).lower()])


@dataclass(frozen=True)
class Trigger:
    """What moves a branch: the source ``branch`` (same repo) and the conditions."""

    branch: str
    size: str = ""
    commits: int = 0
    cron_spec: str = ""
    all: bool = False

    def validate(self) -> int:
        """Check the conditions; returns the size threshold in bytes (0: no size condition)."""
        from tusk.pfs.names import check_branch_name

        check_branch_name(self.branch)
        size = parse_size(self.size) if self.size else 0
        if self.commits < 0:
            raise InvalidArgument(f"--trigger-commits must be at least 1, not {self.commits}")
        if self.cron_spec:
            from tusk.pps.timing import parse_cron  # pure functions; no PPS state involved

            try:
                parse_cron(self.cron_spec)
            except ValueError as err:
                raise InvalidArgument(f"bad trigger cron: {err}") from None
        if not (self.size or self.commits or self.cron_spec):
            raise InvalidArgument(
                f"a trigger on {self.branch} needs a condition: --trigger-size, --trigger-commits"
                " or --trigger-cron"
            )
        return size

    def to_dict(self) -> dict[str, Any]:
        return {"branch": self.branch, "all": self.all, "cron_spec": self.cron_spec,
                "size": self.size, "commits": self.commits}

    @classmethod
    def from_spec(cls, doc: dict[str, Any]) -> Trigger:
        """A pipeline spec's ``input.pfs.trigger`` (the source defaults to master)."""
        return cls(branch=doc.get("branch") or "master", size=str(doc.get("size") or ""),
                   commits=int(doc.get("commits") or 0), cron_spec=doc.get("cron_spec") or "",
                   all=bool(doc.get("all")))

    @classmethod
    def from_row(cls, row: Row) -> Trigger:
        return cls(row.source, row.size, row.commits, row.cron_spec, row.all_conditions)

    def describe(self) -> str:
        parts = []
        if self.size:
            parts.append(f"size >= {self.size}")
        if self.commits:
            parts.append(f"{self.commits} commit(s)")
        if self.cron_spec:
            parts.append(f"cron {self.cron_spec}")
        joiner = " and " if self.all else " or "
        return f"{self.branch} ({joiner.join(parts)})"


def set_trigger(conn: Connection, branch_id: int, repo_id: int, trigger: Trigger, now: float) -> None:
    """Create or replace a branch's trigger (caller validated it)."""
    size = trigger.validate()
    t = s.branch_triggers
    conn.execute(t.delete().where(t.c.branch_id == branch_id))
    conn.execute(t.insert().values(
        branch_id=branch_id, repo_id=repo_id, source=trigger.branch, size=trigger.size,
        size_bytes=size, commits=trigger.commits, cron_spec=trigger.cron_spec,
        all_conditions=trigger.all, fired_at=now))


def trigger_of(conn: Connection, branch_id: int) -> Trigger | None:
    row = conn.execute(select(s.branch_triggers).where(s.branch_triggers.c.branch_id == branch_id)).first()
    return None if row is None else Trigger.from_row(row)


def has_cron_triggers(conn: Connection) -> bool:
    """Whether any branch has a cron trigger (someone must be awake to fire it on time)."""
    t = s.branch_triggers
    return conn.execute(select(t.c.branch_id).where(t.c.cron_spec != "").limit(1)).first() is not None


def fire_for_sources(branches: Branches, conn: Connection, source_ids: list[int], now: float,
                     depth: int = 0) -> None:
    """Evaluate every trigger whose source is one of ``source_ids`` (in ``conn``'s transaction)."""
    if not source_ids or depth > MAX_CHAIN:
        return
    t, b = s.branch_triggers, s.branches
    rows = conn.execute(
        select(t).select_from(t.join(b, and_(b.c.repo_id == t.c.repo_id, b.c.name == t.c.source)))
        .where(b.c.id.in_(source_ids)).order_by(t.c.branch_id)
    ).all()
    for row in rows:
        _try_fire(branches, conn, row, now, depth)


def fire_due(branches: Branches, now: float) -> int:
    """Fire the cron triggers whose tick has come and whose source has something new.

    Cheap when nothing is due (one read of the cron triggers), since the controller calls it
    on every step. Returns how many triggers fired.
    """
    t = s.branch_triggers
    with branches.b.db.read() as conn:
        rows = conn.execute(select(t).where(t.c.cron_spec != "")).all()
        due = [r.branch_id for r in rows if _cron_due(conn, r, now) and _evaluate(conn, r, now)[0]]
    if not due:
        return 0
    fired = 0
    with branches.b.db.tx() as conn:  # re-check under the write lock: another process may have won
        for row in conn.execute(select(t).where(t.c.branch_id.in_(due))).all():
            fired += _try_fire(branches, conn, row, now, 0)
    return fired


def _try_fire(branches: Branches, conn: Connection, row: Row, now: float, depth: int) -> bool:
    ok, target, candidate = _evaluate(conn, row, now)
    if not ok or target is None or candidate is None:
        return False
    from tusk.pfs.commit_rows import new_id

    branches.rows.move_head(conn, target.id, target.head_id, candidate, now)
    conn.execute(update(s.branch_triggers).where(s.branch_triggers.c.branch_id == row.branch_id)
                 .values(fired_at=now))
    # A new commit set downstream, as 'create branch --head' makes; this also evaluates the
    # triggers that follow the target (chains).
    branches.propagate(conn, target.id, new_id(), now, _depth=depth + 1)
    return True


def _evaluate(conn: Connection, row: Row, now: float) -> tuple[bool, Row | None, int | None]:
    """(fires?, target branch row, commit pk to move it to)."""
    b, c = s.branches, s.commits
    target = conn.execute(select(b).where(b.c.id == row.branch_id)).first()
    source = conn.execute(select(b).where(b.c.repo_id == row.repo_id, b.c.name == row.source)).first()
    if target is None or source is None:
        return False, None, None
    # The newest finished, error-free commit of the source: an open commit is still being
    # written and an errored one must never become what pipelines read.
    cand = conn.execute(select(c).where(c.c.id == source.head_id)).first()
    while cand is not None and (cand.state != "finished" or cand.error):
        cand = None if cand.parent_id is None else conn.execute(
            select(c).where(c.c.id == cand.parent_id)).first()
    if cand is None or cand.id == target.head_id:
        return False, target, None
    head = conn.execute(select(c).where(c.c.id == target.head_id)).one()
    results: list[bool] = []
    if row.size:
        results.append(cand.size_bytes - head.size_bytes >= row.size_bytes)
    if row.commits:
        results.append(_commits_since(conn, cand, head.id, row.commits) >= row.commits)
    if row.cron_spec:
        results.append(_cron_due(conn, row, now, target))
    fires = all(results) if row.all_conditions else any(results)
    return fires, target, cand.id


def _commits_since(conn: Connection, cand: Row, stop_pk: int, limit: int) -> int:
    """Commits from ``cand`` back to (not including) ``stop_pk``, counting at most ``limit``."""
    n, row = 0, cand
    while row is not None and row.id != stop_pk and n < limit:
        n += 1
        row = None if row.parent_id is None else conn.execute(
            select(s.commits).where(s.commits.c.id == row.parent_id)).first()
    return n


def _cron_due(conn: Connection, row: Row, now: float, target: Row | None = None) -> bool:
    """Has a tick of the cron spec passed since the target branch last moved?"""
    from tusk.pps.timing import parse_cron

    if target is None:
        target = conn.execute(select(s.branches).where(s.branches.c.id == row.branch_id)).first()
        if target is None:
            return False
    since = max(row.fired_at, target.updated_at)
    try:
        tick = parse_cron(row.cron_spec).next_after(datetime.fromtimestamp(since, UTC))
    except ValueError:  # validated on the way in; a bad row must not wedge the controller
        return False
    return tick is not None and tick.timestamp() <= now
