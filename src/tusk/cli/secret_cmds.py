"""``tusk create|list|inspect|delete secret``: pachctl's secret commands (see ``pps/secrets.py``).

No command ever prints a secret's value: inspect shows its name, type and keys.
"""

from __future__ import annotations

import sys

import click

from tusk.cli.common import pfs
from tusk.cli.main import create, delete, inspect, list_
from tusk.cli.output import emit, fmt_of, output_options

HEADERS = ["NAME", "TYPE", "KEYS", "CREATED"]


def _store():  # type: ignore[no-untyped-def]
    from tusk.errors import FailedPrecondition
    from tusk.pps.secrets import SecretStore

    svc = pfs()
    if getattr(svc, "remote", False):
        raise FailedPrecondition("secrets are kept in the server's root: run 'tusk create secret'"
                                 " on the server's host (with 'tusk context use local')")
    return SecretStore(svc.b.root)


def _rows(infos):  # type: ignore[no-untyped-def]
    from tusk.cli.output import ago

    return [[i.name, i.type, ",".join(i.keys), ago(i.created_at)] for i in infos]


@create.command("secret")
@click.option("-f", "--file", "path", required=True,
              help="A Kubernetes Secret manifest (JSON or YAML; '-' for stdin).")
def create_secret(path: str) -> None:
    """Create a secret from a Kubernetes Secret manifest."""
    from tusk.pps.spec_files import read_spec_file

    text, source = read_spec_file(path, sys.stdin.buffer)
    info = _store().create(text, source)
    click.echo(f"secret {info.name}: created ({len(info.keys)} key(s))", err=True)


@list_.command("secret")
@output_options
def list_secret(fmt: str, raw: bool) -> None:
    """List secrets (names, types and keys; never values)."""
    infos = _store().list()
    emit(fmt_of(fmt, raw), [i.to_dict() for i in infos], HEADERS, _rows(infos))


@inspect.command("secret")
@click.argument("name")
@output_options
def inspect_secret(name: str, fmt: str, raw: bool) -> None:
    """Show a secret's name, type and keys (never its values)."""
    info = _store().inspect(name)
    emit(fmt_of(fmt, raw), info.to_dict(), HEADERS, _rows([info]))


@delete.command("secret")
@click.argument("name")
def delete_secret(name: str) -> None:
    """Delete a secret (pipelines naming it fail their next job until it exists again)."""
    _store().delete(name)
