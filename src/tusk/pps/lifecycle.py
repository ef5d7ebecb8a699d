"""A pipeline's life after creation: stop, start, rerun, history, and stopping or deleting jobs.

Stopping follows Pachyderm 2.x: the output branch loses its provenance, so input commits made
while stopped create no output commits and no jobs; running jobs are killed ("pipeline was
stopped"). Starting restores the provenance, which gives the output branch one new commit on
the *current* input heads, hence exactly one job however many input commits came meanwhile.

Killing a job marks it KILLED and finishes its output commit with the reason as error, in one
transaction. The job's runner notices within a fraction of a second (``jobs.JobWatch`` polls)
and kills the user processes. ``restart datum`` leaves a request row the same watcher picks up.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from tusk.errors import FailedPrecondition, InvalidArgument
from tusk.pfs.refs import RepoRef
from tusk.pps.create import ensure_inputs
from tusk.pps.model import PipelineInfo
from tusk.pps.spec import parse_spec
from tusk.storage import schema as s

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row

    from tusk.pps.service import PpsService

UNFINISHED = ("CREATED", "STARTING", "RUNNING", "EGRESSING")


def kill_jobs(pps: PpsService, conn: Connection, where, reason: str) -> int:  # type: ignore[no-untyped-def]
    """KILL the unfinished jobs matching ``where`` and finish their open output commits with
    ``reason`` as error, inside ``conn``'s transaction. Returns how many were killed."""
    j = s.jobs
    rows = conn.execute(select(j.c.id, j.c.commit_pk).where(where, j.c.state.in_(UNFINISHED))).all()
    now = time.time()
    for job_pk, commit_pk in rows:
        conn.execute(update(j).where(j.c.id == job_pk).values(
            state="KILLED", reason=reason, finished_at=now))
        pps.pfs.output.fail(conn, commit_pk, reason)
    return len(rows)


def _output_branch(pps: PpsService, conn: Connection, pipe: Row) -> Row | None:
    spec = json.loads(pipe.spec)
    return pps.pfs.find_branch(conn, RepoRef(pipe.project, pipe.name), spec.get("output_branch") or "master")


def stop_pipeline(pps: PpsService, name: str, project: str) -> PipelineInfo:
    pipe = pps._row(name, project)
    reason = "pipeline was stopped"
    with pps.b.db.tx() as conn:
        conn.execute(update(s.pipelines).where(s.pipelines.c.id == pipe.id).values(
            state="paused", reason="", updated_at=time.time()))
        br = _output_branch(pps, conn, pipe)
        if br is not None:
            pps.pfs.detach_provenance(conn, RepoRef(pipe.project, pipe.name), br.name)
            # Output commits made before the stop that no job has picked up yet would stay
            # open forever: finish them like the killed jobs' commits.
            pending = [o.commit_pk for o in pps.pfs.output.open_commits(conn, RepoRef(pipe.project, pipe.name))]
            taken = set(conn.execute(select(s.jobs.c.commit_pk).where(
                s.jobs.c.pipeline_id == pipe.id)).scalars()) if pending else set()
            for pk in pending:
                if pk not in taken:
                    pps.pfs.output.fail(conn, pk, reason)
        kill_jobs(pps, conn, s.jobs.c.pipeline_id == pipe.id, reason)
    return pps.inspect_pipeline(name, project)


def start_pipeline(pps: PpsService, name: str, project: str) -> PipelineInfo:
    pipe = pps._row(name, project)
    if pipe.state == "running":
        return pps.inspect_pipeline(name, project)
    spec = parse_spec(json.loads(pipe.spec), f"pipeline {name}")
    now = time.time()
    with pps.b.db.tx() as conn:
        conn.execute(update(s.pipelines).where(s.pipelines.c.id == pipe.id).values(
            state="running", reason="", updated_at=now))
        provenance = ensure_inputs(pps, conn, spec, now)
        if provenance:
            # Restoring provenance makes one new output commit on the current input heads,
            # which propagates downstream like any other (``create_branch_in``).
            pps.pfs.create_branch_in(conn, RepoRef(project, name), spec.output_branch, None,
                                      provenance, None, now)
    return pps.inspect_pipeline(name, project)


def rerun_pipeline(pps: PpsService, name: str, project: str, reprocess: bool) -> PipelineInfo:
    """Submit the current spec again as an update: a new version and a job on current heads."""
    pipe = pps._row(name, project)
    doc = json.loads(pipe.user_spec)
    spec = parse_spec(doc, f"pipeline {name}")
    if pipe.state == "paused":
        raise FailedPrecondition(f"pipeline {name} is stopped; 'tusk start pipeline {name}' first")
    return pps.create_pipeline(spec, update=True, reprocess=reprocess)


