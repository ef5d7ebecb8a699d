"""'tusk next datum': the shell side of datum batching (see ``tusk.batching``).

It talks only to the job's datum socket (``$TUSK_DATUM_SOCKET``), never to the root or its
database: it runs once per datum inside user code, often inside the sandbox, and must be quick.
"""

from __future__ import annotations

import sys

import click

from tusk.cli.main import next_
from tusk.errors import FailedPrecondition, exit_code


def _eval_fails(code: int) -> None:
    # 'eval ""' succeeds, so a loop 'while eval "$(tusk next datum)"' would never end on an
    # empty output: give eval something that fails with the same code.
    if not sys.stdout.isatty():
        click.echo(f"(exit {code})")


@next_.command("datum")
@click.option("--error", default=None, metavar="MSG",
              help="The previous datum failed, with this message (default: it succeeded).")
def next_datum(error: str | None) -> None:
    """Finish the previous datum and wait for the next one (datum_batching pipelines).

    Prints the next datum's environment as shell 'export NAME=...' lines (and 'unset' for the
    previous datum's variables it does not set), for:

        while eval "$(tusk next datum)"; do cp "$in" /pfs/out/; done

    Exit codes: 0 a datum is ready; 10 no more datums (the user code should exit now; the
    output is then '(exit 10)' so that eval fails too); 5 not in a batching pipeline or the
    job is gone.
    """
    from tusk.batching import NO_MORE_DATUMS, BatchingError, ask_next, shell_lines

    try:
        answer = ask_next(error)
    except BatchingError as e:
        err = FailedPrecondition(str(e))
        _eval_fails(exit_code(err))
        raise err from None
    lines = shell_lines(answer)
    if answer.get("done"):
        if lines:
            click.echo("\n".join(lines))
        _eval_fails(NO_MORE_DATUMS)
        click.get_current_context().exit(NO_MORE_DATUMS)
    click.echo("\n".join(lines))
