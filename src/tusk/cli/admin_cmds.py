"""Housekeeping commands: garbage collection and consistency checks."""

from __future__ import annotations

import click

from tusk.cli.common import pfs
from tusk.cli.main import cli
from tusk.cli.output import emit, fmt_of, output_options, size


@cli.command("gc")
@output_options
def gc(fmt: str, raw: bool) -> None:
    """Free stored data that no commit references any more."""
    stats = pfs().garbage_collect()
    if fmt_of(fmt, raw) == "table":
        click.echo(f"freed {size(stats.bytes_freed)}: {stats.chunks_freed} chunks, "
                   f"{stats.packs_deleted} packs deleted, {stats.packs_rewritten} rewritten, "
                   f"{stats.nodes_freed} tree nodes")
        return
    emit(fmt_of(fmt, raw), stats.to_dict())


@cli.command("fsck")
@click.option("--no-verify", is_flag=True, help="Check presence only; do not re-hash chunks.")
@output_options
def fsck(no_verify: bool, fmt: str, raw: bool) -> None:
    """Check that every file of every commit is present and intact."""
    report = pfs().fsck(verify_hashes=not no_verify)
    if fmt_of(fmt, raw) != "table":
        emit(fmt_of(fmt, raw), report.to_dict())
    else:
        for p in report.problems or []:
            click.echo(p)
        click.echo(f"checked {report.chunks_checked} chunks: "
                   f"{len(report.problems or [])} problem(s)")
    if report.problems:
        raise SystemExit(1)
