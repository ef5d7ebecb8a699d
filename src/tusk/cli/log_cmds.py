"""'tusk logs' and 'inspect datum': what user code printed, per datum, with timestamps."""

from __future__ import annotations

import json

import click

from tusk.cli.common import kick, pps, project_option
from tusk.cli.main import cli, inspect
from tusk.cli.output import emit, fmt_of, output_options


@cli.command("logs")
@click.option("-p", "--pipeline", required=True, help="Pipeline whose logs to show.")
@click.option("-j", "--job", default=None, help="Only this job (ID or prefix).")
@click.option("--datum", default=None, help="Only this datum (ID or prefix).")
@click.option("--inputs", default=None, metavar="PATHS",
              help="Only the datum(s) with these input files (comma-separated paths or hashes).")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing new lines: with --job until that job finishes, else until ^C.")
@click.option("--raw", is_flag=True, help="One JSON object per line (same as -o json).")
@click.option("-o", "--output", "fmt", type=click.Choice(("text", "json")), default="text",
              help="Output format.")
@project_option
def logs(pipeline: str, job: str | None, datum: str | None, inputs: str | None, follow: bool,
         raw: bool, fmt: str, project: str | None) -> None:
    """Show what user code printed, line by line with time, job and datum.

    Text lines read '<time> <job> <datum> <line>' (UTC time, job and datum IDs shortened);
    --raw prints JSON lines with pipeline, job, datum, ts, stream (stdout, stderr, or tusk for
    the runner's own notes), line and attempt. Lines are grouped by job, oldest job first, and
    merged by time across a job's datums.
    """
    paths = tuple(p.strip() for p in (inputs or "").split(",") if p.strip())
    as_json = raw or fmt == "json"
    if follow:
        kick()  # a followed job only ends if a controller is running it
    for line in pps().logs(pipeline, job, datum, project or "default", paths, follow):
        # click.echo flushes each line, which --follow through a pipe needs.
        click.echo(json.dumps(line.to_dict(), ensure_ascii=False) if as_json else line.text())


@inspect.command("datum")
@click.argument("ref", metavar="PIPELINE@JOB")
@click.argument("datum", metavar="DATUM")
@project_option
@output_options
def inspect_datum(ref: str, datum: str, project: str | None, fmt: str, raw: bool) -> None:
    """Show a datum of a job (ID or prefix): state, files, attempts and, if it failed, the
    last lines it printed to stderr."""
    from tusk.errors import InvalidArgument

    name, at, jid = ref.partition("@")
    if not at or not name or not jid:
        raise InvalidArgument(f"{ref!r} is not a job: write pipeline@<job id>")
    d = pps().inspect_datum(name, jid, datum, project or "default")
    tail = list(d.extra.get("stderr", []))
    data = {**d.to_dict(), "stderr": tail}
    data.pop("extra", None)
    rows = [["ID", d.id], ["Job", d.job or jid], ["State", d.state],
            ["Inputs", ", ".join(d.files) or "-"], ["Outputs", ", ".join(d.outputs) or "-"],
            ["Attempts", d.attempts],
            ["Time", f"{d.seconds:.3f}s" if d.seconds is not None else "-"],
            ["Reason", d.reason or "-"]]
    if fmt_of(fmt, raw) != "table":
        emit(fmt_of(fmt, raw), data)
        return
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        click.echo(f"{key + ':':<{width}} {value}")
    if tail and d.state not in ("SUCCESS", "SKIPPED"):
        click.echo(f"Last stderr ({len(tail)} line{'s' if len(tail) != 1 else ''}):")
        for line in tail:
            click.echo(f"  {line}")
