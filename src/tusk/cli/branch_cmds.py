"""Commands for branches: create (or move, or give a trigger), inspect, list, delete."""

from __future__ import annotations

import click

from tusk.cli.common import count, pfs, project_option
from tusk.cli.main import create, delete, inspect, list_
from tusk.cli.output import ago, emit, fmt_of, output_options

HEADERS = ["BRANCH", "HEAD", "UPDATED", "PROVENANCE"]


def _split(ref: str, project: str | None):  # type: ignore[no-untyped-def]
    from tusk.errors import InvalidArgument
    from tusk.pfs.refs import parse_repo

    repo, at, branch = ref.partition("@")
    if not at or not branch:
        raise InvalidArgument(f"{ref!r} names no branch: write repo@branch")
    return parse_repo(repo, project), branch


@create.command("branch")
@click.argument("ref", metavar="REPO@BRANCH")
@click.option("--head", default=None, help="Commit (branch or ID, same repo) the branch points at.")
@click.option("-p", "--provenance", multiple=True, metavar="REPO@BRANCH",
              help="Upstream branch (repeatable): its commits propagate to this branch.")
@click.option("-t", "--trigger", "trigger_branch", default=None, metavar="BRANCH",
              help="Move this branch to BRANCH's head (same repo) when a condition holds.")
@click.option("--trigger-size", default="", metavar="SIZE",
              help="Condition: at least SIZE (e.g. 1MB, 500KiB) added since this branch's head.")
@click.option("--trigger-commits", type=count(1), default=None, metavar="N",
              help="Condition: at least N commits since this branch's head.")
@click.option("--trigger-cron", default="", metavar="SPEC",
              help="Condition: a tick of this cron spec (e.g. '@every 10m') since the last move.")
@click.option("--trigger-all", is_flag=True, help="Fire only when every condition holds (default: any).")
@project_option
def create_branch(ref: str, head: str | None, provenance: tuple[str, ...], trigger_branch: str | None,
                  trigger_size: str, trigger_commits: int | None, trigger_cron: str, trigger_all: bool,
                  project: str | None) -> None:
    """Create a branch, move an existing one to --head, or set its --trigger."""
    from tusk.cli.txn_cmds import note_queued, txn_pfs
    from tusk.errors import InvalidArgument
    from tusk.pfs.refs import parse_commit
    from tusk.pfs.triggers import Trigger

    repo, branch = _split(ref, project)
    head_ref = None
    if head is not None:
        head_ref = parse_commit(head if "@" in head else f"{repo.repo}@{head}", repo.project)
    prov = [_split(p, project) for p in provenance] if provenance else None
    trigger = None
    if trigger_branch is not None:
        trigger = Trigger(trigger_branch, trigger_size, trigger_commits or 0, trigger_cron, trigger_all)
    elif trigger_size or trigger_commits or trigger_cron or trigger_all:
        raise InvalidArgument("--trigger-size/-commits/-cron/-all need --trigger BRANCH")
    svc = txn_pfs()
    svc.create_branch(repo, branch, head_ref, prov, trigger)
    note_queued(svc)


@inspect.command("branch")
@click.argument("ref", metavar="REPO@BRANCH")
@project_option
@output_options
def inspect_branch(ref: str, project: str | None, fmt: str, raw: bool) -> None:
    """Show a branch."""
    repo, branch = _split(ref, project)
    b = pfs().inspect_branch(repo, branch)
    if fmt_of(fmt, raw) == "table":
        from tusk.pfs.triggers import Trigger

        trigger = Trigger(**b.trigger).describe() if b.trigger else "-"
        click.echo(f"Name: {b.repo}@{b.name}\nHead Commit: {b.head}\n"
                   f"Provenance: {', '.join(b.provenance) or '-'}\n"
                   f"Subvenance: {', '.join(b.subvenance) or '-'}\nTrigger: {trigger}")
        return
    emit(fmt_of(fmt, raw), b.to_dict())


@list_.command("branch")
@click.argument("repo")
@project_option
@output_options
def list_branch(repo: str, project: str | None, fmt: str, raw: bool) -> None:
    """List a repo's branches."""
    from tusk.pfs.refs import parse_repo

    bs = pfs().list_branches(parse_repo(repo, project))
    emit(fmt_of(fmt, raw), [b.to_dict() for b in bs], HEADERS,
         [[b.name, b.head, ago(b.updated_at), ", ".join(b.provenance) or "-"] for b in bs])


@delete.command("branch")
@click.argument("ref", metavar="REPO@BRANCH")
@click.option("-f", "--force", is_flag=True, help="Delete even if other branches depend on it.")
@project_option
def delete_branch(ref: str, force: bool, project: str | None) -> None:
    """Delete a branch (its commits stay)."""
    from tusk.cli.txn_cmds import note_queued, txn_pfs

    repo, branch = _split(ref, project)
    svc = txn_pfs()
    svc.delete_branch(repo, branch, force)
    note_queued(svc)
