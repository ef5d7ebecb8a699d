"""Commands for pipelines, jobs, datums and logs."""

from __future__ import annotations

import sys
from typing import Any

import click

from tusk.cli.common import SECONDS, count, kick, pps, project_option
from tusk.cli.main import (
    cli,
    create,
    delete,
    inspect,
    list_,
    start,
    stop,
    subscribe,
    update,
    validate,
    wait,
)
from tusk.cli.output import ago, emit, err, fmt_of, output_options


def _read_specs(path: str, project: str | None):  # type: ignore[no-untyped-def]
    from tusk.pps.spec import parse_specs
    from tusk.pps.spec_files import read_spec_file

    text, source = read_spec_file(path, sys.stdin.buffer)
    return parse_specs(text, source, project or "default")


def _report_ignored(spec) -> None:  # type: ignore[no-untyped-def]
    notes = list(spec.ignored_fields)
    transform = spec.user_doc.get("transform") or {}
    if isinstance(transform, dict) and transform.get("image"):
        from tusk.workers.runtimes import chosen, runs_image

        if not runs_image(spec):
            name, by = chosen(spec)
            notes.append(f"transform.image ({spec.transform.image}: {by} chose the"
                         f" {name or 'sandbox'} runtime, which runs the code on this host)")
    if notes:
        verb = "has" if len(notes) == 1 else "have"
        err(f"tusk: pipeline {spec.name}: {', '.join(notes)} {verb} no effect when running locally")


def image_options(f):  # type: ignore[no-untyped-def]
    """pachctl's image flags, and tusk's --build."""
    f = click.option("-u", "--username", default=None,
                     help="Push into this user's namespace (credentials: 'docker login').")(f)
    f = click.option("-r", "--registry", default=None, metavar="HOST[:PORT]",
                     help="The registry to push images to (default: the image's own).")(f)
    f = click.option("-p", "--push-images", is_flag=True,
                     help="Tag the local transform.image uniquely, push it, and use that tag.")(f)
    return click.option("-b", "--build", "build_image", is_flag=True,
                        help="Build transform.image from transform.dockerfile (or a Dockerfile"
                             " beside the spec) first, and use the new image.")(f)


def _imageless(spec: Any) -> Any:
    from tusk.images.publish import with_image

    return with_image(spec, "")


def _publish(specs: list[Any], path: str, build_image: bool, push_images: bool,
             registry: str | None, username: str | None) -> list[Any]:
    """The specs naming the images built and/or pushed for them (as pachctl does, first)."""
    if not (build_image or push_images):
        if registry or username:
            from tusk.errors import InvalidArgument

            raise InvalidArgument("--registry and --username go with --push-images")
        return specs
    from tusk.images import publish

    out = []
    for spec in specs:
        if build_image:
            spec = publish.with_image(spec, publish.build(spec, path))
        if push_images:
            spec = publish.with_image(spec, publish.push(spec, registry, username))
        err(f"tusk: pipeline {spec.name}: image {spec.transform.image}")
        out.append(spec)
    return out


@create.command("pipeline")
@click.option("-f", "--file", "path", required=True,
              help="Spec file or http(s) URL (JSON or YAML; '-' for stdin).")
@click.option("--dry-run", is_flag=True, help="Validate and show what would be created.")
@image_options
@project_option
def create_pipeline(path: str, dry_run: bool, build_image: bool, push_images: bool,
                    registry: str | None, username: str | None, project: str | None) -> None:
    """Create pipelines from a Pachyderm spec file."""
    specs = _read_specs(path, project)
    from tusk.cli.txn_cmds import note_queued, txn_pps
    from tusk.pfs.refs import RepoRef

    svc = txn_pps()  # inside a transaction the pipelines are created when it finishes
    if not dry_run and (build_image or push_images):
        coming_first: set[RepoRef] = set()
        for spec in specs:  # all but the image is checked before anything is built or pushed
            svc.create_pipeline(_imageless(spec), dry_run=True, coming=frozenset(coming_first))
            coming_first.add(RepoRef(spec.project, spec.name))
    if not dry_run:
        specs = _publish(specs, path, build_image, push_images, registry, username)
    coming: set[RepoRef] = set()
    for spec in specs:  # check every spec of the file before creating any of them
        svc.create_pipeline(spec, dry_run=True, coming=frozenset(coming))
        coming.add(RepoRef(spec.project, spec.name))
    for spec in specs:
        _report_ignored(spec)
        svc.create_pipeline(spec, dry_run=dry_run)
        if dry_run:
            click.echo(f"pipeline {spec.name}: valid; would create output repo {spec.name}")
    if not dry_run:
        note_queued(svc.pfs)
    from tusk.cli.common import is_remote

    if not is_remote():  # where a server runs code is the server's business
        _say_runtime(specs)


