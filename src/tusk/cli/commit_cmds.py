"""Commands for commits and commit sets: start, finish, inspect, list, wait, subscribe,
delete and squash."""

from __future__ import annotations

import click

from tusk.cli.common import SECONDS, count, kick, pfs, project_option
from tusk.cli.main import delete, finish, inspect, list_, squash, start, subscribe, wait
from tusk.cli.output import ago, emit, fmt_of, output_options, size

COMMIT_HEADERS = ["REPO", "BRANCH", "COMMIT", "FINISHED", "SIZE", "ORIGIN", "DESCRIPTION"]


def _row(c) -> list:  # type: ignore[no-untyped-def]
    repo = c.repo if c.project == "default" else f"{c.project}/{c.repo}"
    finished = ago(c.finished_at) if c.finished else "-"
    if c.error:
        finished += " (error)"
    return [repo, c.branch or "-", c.id, finished, size(c.size_bytes), c.origin, c.description]


def _is_set_id(text: str) -> bool:
    from tusk.pfs.names import is_commit_id

    return "@" not in text and is_commit_id(text)


@start.command("commit")
@click.argument("ref", metavar="REPO@BRANCH")
@click.option("-p", "--parent", default=None, help="Parent commit (branch or ID) in the same repo.")
@click.option("-m", "--message", "--description", "description", default="", help="Description.")
@project_option
@output_options
def start_commit(ref: str, parent: str | None, description: str, project: str | None, fmt: str, raw: bool) -> None:
    """Start a commit on a branch; prints its ID."""
    from tusk.pfs.refs import parse_commit

    c = parse_commit(ref, project, default_branch="master")
    parent_ref = None
    if parent is not None:
        parent_ref = parse_commit(parent if "@" in parent else f"{c.repo.repo}@{parent}", c.repo.project)
    from tusk.cli.txn_cmds import txn_pfs

    info = txn_pfs().start_commit(c.repo, c.branch or "master", parent_ref, description)
    if fmt_of(fmt, raw) == "table":
        click.echo(info.id)
    else:
        emit(fmt_of(fmt, raw), info.to_dict())


@finish.command("commit")
@click.argument("ref", metavar="REPO@REF")
@click.option("-m", "--message", "--description", "description", default=None, help="Description.")
@click.option("-f", "--force", is_flag=True, help="Finish even a commit a pipeline owns.")
@project_option
def finish_commit(ref: str, description: str | None, force: bool, project: str | None) -> None:
    """Finish an open commit: its staged changes become immutable."""
    from tusk.cli.txn_cmds import txn_pfs
    from tusk.pfs.refs import parse_commit

    txn_pfs().finish_commit(parse_commit(ref, project), description, force=force)


@inspect.command("commit")
@click.argument("ref", metavar="REPO@REF")
@click.option("--wait", is_flag=True, help="Wait until the commit is finished.")
@project_option
@output_options
def inspect_commit(ref: str, wait: bool, project: str | None, fmt: str, raw: bool) -> None:
    """Show a commit."""
    from tusk.pfs.refs import parse_commit

    c = pfs().inspect_commit(parse_commit(ref, project), wait=wait)
    if fmt_of(fmt, raw) == "table":
        lines = [
            f"Commit: {c.repo}@{c.id}", f"Original Branch: {c.branch or '-'}",
            f"Parent: {c.parent or '-'}", f"Origin: {c.origin}", f"Description: {c.description}",
            f"Started: {ago(c.started_at)}", f"Finished: {ago(c.finished_at) if c.finished else '-'}",
            f"Size: {size(c.size_bytes)}", f"Files: {c.file_count}",
        ]
        if c.error:
            lines.append(f"Error: {c.error}")
        if c.provenance:
            lines.append(f"Provenance: {', '.join(c.provenance)}")
        click.echo("\n".join(lines))
        return
    emit(fmt_of(fmt, raw), c.to_dict())


@list_.command("commit")
@click.argument("ref", required=False, metavar="[REPO[@REF] | ID]")
@click.option("-n", "--number", type=count(), default=0,
              help="At most this many commits (0: all).")
