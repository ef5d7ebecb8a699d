"""Where a ``tusk://`` filesystem points: storage options resolved to a local root or a
server, exactly as the CLI resolves its current context, and one shared ``tusk.Client`` per
target and process (an embedded client opens the root's database, a remote one holds a
connection pool; filesystem instances are cheap and share it).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, NamedTuple


class Where(NamedTuple):
    """A resolved target: a local root in process, or a server with its token."""

    address: str | None
    auth_token: str | None
    root: str | None


def resolve(address: str | None, auth_token: str | None, root: str | os.PathLike | None) -> Where:
    """The target of these storage options; none given means the CLI's current context."""
    if address is not None and root is not None:
        raise ValueError("tusk: give either 'address' (a server) or 'root' (a local root), not both")
    if root is not None:
        return Where(None, None, str(Path(root).expanduser().absolute()))
    from tusk.config import current_context, default_root

    if address is None:  # what the CLI would use (tusk.cli.common.pfs)
        ctx = current_context()
        if ctx.address is None:
            return Where(None, None, str(default_root().absolute()))
        return Where(ctx.address, auth_token if auth_token is not None else ctx.auth_token, None)
    if auth_token is None:  # as tusk.Client: the token of $TUSK_AUTH_TOKEN
        auth_token = os.environ.get("TUSK_AUTH_TOKEN") or None
    return Where(address, auth_token, None)


# One Client per target and process: an embedded Client opens the root's database and a remote
# one holds a connection pool, so filesystem instances (cheap, one per ``fsspec.open``) share it.
_clients: dict[Where, Any] = {}
_clients_lock = threading.Lock()
_clients_pid = os.getpid()


def client_for(where: Where) -> Any:
    global _clients_pid
    from tusk.api.client import Client

    with _clients_lock:
        if _clients_pid != os.getpid():  # a forked child must not share the parent's handles
            _clients.clear()
            _clients_pid = os.getpid()
        client = _clients.get(where)
        if client is None:
            client = Client(where.address, where.auth_token, where.root)
            _clients[where] = client
        return client


def close_clients() -> None:
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for c in clients:
        c.close()