def _say_runtime(specs: list[Any]) -> None:
    """Say, where the user sees it, when user code will run without the sandbox or not at all."""
    from tusk.workers.runtimes import fallback_notes

    for note in fallback_notes(specs):
        err(note)


@update.command("pipeline")
@click.option("-f", "--file", "path", required=True,
              help="Spec file or http(s) URL (JSON or YAML; '-' for stdin).")
@click.option("--reprocess", is_flag=True, help="Reprocess every datum (new salt).")
@image_options
@project_option
def update_pipeline(path: str, reprocess: bool, build_image: bool, push_images: bool,
                    registry: str | None, username: str | None, project: str | None) -> None:
    """Update pipelines; already processed datums stay skipped unless --reprocess."""
    from tusk.cli.txn_cmds import note_queued, txn_pps

    specs = _read_specs(path, project)
    svc = txn_pps()  # inside a transaction the updates apply when it finishes
    for spec in specs:  # all but the image is checked before anything is built or pushed
        svc.create_pipeline(_imageless(spec) if build_image or push_images else spec,
                            update=True, dry_run=True)
    specs = _publish(specs, path, build_image, push_images, registry, username)
    if build_image or push_images:
        for spec in specs:  # and the images they name now
            svc.create_pipeline(spec, update=True, dry_run=True)
    for spec in specs:
        _report_ignored(spec)
        svc.create_pipeline(spec, update=True, reprocess=reprocess)
    note_queued(svc.pfs)


@validate.command("pipeline")
@click.option("-f", "--file", "path", required=True, help="Spec file (JSON or YAML; '-' for stdin).")
@project_option
def validate_pipeline(path: str, project: str | None) -> None:
    """Check specs for errors without creating anything."""
    for spec in _read_specs(path, project):
        _report_ignored(spec)
        click.echo(f"pipeline {spec.name}: valid")


def _pipe_rows(ps):  # type: ignore[no-untyped-def]
    return [[p.name, p.version, ", ".join(p.input_repos) or "-", ago(p.created_at),
             p.state, p.last_job_state or "-", p.spec.get("description", "")] for p in ps]


@list_.command("pipeline")
@click.argument("name", required=False)
@click.option("--history", default=None, metavar="N|all",
              help="Also list earlier versions: the last N, or all.")
@click.option("-s", "--spec", "specs", is_flag=True, help="Print the effective specs instead of a table.")
@click.option("--state", "states", multiple=True, metavar="STATE",
              help="Only pipelines in this state (running, paused, ...); repeatable.")
@project_option
@output_options
def list_pipeline(name: str | None, history: str | None, specs: bool, states: tuple[str, ...],
                  project: str | None, fmt: str, raw: bool) -> None:
    """List pipelines (or one pipeline's versions with --history)."""
    if history is None or history == "none":
        ps = pps().list_pipelines(project or "default")
        if name is not None:
            ps = [p for p in ps if p.name == name] or [pps().inspect_pipeline(name, project or "default")]
    else:
        limit = None if history == "all" else _history_count(history)
        ps = pps().pipeline_history(name, project or "default", limit)
    if states:
        ps = [p for p in ps if p.state in {x.lower() for x in states}]
    if specs:
        import json

        for p in ps:
            click.echo(json.dumps(p.spec, indent=2))
        return
    emit(fmt_of(fmt, raw), [p.to_dict() for p in ps],
         ["NAME", "VERSION", "INPUT", "CREATED", "STATE", "LAST JOB", "DESCRIPTION"], _pipe_rows(ps))


def _history_count(text: str) -> int:
    from tusk.errors import InvalidArgument

    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise InvalidArgument(f"--history {text!r}: give a number of versions, 'all' or 'none'")
    return n


