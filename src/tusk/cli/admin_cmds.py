"""Housekeeping commands: garbage collection and consistency checks."""

from __future__ import annotations

import click

from tusk.cli.common import pfs
from tusk.cli.main import cli
from tusk.cli.output import emit, fmt_of, output_options, size


@cli.command("gc")
@click.option("--grace", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Keep unindexed packs of live writers, and scratch files no writer is named "
                   "on, until this old (default: $TUSK_GC_GRACE, else 3600). 0 is safe only "
                   "while nothing writes.")
@click.option("--timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Wait at most this long for running writes to finish (default: as long as "
                   "they take).")
@output_options
def gc(grace: float | None, timeout: float | None, fmt: str, raw: bool) -> None:
    """Free stored data that no commit references any more, and what killed writers left."""
    svc = pfs()
    stats = svc.garbage_collect(grace=grace, timeout=timeout)
    images, image_bytes = 0, 0
    if not getattr(svc, "remote", False):  # a server prunes its own root's images
        from tusk.pfs.gc import default_grace
        from tusk.pps import image_use

        images, image_bytes = image_use.prune(svc.b.root, svc.b.db,
                                              default_grace() if grace is None else grace)
    if fmt_of(fmt, raw) == "table":
        click.echo(f"freed {size(stats.bytes_freed + image_bytes)}: {stats.chunks_freed} chunks, "
                   f"{stats.packs_deleted} packs deleted, {stats.packs_rewritten} rewritten, "
                   f"{stats.nodes_freed} tree nodes, {stats.scratch_freed} scratch files, "
                   f"{images} unpacked images")
        return
    emit(fmt_of(fmt, raw), {**stats.to_dict(), "images_freed": images,
                            "image_bytes_freed": image_bytes})


@cli.command("fsck")
@click.option("--no-verify", is_flag=True, help="Check presence only; do not re-hash chunks.")
@output_options
def fsck(no_verify: bool, fmt: str, raw: bool) -> None:
    """Check that every file of every commit is present and intact, and that nothing refers
    to something missing. Exits 1 on any problem."""
    report = pfs().fsck(verify_hashes=not no_verify)
    if fmt_of(fmt, raw) != "table":
        emit(fmt_of(fmt, raw), report.to_dict())
    else:
        for p in report.problems or []:
            click.echo(p)
        left = report.reclaimable or {}
        files, packs = left.get("scratch_files", 0), left.get("unindexed_packs", 0)
        if files or packs:
            click.echo(f"reclaimable by 'tusk gc': {files} scratch file(s) of dead writers "
                       f"({size(left.get('scratch_bytes', 0))}), {packs} unindexed pack(s) "
                       f"({size(left.get('unindexed_bytes', 0))})")
        click.echo(f"checked {report.chunks_checked} chunks: "
                   f"{len(report.problems or [])} problem(s)")
    if report.problems:
        raise SystemExit(1)
