"""'tusk serve': the root's controller plus the HTTP API (``tusk.api.server``)."""

from __future__ import annotations

import click

from tusk.cli.main import cli


def _split_address(address: str) -> tuple[str, int]:
    from tusk.errors import InvalidArgument

    text = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"--address {address!r}: write HOST:PORT, e.g. 127.0.0.1:1650")
    return host.strip("[]"), int(port)


@cli.command("serve")
@click.option("--address", default="127.0.0.1:1650", show_default=True, metavar="HOST:PORT",
              help="Where to listen (0.0.0.0:PORT for every interface).")
@click.option("--auth-token", default=None, envvar="TUSK_AUTH_TOKEN", metavar="TOKEN",
              help="Token clients must send (Authorization: Bearer). Default: a new random one,"
                   " printed at start.")
@click.option("--no-auth", is_flag=True, help="Accept every request (only for a trusted machine).")
def serve(address: str, auth_token: str | None, no_auth: bool) -> None:
    """Run the controller and the HTTP API over this root (OpenAPI docs at /docs).

    \b
      tusk serve --address 127.0.0.1:1650
      tusk context create lab --address http://127.0.0.1:1650 --auth-token TOKEN
      tusk context use lab          # every command now goes to the server
    """
    import secrets

    from tusk.errors import InvalidArgument

    host, port = _split_address(address)
    if no_auth and auth_token:
        raise InvalidArgument("give --auth-token or --no-auth, not both")
    token = None if no_auth else (auth_token or secrets.token_urlsafe(24))
    if token is not None and not auth_token:
        click.echo(f"tusk serve: auth token: {token}")
    elif token is None:
        click.echo("tusk serve: auth is OFF (--no-auth): anyone who can reach the port can write")
    from tusk.api.console import console_url

    # The URL carries only a token printed above anyway; one the user gave is not echoed.
    shown = token if token is not None and not auth_token else None
    hint = " (it asks for the token)" if token is not None and shown is None else ""
    click.echo(f"tusk serve: console: {console_url(host, port, shown)}{hint}")
    from tusk.api.server import serve as run

    run(host, port, token, say=lambda m: click.echo(m))