@inspect.command("pipeline")
@click.argument("name")
@project_option
@output_options
def inspect_pipeline(name: str, project: str | None, fmt: str, raw: bool) -> None:
    """Show a pipeline and its effective spec."""
    p = pps().inspect_pipeline(name, project or "default")
    f = fmt_of(fmt, raw)
    if f == "table":
        import json

        click.echo(f"Name: {p.name}\nVersion: {p.version}\nState: {p.state}\n"
                   f"Last job: {p.last_job_state or '-'}\nSpec:\n{json.dumps(p.spec, indent=2)}")
        return
    emit(f, p.to_dict())


@delete.command("pipeline")
@click.argument("name")
@click.option("--keep-repo", is_flag=True, help="Keep the output repo.")
@click.option("-f", "--force", is_flag=True, help="Delete even if other pipelines read its output.")
@project_option
def delete_pipeline(name: str, keep_repo: bool, force: bool, project: str | None) -> None:
    """Delete a pipeline (and its output repo unless --keep-repo)."""
    pps().delete_pipeline(name, project or "default", keep_repo, force)


@stop.command("pipeline")
@click.argument("name")
@project_option
def stop_pipeline(name: str, project: str | None) -> None:
    """Stop a pipeline: its running jobs are killed and new input commits make no jobs."""
    pps().stop_pipeline(name, project or "default")


@start.command("pipeline")
@click.argument("name")
@project_option
def start_pipeline(name: str, project: str | None) -> None:
    """Restart a stopped pipeline: one job runs on the current input heads."""
    pps().start_pipeline(name, project or "default")


JOB_HEADERS = ["PIPELINE", "ID", "STARTED", "DURATION", "PROGRESS", "STATE", "REASON"]


def _job_rows(jobs):  # type: ignore[no-untyped-def]
    rows = []
    for j in jobs:
        dur = "-"
        if j.started_at and j.finished_at:
            dur = f"{j.finished_at - j.started_at:.2f}s"
        progress = f"{j.processed} + {j.skipped} / {j.total}"
        if j.failed:
            progress += f" ({j.failed} failed)"
        if j.recovered:
            progress += f" ({j.recovered} recovered)"
        rows.append([j.pipeline, j.id, ago(j.started_at) if j.started_at else "-", dur, progress,
                     j.state, j.reason])
    return rows


@list_.command("job")
@click.argument("job_id", required=False)
@click.option("-p", "--pipeline", default=None, help="Only this pipeline's jobs.")
@click.option("-n", "--number", type=count(), default=0, help="At most this many jobs.")
@project_option
@output_options
def list_job(job_id: str | None, pipeline: str | None, number: int, project: str | None, fmt: str,
             raw: bool) -> None:
    """List jobs (newest first); with an ID, every job of that commit set."""
    jobs = pps().list_jobs(pipeline, job_id, project or "default", number)
    emit(fmt_of(fmt, raw), [j.to_dict() for j in jobs], JOB_HEADERS, _job_rows(jobs))


def _split_job(ref: str) -> tuple[str, str]:
    from tusk.errors import InvalidArgument

    name, at, jid = ref.partition("@")
    if not at or not jid:
        raise InvalidArgument(f"{ref!r} is not a job: write pipeline@<job id>")
    return name, jid


@inspect.command("job")
@click.argument("ref", metavar="PIPELINE@ID")
@click.option("--wait", is_flag=True, help="Wait until the job is done.")
@project_option
@output_options
def inspect_job(ref: str, wait: bool, project: str | None, fmt: str, raw: bool) -> None:
    """Show a job."""
    name, jid = _split_job(ref)
    if wait:
        kick()
    j = pps().inspect_job(name, jid, project or "default", wait=wait)
    shown = fmt_of(fmt, raw)
    if shown not in ("json", "yaml"):
        # One job: its fields one per line, as pachctl shows them.
        (row,) = _job_rows([j])
        lines = dict(zip(["Pipeline", "ID", "Started", "Duration", "Progress", "State",
                          "Reason"], row, strict=True))
        lines["Output Commit"] = f"{j.pipeline}@{j.output_commit}"
        if j.image:
            lines["Image"] = j.image
        width = max(len(k) for k in lines) + 1
        click.echo("\n".join(f"{k + ':':<{width}} {v}" for k, v in lines.items()))
        return
    emit(shown, j.to_dict(), JOB_HEADERS, _job_rows([j]))


