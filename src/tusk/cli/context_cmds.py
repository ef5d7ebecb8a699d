"""'tusk context': name servers and pick the one commands go to (as pachctl's contexts).

Contexts live in the user's config (``$TUSK_CONFIG``, default ``~/.config/tusk/config.json``);
``local`` is built in and means the root in process. ``TUSK_ADDRESS`` overrides them all.
"""

from __future__ import annotations

import click

from tusk.cli.main import context
from tusk.cli.output import emit, fmt_of, output_options


@context.command("create")
@click.argument("name")
@click.option("--address", required=True, metavar="URL", help="The server, e.g. http://host:1650.")
@click.option("--auth-token", default=None, metavar="TOKEN", help="The token 'tusk serve' printed.")
@click.option("--overwrite", is_flag=True, help="Replace an existing context of that name.")
def create_context(name: str, address: str, auth_token: str | None, overwrite: bool) -> None:
    """Create a context pointing at a server (does not switch to it)."""
    from tusk.config import LOCAL_CONTEXT, load_user_config, save_user_config
    from tusk.errors import AlreadyExists, InvalidArgument

    if name == LOCAL_CONTEXT:
        raise InvalidArgument("'local' is built in (the root in process); pick another name")
    if not address.startswith(("http://", "https://")):
        raise InvalidArgument(f"--address {address!r}: write a URL, e.g. http://127.0.0.1:1650")
    cfg = load_user_config()
    if name in cfg["contexts"] and not overwrite:
        raise AlreadyExists(f"context {name} already exists; use --overwrite to replace it")
    entry = {"address": address.rstrip("/")}
    if auth_token:
        entry["auth_token"] = auth_token
    cfg["contexts"][name] = entry
    save_user_config(cfg)


@context.command("use")
@click.argument("name")
def use_context(name: str) -> None:
    """Send every command to this context's server ('local' for the root in process)."""
    from tusk.config import LOCAL_CONTEXT, load_user_config, save_user_config
    from tusk.errors import NotFound

    cfg = load_user_config()
    if name != LOCAL_CONTEXT and name not in cfg["contexts"]:
        raise NotFound(f"context {name} not found; create it with 'tusk context create {name} --address URL'")
    cfg["active_context"] = name
    save_user_config(cfg)


@context.command("list")
@output_options
def list_context(fmt: str, raw: bool) -> None:
    """List contexts; the active one is marked with '*'."""
    from tusk.config import list_contexts

    active, contexts = list_contexts()
    emit(fmt_of(fmt, raw),
         [{"name": c.name, "address": c.address, "active": c.name == active, "auth": bool(c.auth_token)}
          for c in contexts],
         ["ACTIVE", "NAME", "ADDRESS", "AUTH"],
         [["*" if c.name == active else "", c.name, c.address or "(local root)",
           "token" if c.auth_token else "-"] for c in contexts])


@context.command("delete")
@click.argument("name")
def delete_context(name: str) -> None:
    """Delete a context (the active one falls back to 'local')."""
    from tusk.config import LOCAL_CONTEXT, load_user_config, save_user_config
    from tusk.errors import InvalidArgument, NotFound

    if name == LOCAL_CONTEXT:
        raise InvalidArgument("'local' is built in and cannot be deleted")
    cfg = load_user_config()
    if cfg["contexts"].pop(name, None) is None:
        raise NotFound(f"context {name} not found")
    if cfg["active_context"] == name:
        cfg["active_context"] = LOCAL_CONTEXT
    save_user_config(cfg)
