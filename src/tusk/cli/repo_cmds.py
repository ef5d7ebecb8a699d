"""Commands for projects and repos: create, list, inspect, update, delete."""

from __future__ import annotations

import click

from tusk.cli.common import pfs, project_option
from tusk.cli.main import create, delete, inspect, list_, update
from tusk.cli.output import ago, emit, fmt_of, output_options, size

# -- projects ---------------------------------------------------------------------------------


@create.command("project")
@click.argument("name")
@click.option("-d", "--description", default="", help="Description of the project.")
def create_project(name: str, description: str) -> None:
    """Create a project."""
    pfs().create_project(name, description)


@update.command("project")
@click.argument("name")
@click.option("-d", "--description", required=True, help="New description.")
def update_project(name: str, description: str) -> None:
    """Change a project's description."""
    pfs().update_project(name, description)


@inspect.command("project")
@click.argument("name")
@output_options
def inspect_project(name: str, fmt: str, raw: bool) -> None:
    """Show a project."""
    p = pfs().inspect_project(name)
    emit(fmt_of(fmt, raw), p.to_dict(), ["PROJECT", "CREATED", "DESCRIPTION"],
         [[p.name, ago(p.created_at), p.description]])


@list_.command("project")
@output_options
def list_project(fmt: str, raw: bool) -> None:
    """List projects."""
    ps = pfs().list_projects()
    emit(fmt_of(fmt, raw), [p.to_dict() for p in ps], ["PROJECT", "CREATED", "DESCRIPTION"],
         [[p.name, ago(p.created_at), p.description] for p in ps])


@delete.command("project")
@click.argument("name")
@click.option("-f", "--force", is_flag=True, help="Also delete the repos in it.")
def delete_project(name: str, force: bool) -> None:
    """Delete a project."""
    pfs().delete_project(name, force)
    _collect()


# -- repos ------------------------------------------------------------------------------------


@create.command("repo")
@click.argument("repo")
@click.option("-d", "--description", default="", help="Description of the repo.")
@project_option
def create_repo(repo: str, description: str, project: str | None) -> None:
    """Create a repo (it has no branch until something is committed). Inside a transaction
    it is created when the transaction finishes."""
    from tusk.cli.txn_cmds import note_queued, txn_pfs
    from tusk.pfs.refs import parse_repo

    svc = txn_pfs()
    svc.create_repo(parse_repo(repo, project), description)
    note_queued(svc)


@update.command("repo")
@click.argument("repo")
@click.option("-d", "--description", required=True, help="New description.")
@project_option
def update_repo(repo: str, description: str, project: str | None) -> None:
    """Change a repo's description. Inside a transaction it changes when the transaction
    finishes."""
    from tusk.cli.txn_cmds import note_queued, txn_pfs
    from tusk.pfs.refs import parse_repo

    svc = txn_pfs()
    svc.update_repo(parse_repo(repo, project), description)
    note_queued(svc)


def _repo_rows(repos: list) -> list[list]:  # type: ignore[type-arg]
    return [[r.project, r.name, ago(r.created_at), size(r.size_bytes), r.description] for r in repos]


@inspect.command("repo")
@click.argument("repo")
@project_option
@output_options
def inspect_repo(repo: str, project: str | None, fmt: str, raw: bool) -> None:
    """Show a repo."""
    from tusk.pfs.refs import parse_repo

    r = pfs().inspect_repo(parse_repo(repo, project))
    if fmt_of(fmt, raw) == "table":
        click.echo(f"Name: {r.name}\nProject: {r.project}\nDescription: {r.description}\n"
                   f"Created: {ago(r.created_at)}\nSize of HEAD on master: {size(r.size_bytes)}\n"
                   f"Branches: {', '.join(r.branches) or '-'}")
        return
    emit(fmt_of(fmt, raw), r.to_dict())


@list_.command("repo")
@project_option
@click.option("-A", "--all-projects", is_flag=True, help="List repos of every project.")
@output_options
def list_repo(project: str | None, all_projects: bool, fmt: str, raw: bool) -> None:
    """List repos, newest first."""
    repos = pfs().list_repos(None if all_projects else (project or "default"))
    emit(fmt_of(fmt, raw), [r.to_dict() for r in repos],
         ["PROJECT", "NAME", "CREATED", "SIZE (MASTER)", "DESCRIPTION"], _repo_rows(repos))


@delete.command("repo")
@click.argument("repos", nargs=-1)
@click.option("-f", "--force", is_flag=True, help="Delete even if other branches depend on it.")
@click.option("--all", "all_repos", is_flag=True, help="Delete every repo in the project.")
@project_option
def delete_repo(repos: tuple[str, ...], force: bool, all_repos: bool, project: str | None) -> None:
    """Delete repos and their commits; their unique data is freed."""
    from tusk.cli.txn_cmds import note_queued, txn_pfs
    from tusk.errors import InvalidArgument
    from tusk.pfs.refs import RepoRef, parse_repo

    svc = txn_pfs()
    if all_repos:
        refs = [RepoRef(r.project, r.name) for r in svc.list_repos(project or "default")]
    elif not repos:
        raise InvalidArgument("name a repo to delete (or use --all)")
    else:
        refs = [parse_repo(r, project) for r in repos]
    for ref in refs:
        svc.delete_repo(ref, force)
    if svc.transaction is not None:
        note_queued(svc)  # deleted at 'finish transaction'; its data is freed by a later gc
    else:
        _collect()


def _collect() -> None:
    """Free data nothing references any more; skipped quietly if another writer is busy."""
    from tusk.errors import Busy

    try:
        pfs().garbage_collect(wait=False)
    except Busy:
        pass