def history(pps: PpsService, name: str | None, project: str | None, limit: int | None) -> list[PipelineInfo]:
    """Pipeline versions, newest first: every version when ``limit`` is None, else the last
    ``limit`` + 1 of each pipeline (pachctl's --history N counts versions back from current)."""
    p, v = s.pipelines, s.pipeline_versions
    q = (select(p.c.project, p.c.name, p.c.state, p.c.reason, p.c.created_at, p.c.id,
                v.c.version, v.c.spec, v.c.created_at.label("version_at"))
         .select_from(v.join(p, v.c.pipeline_id == p.c.id))
         .order_by(p.c.created_at.desc(), v.c.version.desc()))
    if name is not None:
        q = q.where(p.c.name == name, p.c.project == (project or "default"))
    elif project is not None:
        q = q.where(p.c.project == project)
    with pps.b.db.read() as conn:
        rows = conn.execute(q).all()
        current = {r.id: r.version for r in conn.execute(select(p.c.id, p.c.version))}
        # The last job of each version (highest job pk wins).
        last_job: dict[tuple[int, int], str] = {}
        for pid, version, state in conn.execute(select(
                s.jobs.c.pipeline_id, s.jobs.c.version, s.jobs.c.state).order_by(s.jobs.c.id)):
            last_job[(pid, version)] = state
    if name is not None and not rows:
        pps._row(name, project or "default")  # a clear "not found"
    out: list[PipelineInfo] = []
    for r in rows:
        if limit is not None and current.get(r.id, 0) - r.version > limit:
            continue
        spec = json.loads(r.spec)
        parsed = parse_spec(spec, f"pipeline {r.name}")
        repos = tuple(dict.fromkeys(leaf.repo for leaf in parsed.input.walk())) if parsed.input else ()
        state = r.state if r.version == current.get(r.id) else "superseded"
        out.append(PipelineInfo(r.project, r.name, r.version, state, r.reason, spec, r.created_at,
                                r.version_at, last_job.get((r.id, r.version)), repos))
    return out


def check_no_dependents(pps: PpsService, name: str, project: str) -> None:
    """Refuse to delete a pipeline whose output another pipeline reads."""
    users = []
    for other in pps.list_pipelines(None):
        if (other.project, other.name) == (project, name):
            continue
        spec = parse_spec(other.spec, f"pipeline {other.name}")
        for leaf in spec.input.walk() if spec.input else ():
            if (leaf.project, leaf.repo) == (project, name):
                users.append(other.name if other.project == project else f"{other.project}/{other.name}")
                break
    if users:
        raise FailedPrecondition(
            f"pipeline {name} is an input of pipeline(s) {', '.join(sorted(users))}; delete"
            " them first or use --force")


# -- jobs ---------------------------------------------------------------------------------------


def stop_job(pps: PpsService, pipeline: str, job_id: str, project: str) -> None:
    _pipe, job = pps._job_row(pipeline, job_id, project)
    with pps.b.db.tx() as conn:
        n = kill_jobs(pps, conn, s.jobs.c.id == job.id, "job was stopped")
    if n == 0:
        raise FailedPrecondition(f"job {pipeline}@{job.job_id} already finished ({job.state})")


def delete_job(pps: PpsService, pipeline: str, job_id: str, project: str) -> None:
    """Stop the job and delete its record; its output commit stays, as in Pachyderm.

    Its ``datum_runs`` rows stay too: later jobs that skipped datums it ran still point at
    them, and retracting those datums' outputs later needs them.
    """
    _pipe, job = pps._job_row(pipeline, job_id, project)
    with pps.b.db.tx() as conn:
        kill_jobs(pps, conn, s.jobs.c.id == job.id, "job was deleted")
        conn.execute(delete(s.restart_requests).where(s.restart_requests.c.job_pk == job.id))
        conn.execute(delete(s.datum_tasks).where(s.datum_tasks.c.job_pk == job.id))
        conn.execute(delete(s.jobs).where(s.jobs.c.id == job.id))


def restart_datum(pps: PpsService, pipeline: str, job_id: str, patterns: list[str], project: str) -> None:
    _pipe, job = pps._job_row(pipeline, job_id, project)
    if job.state not in UNFINISHED:
        raise FailedPrecondition(
            f"job {pipeline}@{job.job_id} is not running ({job.state}); failed datums run again in"
            f" the next job ('tusk rerun pipeline {pipeline}')")
    patterns = [p.strip() for p in patterns if p.strip()]
    if not patterns:
        raise InvalidArgument("name the datums to restart: a datum ID (or prefix) or input paths")
    with pps.b.db.tx() as conn:
        conn.execute(s.restart_requests.insert(), [
            {"job_pk": job.id, "pattern": p, "created_at": time.time()} for p in patterns])


# -- the DAG as text ---------------------------------------------------------------------------


def draw(pps: PpsService, project: str | None) -> str:
    """The repos and pipelines as an indented tree from the plain input repos down.

    A pipeline with several inputs appears under each of them; after the first time its
    subtree is not repeated ("see above").
    """
    pipes = pps.list_pipelines(project)
    key = {(p.project, p.name): p for p in pipes}
    children: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for p in pipes:
        spec = parse_spec(p.spec, f"pipeline {p.name}")
        for leaf in spec.input.walk() if spec.input else ():
            kids = children.setdefault((leaf.project, leaf.repo), [])
            if (p.project, p.name) not in kids:
                kids.append((p.project, p.name))
    roots = sorted({r for r in children if r not in key} | {k for k, p in key.items() if not p.input_repos})

    def label(node: tuple[str, str]) -> str:
        shown = node[1] if project is not None and node[0] == project else f"{node[0]}/{node[1]}"
        p = key.get(node)
        if p is None:
            return f"{shown} (repo)"
        return f"{shown} (pipeline v{p.version}, {p.state}, last job {p.last_job_state or '-'})"

    lines: list[str] = []
    seen: set[tuple[str, str]] = set()

    def walk(node: tuple[str, str], prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        again = node in seen and node in key
        lines.append(prefix + branch + label(node) + (" (see above)" if again else ""))
        if again:
            return
        seen.add(node)
        kids = sorted(children.get(node, []))
        inner = prefix + ("" if top else ("    " if last else "│   "))
        for i, kid in enumerate(kids):
            walk(kid, inner, i == len(kids) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return "\n".join(lines)
