"""Transactions: 'start transaction' ... 'finish transaction' batch commits into one commit set.

The active transaction lives in the root (like pachctl's context, but shared by every shell on
the root). ``txn_pfs()`` is the service for the commands a transaction covers (start/finish
commit, put/copy/delete file, create/delete branch): it carries the active transaction, so
those commands batch into it; every other command uses ``pfs()`` and is unaffected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tusk.cli.common import pfs
from tusk.cli.main import _verb, delete, finish, inspect, list_, start, stop
from tusk.cli.output import ago, emit, fmt_of, output_options

if TYPE_CHECKING:
    from tusk.pfs.service import PfsService

resume = _verb("resume", "Make an open transaction the active one again.")

HEADERS = ["ID", "STATE", "ACTIVE", "OPS", "CREATED"]


def txn_pfs() -> PfsService:
    """``pfs()`` joined to the root's active transaction, if there is one."""
    svc = pfs()
    svc.transaction = svc.active_transaction()
    return svc


def txn_pps():  # type: ignore[no-untyped-def]
    """``pps()`` joined to the root's active transaction, if there is one."""
    from tusk.cli.common import pps

    txn_pfs()  # the PPS service works through this same PFS service
    return pps()


def note_queued(svc: PfsService) -> None:
    """Tell the user a change waits for 'finish transaction' (stderr: stdout stays scriptable)."""
    if svc.transaction is not None:
        click.echo(f"added to transaction {svc.transaction}", err=True)


@start.command("transaction")
def start_transaction() -> None:
    """Start a transaction and make it active; prints its ID (= the commit set ID)."""
    click.echo(pfs().start_transaction().id)


@finish.command("transaction")
@click.argument("txn_id", required=False, metavar="[ID]")
def finish_transaction(txn_id: str | None) -> None:
    """Apply the active (or given) transaction atomically: one commit set, one propagation."""
    from tusk.cli.common import pps

    info = pps().finish_transaction(txn_id)  # the pipeline service: queued pipelines apply too
    click.echo(f"finished transaction {info.id} ({len(info.ops)} operation(s))")


@stop.command("transaction")
@click.argument("txn_id", required=False, metavar="[ID]")
def stop_transaction(txn_id: str | None) -> None:
    """Stop adding to the active transaction; it stays open ('resume transaction ID' goes on
    with it, 'finish transaction ID' applies it, 'delete transaction ID' drops it)."""
    info = pfs().stop_transaction(txn_id)
    click.echo(f"stopped transaction {info.id} ({len(info.ops)} operation(s) kept); resume it"
               f" with 'tusk resume transaction {info.id}'", err=True)


@delete.command("transaction")
@click.argument("txn_id", required=False, metavar="[ID]")
def delete_transaction(txn_id: str | None) -> None:
    """Drop the active (or given) transaction: nothing it holds takes effect."""
    pfs().delete_transaction(txn_id)


@resume.command("transaction")
@click.argument("txn_id", metavar="ID")
def resume_transaction(txn_id: str) -> None:
    """Make an open (stopped) transaction the active one again."""
    pfs().resume_transaction(txn_id)


@list_.command("transaction")
@output_options
def list_transaction(fmt: str, raw: bool) -> None:
    """List transactions (open and finished), newest first."""
    txns = pfs().list_transactions()
    emit(fmt_of(fmt, raw), [t.to_dict() for t in txns], HEADERS,
         [[t.id, t.state, "*" if t.active else "", len(t.ops), ago(t.created_at)] for t in txns])


@inspect.command("transaction")
@click.argument("txn_id", required=False, metavar="[ID]")
@output_options
def inspect_transaction(txn_id: str | None, fmt: str, raw: bool) -> None:
    """Show the active (or given) transaction and its operations."""
    from tusk.pfs.transactions import describe_op

    t = pfs().inspect_transaction(txn_id)
    if fmt_of(fmt, raw) == "table":
        lines = [f"Transaction: {t.id}", f"State: {t.state}{' (active)' if t.active else ''}",
                 f"Created: {ago(t.created_at)}",
                 f"Finished: {ago(t.finished_at) if t.finished_at else '-'}", "Operations:"]
        lines += [f"  {describe_op(op)}" for op in t.ops] or ["  -"]
        click.echo("\n".join(lines))
        return
    emit(fmt_of(fmt, raw), t.to_dict())