@wait.command("job")
@click.argument("ref", metavar="PIPELINE@ID")
@click.option("--timeout", type=SECONDS, default=None)
@project_option
def wait_job(ref: str, timeout: float | None, project: str | None) -> None:
    """Wait until a job is done; exit non-zero unless it succeeded."""
    name, jid = _split_job(ref)
    kick()
    j = pps().inspect_job(name, jid, project or "default", wait=True, timeout=timeout)
    click.echo(j.state)
    if j.state != "SUCCESS":
        raise SystemExit(1)


@subscribe.command("job")
@click.argument("pipeline", required=False)
@click.option("--new", "new_only", is_flag=True, help="Only jobs created from now on.")
@click.option("--timeout", type=SECONDS, default=None, help="Stop after this many seconds.")
@project_option
@output_options
def subscribe_job(pipeline: str | None, new_only: bool, timeout: float | None, project: str | None,
                  fmt: str, raw: bool) -> None:
    """Print a job when it starts and whenever its state or progress changes (until interrupted)."""
    import json

    kick()
    f = fmt_of(fmt, raw)
    for j in pps().subscribe_jobs(pipeline, project or "default", new_only, timeout):
        click.echo(json.dumps(j.to_dict()) if f != "table" else "  ".join(map(str, _job_rows([j])[0])))


@list_.command("datum")
@click.argument("ref", required=False, metavar="PIPELINE[@ID]")
@click.option("-f", "--file", "path", default=None, help="Preview the datums of a spec instead.")
@click.option("--why", is_flag=True, help="Say why each datum ran or was skipped (as 'tusk explain').")
@project_option
@output_options
def list_datum(ref: str | None, path: str | None, why: bool, project: str | None, fmt: str,
               raw: bool) -> None:
    """List a job's datums with their state, or preview a spec's datums (-f)."""
    from tusk.errors import InvalidArgument

    if why:
        if path is not None or ref is None:
            raise InvalidArgument("--why needs a job (pipeline@id), not a spec file")
        from tusk.cli.lineage_cmds import show_why

        show_why(ref, project, fmt_of(fmt, raw))
        return
    if path is not None:
        ds = [d for spec in _read_specs(path, project) for d in pps().preview_datums(spec)]
    elif ref is None:
        raise InvalidArgument("name a job (pipeline@id) or a spec file (-f spec.json)")
    else:
        name, _, jid = ref.partition("@")
        ds = pps().list_datums(name, jid or None, project or "default")
    emit(fmt_of(fmt, raw), [d.to_dict() for d in ds], ["ID", "FILES", "STATUS", "TIME"],
         [[d.id[:12], ", ".join(d.files[:3]) + (" ..." if len(d.files) > 3 else ""), d.state,
           f"{d.seconds:.3f}s" if d.seconds is not None else "-"] for d in ds])


@cli.command("worker")
@click.option("--idle", type=SECONDS, default=0,
              help="Exit after this many seconds without a task (0: never).")
def worker(idle: float) -> None:
    """Run datums of any pipeline's jobs on this machine, in the foreground.

    The controller starts workers for its pipelines' parallelism by itself; start more by hand
    (here or on another host that reaches the same metadata and object store) to share the
    work. Stop it with Ctrl-C or SIGTERM: the datum it runs is given back."""
    import signal

    from tusk.cli.common import pfs
    from tusk.pps.worker import Worker, shutdown

    w = Worker(pfs())
    signal.signal(signal.SIGTERM, lambda *_: shutdown(w))
    signal.signal(signal.SIGINT, lambda *_: shutdown(w))
    w.run(idle if idle > 0 else float("inf"))


@cli.command("controller", hidden=True)
@click.option("--idle", type=SECONDS, default=0, help="Exit after this many idle seconds (0: never).")
def controller(idle: float) -> None:
    """Run the controller in the foreground."""
    from tusk.cli.common import pfs
    from tusk.pps.controller import Controller
    from tusk.pps.launch import release, try_lock

    svc = pfs()
    fd = try_lock(svc.b.root)
    if fd is None:
        from tusk.errors import Busy

        raise Busy("a controller is already running for this root")
    ctl = Controller(svc)
    ctl.supervisor.stop_on_sigterm()  # SIGTERM must not orphan spouts and services
    try:
        ctl.serve(idle=idle, lock_fd=None)
    finally:
        ctl.supervisor.stop_all()
        release(fd)