@click.option("--all", "all_origins", is_flag=True, help="Include AUTO commits (made by propagation).")
@click.option("--origin", type=click.Choice(["USER", "AUTO"]), default=None, help="Only this origin.")
@click.option("-x", "--expand", is_flag=True, help="For commit sets: one line per commit.")
@project_option
@output_options
def list_commit(ref: str | None, number: int, all_origins: bool, origin: str | None, expand: bool,
                project: str | None, fmt: str, raw: bool) -> None:
    """List commits of a repo or branch (newest first), or commit sets."""
    from tusk.pfs.refs import parse_commit, parse_repo

    svc = pfs()
    f = fmt_of(fmt, raw)
    if ref is None or _is_set_id(ref):
        sets = svc.list_commit_sets(number) if ref is None else [svc.inspect_commit_set(ref)]
        if expand or ref is not None:
            commits = [c for cs in sets for c in cs.commits]
            emit(f, [c.to_dict() for c in commits], COMMIT_HEADERS, [_row(c) for c in commits])
            return
        emit(f, [cs.to_dict() for cs in sets], ["ID", "SUBCOMMITS", "PROGRESS", "CREATED"],
             [[cs.id, len(cs.commits), f"{sum(c.finished for c in cs.commits)}/{len(cs.commits)}",
               ago(cs.started_at)] for cs in sets])
        return
    target = parse_commit(ref, project) if "@" in ref else parse_repo(ref, project)
    commits = svc.list_commits(target, number, origin)
    emit(f, [c.to_dict() for c in commits], COMMIT_HEADERS, [_row(c) for c in commits])


@wait.command("commit")
@click.argument("ref", metavar="REPO@REF | ID")
@click.option("--timeout", type=SECONDS, default=None, help="Give up after this many seconds.")
@project_option
@output_options
def wait_commit(ref: str, timeout: float | None, project: str | None, fmt: str, raw: bool) -> None:
    """Wait until a commit, or every commit of a set, is finished."""
    from tusk.pfs.refs import parse_commit

    svc = pfs()
    kick()
    if _is_set_id(ref):
        cs = svc.inspect_commit_set(ref, wait=True, timeout=timeout)
        commits = list(cs.commits)
    else:
        commits = [svc.inspect_commit(parse_commit(ref, project), wait=True, timeout=timeout)]
    emit(fmt_of(fmt, raw), [c.to_dict() for c in commits], COMMIT_HEADERS, [_row(c) for c in commits])
    if any(c.error for c in commits):
        raise SystemExit(1)


@subscribe.command("commit")
@click.argument("ref", metavar="REPO[@BRANCH]")
@click.option("--from", "from_id", default=None, help="Only commits after this commit ID.")
@click.option("--new", "new_only", is_flag=True, help="Only commits made from now on.")
@click.option("--state", type=click.Choice(["started", "finished"]), default="started")
@click.option("--timeout", type=SECONDS, default=None, help="Stop after this many seconds.")
@project_option
@output_options
def subscribe_commit(ref: str, from_id: str | None, new_only: bool, state: str, timeout: float | None,
                     project: str | None, fmt: str, raw: bool) -> None:
    """Print commits as they are made (runs until interrupted)."""
    import json

    from tusk.pfs.refs import parse_repo

    repo_text, _, branch = ref.partition("@")
    f = fmt_of(fmt, raw)
    for c in pfs().subscribe_commits(parse_repo(repo_text, project), branch or None, from_id,
                                     new_only, state, timeout):
        click.echo(json.dumps(c.to_dict()) if f != "table" else "  ".join(map(str, _row(c))))


@delete.command("commit")
@click.argument("commit_id", metavar="ID")
def delete_commit(commit_id: str) -> None:
    """Delete a commit set and its data (only while none of its commits has children)."""
    pfs().delete_commit_set(_set_id(commit_id))
    from tusk.cli.repo_cmds import _collect

    _collect()


@squash.command("commit")
@click.argument("commit_id", metavar="ID")
def squash_commit(commit_id: str) -> None:
    """Remove a commit set from history, keeping its data in the children."""
    pfs().squash_commit_set(_set_id(commit_id))


def _set_id(text: str) -> str:
    from tusk.errors import InvalidArgument

    if not _is_set_id(text):
        raise InvalidArgument(f"{text!r} is not a commit set ID (32 hex characters)")
    return text
