"""Creating and updating a pipeline: every check first, then ONE metadata transaction.

A pipeline change touches several records: the pipeline and its version rows, the jobs of the
version it supersedes, the output repo, the output branch (whose provenance is the input
branches, so its new head commit is the job for this version) and, for some specs, input
branches, trigger branches or cron repos it needs. All of them are written in one metadata
transaction, so a change that is refused at any point (a cycle found by the branch graph, a
trigger that clashes with provenance, a branch that moved meanwhile) leaves the root exactly
as it was, and a crash part-way leaves nothing half-made.

The checks that need no writes run before the transaction (so ``--dry-run`` and transactions
can ask them alone): the pipeline exists or not as the verb needs, its name is free, its kind
does not change, its inputs exist, and the DAG with this change stays acyclic (``spec_graph``).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select
from sqlalchemy import update as sql_update

from tusk.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from tusk.pfs.refs import RepoRef
from tusk.pps import spec_graph
from tusk.pps.spec import PipelineSpec, parse_spec
from tusk.pps.spec_inputs import CronInput
from tusk.storage import schema as s

if TYPE_CHECKING:
    from sqlalchemy import Row

    from tusk.pps.model import PipelineInfo
    from tusk.pps.service import PpsService

SUPERSEDED = "superseded by a pipeline update"


def create_pipeline(pps: PpsService, spec: PipelineSpec, update: bool, reprocess: bool,
                    dry_run: bool, coming: frozenset[RepoRef], set_id: str | None) -> PipelineInfo:
    """See ``PpsService.create_pipeline``."""
    existing = check(pps, spec, update, dry_run, coming)
    if dry_run:
        return pps._info_of_spec(spec)
    apply(pps, spec, existing, reprocess, set_id)
    return pps.inspect_pipeline(spec.name, spec.project)


def check(pps: PpsService, spec: PipelineSpec, update: bool, dry_run: bool,
          coming: frozenset[RepoRef], pending: tuple[PipelineSpec, ...] = ()) -> Row | None:
    """Every check that needs no write; returns the pipeline's current row (None if new).
    ``pending``: changes to apply before this one (a transaction's queue), which the cycle
    check counts as made."""
    pfs = pps.pfs
    pfs.inspect_project(spec.project)
    existing = pps._find(spec.project, spec.name)
    if existing is not None and not update:
        raise AlreadyExists(f"pipeline {spec.name} already exists; use 'tusk update pipeline'")
    if existing is None and update:
        raise NotFound(f"pipeline {spec.name} not found; use 'tusk create pipeline'")
    out_ref = RepoRef(spec.project, spec.name)
    if existing is None and pps._repo_exists(out_ref):
        raise AlreadyExists(
            f"repo {out_ref} already exists; a pipeline's output repo takes the pipeline's name")
    if existing is not None:
        was = parse_spec(json.loads(existing.spec), f"pipeline {spec.name}").pipeline_type
        if was != spec.pipeline_type:
            # Jobs and output provenance differ between the kinds; switching in place would
            # leave the old kind's commits and processes behind.
            raise InvalidArgument(
                f"pipeline {spec.name} is a {was} pipeline and cannot become a"
                f" {spec.pipeline_type} pipeline; delete it and create it again")
    for leaf in spec.input.walk() if spec.input else ():
        if isinstance(leaf, CronInput):
            continue
        ref = RepoRef(leaf.project, leaf.repo)
        if dry_run and ref in coming:
            continue
        try:
            pfs.inspect_repo(ref)
        except NotFound:
            raise NotFound(f"pipeline {spec.name}: input repo {ref} not found; create it first"
                           f" ('tusk create repo {ref}')") from None
    _check_image(pps, spec)
    graph = {spec_graph.output_of(o): o for o in (
        parse_spec(p.spec, f"pipeline {p.name}", p.project) for p in pps.list_pipelines(None))}
    graph.update({spec_graph.output_of(o): o for o in pending})
    graph.pop(spec_graph.output_of(spec), None)
    spec_graph.check_change(graph.values(), spec)
    return existing


def _check_image(pps: PpsService, spec: PipelineSpec) -> None:
    """The secrets the spec names exist, and its image exists where it will be looked for
    when its jobs start (each job resolves it again, to run what the tag names then)."""
    from tusk.pps import image_use
    from tusk.pps.secrets import SecretStore, check_spec_secrets
    from tusk.workers.runtimes import runs_image

    check_spec_secrets(SecretStore(pps.pfs.b.root), spec)
    if not runs_image(spec):
        return
    try:
        image_use.resolve(pps.pfs.b.root, spec)
    except (NotFound, InvalidArgument) as e:
        raise type(e)(f"pipeline {spec.name}: {e.message}") from None


def apply(pps: PpsService, spec: PipelineSpec, existing: Row | None, reprocess: bool,
          set_id: str | None) -> None:
    """Write the change in one metadata transaction (see the module docstring)."""
    pfs = pps.pfs
    now = time.time()
    # The salt survives updates (processed datums stay skipped); a reprocess always draws a
    # new one, even when the spec carries the old salt (e.g. from 'inspect pipeline').
    if reprocess:
        salt = uuid.uuid4().hex
    else:
        salt = spec.salt or (existing.salt if existing is not None else uuid.uuid4().hex)
    effective = spec.to_dict()
    effective["salt"] = salt
    out_ref = RepoRef(spec.project, spec.name)
    with pps.b.db.tx() as conn:
        current = conn.execute(select(s.pipelines).where(
            s.pipelines.c.project == spec.project, s.pipelines.c.name == spec.name)).first()
        if (current is None) != (existing is None) or (
                current is not None and existing is not None and current.version != existing.version):
            raise Conflict(f"pipeline {spec.name} changed while this change was being made;"
                           " run it again")
        provenance = ensure_inputs(pps, conn, spec, now)
        version = 1 if existing is None else existing.version + 1
        if existing is None:
            pid = conn.execute(s.pipelines.insert().values(
                project=spec.project, name=spec.name, version=1, spec=json.dumps(effective),
                user_spec=json.dumps(spec.user_doc), salt=salt, state="running", reason="",
                created_at=now, updated_at=now)).inserted_primary_key[0]
        else:
            pid = existing.id
            conn.execute(sql_update(s.pipelines).where(s.pipelines.c.id == existing.id).values(
                version=version, spec=json.dumps(effective),
                user_spec=json.dumps(spec.user_doc), salt=salt, updated_at=now))
        conn.execute(s.pipeline_versions.insert().values(
            pipeline_id=pid, version=version, spec=json.dumps(effective),
            user_spec=json.dumps(spec.user_doc), salt=salt, created_at=now))
        if existing is not None:
            # Jobs of the old version that have not finished are superseded, their open output
            # commits finished with that reason (before the new head commit is made).
            _supersede_jobs(pps, conn, existing.id, now)
        if existing is None:
            pfs.create_repo_in(conn, out_ref, spec.description, now)
        old = pfs.find_branch(conn, out_ref, spec.output_branch)
        old_prov = pfs.branch_upstreams(conn, out_ref, spec.output_branch)
        if existing is not None and existing.state == "paused":
            pass  # the stopped flag survives updates: 'start pipeline' makes the next job
        elif old is not None and spec.pipeline_type != "transform":
            pass  # a spout's or service's output has no jobs: the supervisor restarts the process
        elif old is None or old_prov != set(provenance):
            # New provenance gives the branch a new head commit: the job for this version.
            pfs.create_branch_in(conn, out_ref, spec.output_branch, None, provenance, None, now,
                                  set_id=set_id)
        else:
            pfs.trigger_branch_in(conn, out_ref, spec.output_branch, set_id, now)


def _supersede_jobs(pps: PpsService, conn: Connection, pipeline_id: int, now: float) -> None:
    j = s.jobs
    rows = conn.execute(select(j.c.id, j.c.commit_pk).where(
        j.c.pipeline_id == pipeline_id, j.c.state.in_(["CREATED", "STARTING", "RUNNING"]))).all()
    for job_pk, commit_pk in rows:
        conn.execute(sql_update(j).where(j.c.id == job_pk).values(
            state="KILLED", reason=SUPERSEDED, finished_at=now))
        pps.pfs.output.fail(conn, commit_pk, SUPERSEDED)


def input_branches(spec: PipelineSpec) -> list[tuple[RepoRef, str]]:
    """The (repo, branch) pairs a pipeline's output branch has as provenance."""
    if spec.pipeline_type != "transform":
        # Spouts and services run as supervised processes (supervisor.py), not jobs: input
        # commits must not open output commits that no job would ever finish.
        return []
    provenance: list[tuple[RepoRef, str]] = []
    for leaf in spec.input.walk() if spec.input else ():
        branch = "master" if isinstance(leaf, CronInput) else leaf.branch
        pair = (RepoRef(leaf.project, leaf.repo), branch)
        if pair not in provenance:
            provenance.append(pair)
    return provenance


def ensure_inputs(pps: PpsService, conn: Connection, spec: PipelineSpec,
                  now: float) -> list[tuple[RepoRef, str]]:
    """Make what the inputs need, in ``conn``'s transaction: cron repos, input branches (empty
    heads, so the first job can run) and input triggers. Returns ``input_branches(spec)``."""
    pfs = pps.pfs
    for leaf in spec.input.walk() if spec.input else ():
        ref = RepoRef(leaf.project, leaf.repo)
        branch = "master" if isinstance(leaf, CronInput) else leaf.branch
        if isinstance(leaf, CronInput) and pfs.find_repo(conn, ref) is None:
            pfs.create_repo_in(conn, ref, f"cron ticks for pipeline {spec.name}", now)
        if getattr(leaf, "trigger", None):  # input.pfs.trigger: PFS moves `branch`
            pfs.set_trigger_from_spec_in(conn, ref, branch, leaf.trigger, now)
        if pfs.find_branch(conn, ref, branch) is None:
            pfs.create_branch_in(conn, ref, branch, None, None, None, now)
    return input_branches(spec)
