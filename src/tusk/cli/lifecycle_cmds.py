"""Pipeline lifecycle commands beyond create/update: rerun, edit, draw, run cron, and stopping,
deleting or restarting jobs and datums (pachctl's grammar)."""

from __future__ import annotations

import json

import click

from tusk.cli.common import pps, project_option
from tusk.cli.main import delete, draw, edit, rerun, restart, run, stop
from tusk.cli.output import err


def _split_job(ref: str) -> tuple[str, str]:
    from tusk.errors import InvalidArgument

    name, at, jid = ref.partition("@")
    if not at or not name or not jid:
        raise InvalidArgument(f"{ref!r} is not a job: write pipeline@<job id>")
    return name, jid


@rerun.command("pipeline")
@click.argument("name")
@click.option("--reprocess", is_flag=True, help="Run every datum again, not only new or changed ones.")
@project_option
def rerun_pipeline(name: str, reprocess: bool, project: str | None) -> None:
    """Submit the pipeline's spec again: a new version and a job on the current input heads."""
    p = pps().rerun_pipeline(name, project or "default", reprocess)
    click.echo(f"pipeline {p.name}: version {p.version}")


@edit.command("pipeline")
@click.argument("name")
@click.option("--editor", default=None, help="Editor to use (default: $EDITOR, else vi).")
@click.option("-o", "--output", "fmt", type=click.Choice(["json", "yaml"]), default="json",
              help="Format to edit the spec in.")
@click.option("--reprocess", is_flag=True, help="Run every datum again after the update.")
@project_option
def edit_pipeline(name: str, editor: str | None, fmt: str, reprocess: bool, project: str | None) -> None:
    """Open the pipeline's spec in an editor, then update the pipeline with what you saved."""
    from tusk.errors import InvalidArgument
    from tusk.pps.spec import parse_specs

    proj = project or "default"
    current = pps().inspect_pipeline(name, proj)
    doc = pps().user_spec(name, proj)
    if fmt == "yaml":
        import yaml

        text = yaml.safe_dump(doc, sort_keys=False)
    else:
        text = json.dumps(doc, indent=2) + "\n"
    edited = click.edit(text, editor=editor, extension=f".{fmt}", require_save=True)
    if edited is None or edited.strip() == text.strip():
        err(f"tusk: pipeline {name}: spec unchanged; nothing updated")
        return
    specs = parse_specs(edited, f"edited spec of {name}", proj)
    if len(specs) != 1 or specs[0].name != name or specs[0].project != current.project:
        raise InvalidArgument(f"the edited spec must describe pipeline {name} only (renaming or"
                              " moving a pipeline is not possible; create a new one)")
    p = pps().create_pipeline(specs[0], update=True, reprocess=reprocess)
    click.echo(f"pipeline {p.name}: version {p.version}")


@draw.command("pipeline")
@click.option("-A", "--all-projects", is_flag=True, help="Draw every project's pipelines.")
@project_option
def draw_pipeline(all_projects: bool, project: str | None) -> None:
    """Draw the DAG: input repos at the top, each pipeline under the repos it reads."""
    text = pps().draw(None if all_projects else (project or "default"))
    click.echo(text or "no pipelines")


@run.command("cron")
@click.argument("name")
@project_option
def run_cron(name: str, project: str | None) -> None:
    """Tick a pipeline's cron inputs now (a new file in each cron repo)."""
    for repo, path in pps().run_cron(name, project or "default"):
        click.echo(f"{repo}: {path}")


@stop.command("job")
@click.argument("ref", metavar="PIPELINE@ID")
@project_option
def stop_job(ref: str, project: str | None) -> None:
    """Kill a running job; its output commit is finished with an error."""
    name, jid = _split_job(ref)
    pps().stop_job(name, jid, project or "default")


@delete.command("job")
@click.argument("ref", metavar="PIPELINE@ID")
@project_option
def delete_job(ref: str, project: str | None) -> None:
    """Stop a job and delete its record (its output commit stays)."""
    name, jid = _split_job(ref)
    pps().delete_job(name, jid, project or "default")


@restart.command("datum")
@click.argument("ref", metavar="PIPELINE@ID")
@click.argument("datums", metavar="DATUM|PATH[,...]")
@project_option
def restart_datum(ref: str, datums: str, project: str | None) -> None:
    """Restart running datums of a job, by datum ID (or prefix) or input file path."""
    name, jid = _split_job(ref)
    pps().restart_datum(name, jid, datums.split(","), project or "default")
