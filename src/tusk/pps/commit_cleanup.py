"""What becomes of a pipeline's jobs when PFS deletes or squashes their output commits.

Pachyderm (reference §1.8): ``delete commit`` drops the commit set and its downstream output
commits, killing their jobs, so the jobs go too: a job row naming a deleted commit would
otherwise be taken for the job of whatever commit came next. ``squash commit`` keeps the jobs
(history: later jobs' datum maps name the jobs that ran their skipped datums) and only stops the
ones still running. PFS calls ``forget_output_commits`` inside its own transaction, so the commits
and their jobs go together or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from sqlalchemy import Connection, delete, select, update

from tusk.storage import schema as s

UNFINISHED = ("CREATED", "STARTING", "RUNNING", "EGRESSING")


def forget_output_commits(conn: Connection, commit_pks: Collection[int], squashed: bool) -> int:
    """Delete (or, when ``squashed``, stop) the jobs whose output commit is one of
    ``commit_pks``; returns how many jobs were affected. A running job notices its row is gone
    or no longer RUNNING (``watch.py``) and stops its datums."""
    pks = list(commit_pks)
    if not pks:
        return 0
    j = s.jobs
    if squashed:
        res = conn.execute(update(j).where(j.c.commit_pk.in_(pks), j.c.state.in_(UNFINISHED))
                           .values(state="KILLED", reason="its commit set was squashed",
                                   finished_at=time.time()))
        return int(res.rowcount or 0)
    jobs = conn.execute(select(j.c.id).where(j.c.commit_pk.in_(pks))).scalars().all()
    if jobs:
        for table in (s.datum_runs, s.datum_inputs, s.restart_requests, s.datum_tasks):
            conn.execute(delete(table).where(table.c.job_pk.in_(jobs)))
        conn.execute(delete(j).where(j.c.id.in_(jobs)))
    return len(jobs)
