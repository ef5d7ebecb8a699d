"""'tusk lineage' and 'tusk explain': where an output file came from, and why each datum ran."""

from __future__ import annotations

from typing import Any

import click

from tusk.cli.common import count, pps, project_option
from tusk.cli.main import cli
from tusk.cli.output import emit, fmt_of, output_options


def _where(node: dict[str, Any]) -> str:
    repo = node["repo"] if node.get("project", "default") == "default" else f"{node['project']}/{node['repo']}"
    return f"{repo}:{node['path']}"


def _made_by(node: dict[str, Any]) -> str:
    origin = node.get("origin")
    if origin == "pipeline":
        text = (f"pipeline {node['pipeline']} v{node['pipeline_version']}, job {node['job']},"
                f" datum {node['datum'][:12]}")
        if node.get("image"):
            text += f", image {node['image']}"
        return text + (" (not followed further: --depth)" if node.get("truncated") else "")
    if origin == "input":
        return f"original input, added in commit {node['added_in']}"
    return "unknown (its input commit is gone)"


def _tree_rows(node: dict[str, Any], level: int = 0) -> list[list[str]]:
    """An indented tree: each input file under the output file it went into."""
    # The input's name only when it is not just the repo's name (it is what the code saw).
    named = "input" in node and node["input"] != node["repo"]
    label = ("  " * level) + (f"{node['input']}=" if named else "") + _where(node)
    rows = [[label, node.get("commit", "-"), node["hash"][:12], _made_by(node)]]
    for child in node.get("inputs", ()):
        rows.extend(_tree_rows(child, level + 1))
    return rows


@cli.command("lineage")
@click.argument("ref", metavar="REPO@REF:PATH")
@click.option("--downstream", is_flag=True,
              help="List the output files made from this file version instead, down the DAG.")
@click.option("--all", "superseded", is_flag=True,
              help="With --downstream: also list outputs superseded by later jobs.")
@click.option("--depth", type=count(), default=None,
              help="Follow at most this many pipelines up the DAG (default: all the way).")
@project_option
@output_options
def lineage(ref: str, downstream: bool, superseded: bool, depth: int | None, project: str | None,
            fmt: str, raw: bool) -> None:
    """Show which datum, job and input files produced a file, recursively up the DAG.

    With --downstream, show every output file that depends on this version of the file.
    """
    from tusk.errors import InvalidArgument
    from tusk.pfs.refs import parse_file

    fref = parse_file(ref, project, require_path=True)
    f = fmt_of(fmt, raw)
    if downstream:
        if depth is not None:
            raise InvalidArgument("--depth applies to upstream lineage; drop it with --downstream")
        outs = pps().lineage_downstream(fref, superseded)
        emit(f, outs, ["FILE", "PIPELINE", "JOB", "DATUM", "HASH", "STATUS", "FROM"],
             [[("  " * (o["level"] - 1)) + _where(o), f"{o['pipeline']} v{o['pipeline_version']}",
               o["job"], o["datum"][:12], o.get("hash", "-")[:12],
               "current" if o["current"] else "superseded", _where(o["input"])] for o in outs])
        return
    if superseded:
        raise InvalidArgument("--all applies to --downstream")
    node = pps().lineage(fref, depth)
    emit(f, node, ["FILE", "COMMIT", "HASH", "PRODUCED BY"], _tree_rows(node))


def show_why(ref: str, project: str | None, fmt: str) -> None:
    """Print each datum of a job with why it ran or was skipped ('explain', 'list datum --why')."""
    name, _, jid = ref.partition("@")
    ds = pps().explain_job(name, jid or None, project or "default")
    emit(fmt, ds, ["ID", "WHY", "STATUS", "JOB", "FILES"],
         [[d["id"][:12], d["why"], d["state"], d["job"],
           ", ".join(d["files"][:3]) + (" ..." if len(d["files"]) > 3 else "")] for d in ds])


@cli.command("explain")
@click.argument("ref", metavar="PIPELINE[@JOB]")
@project_option
@output_options
def explain(ref: str, project: str | None, fmt: str, raw: bool) -> None:
    """Say why each datum of a job ran (new, changed, previously failed, reprocess requested)
    or was skipped (unchanged). Without @JOB, the pipeline's newest job."""
    show_why(ref, project, fmt_of(fmt, raw))
