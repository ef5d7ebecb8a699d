"""Where a tusk installation keeps its state, and which backends it uses.

A *root* is a directory (``$TUSK_ROOT``, default ``~/.tusk``). By default it holds the SQLite
metadata database and the local object store; ``root/config.json`` may name other backends by
URL (``metadata_url``: ``sqlite:///...`` or ``postgresql://...``; ``object_url``: ``file:///...``
or ``s3://bucket/prefix``). This module is the one place that reads that choice.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tusk.errors import InvalidArgument


@dataclass(frozen=True)
class RootConfig:
    root: Path
    metadata_url: str
    object_url: str


def default_root() -> Path:
    env = os.environ.get("TUSK_ROOT")
    return Path(env).expanduser() if env else Path.home() / ".tusk"


def load_config(root: Path | None = None) -> RootConfig:
    root = (root or default_root()).absolute()
    root.mkdir(parents=True, exist_ok=True)
    cfg: dict = {}
    path = root / "config.json"
    if path.exists():
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InvalidArgument(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    metadata_url = os.environ.get("TUSK_METADATA_URL") or cfg.get(
        "metadata_url", f"sqlite:///{root / 'meta.db'}"
    )
    object_url = os.environ.get("TUSK_OBJECT_URL") or cfg.get(
        "object_url", f"file://{root / 'objects'}"
    )
    return RootConfig(root, metadata_url, object_url)


# -- contexts: which server the CLI talks to ------------------------------------------------------
#
# Contexts belong to the user, not to a root (a root is what a server serves): they live in
# ``$TUSK_CONFIG`` (default ``$XDG_CONFIG_HOME/tusk/config.json``, i.e. ``~/.config/tusk``),
# mode 0600 since they hold auth tokens. ``local`` is built in: no server, the root in process.
# ``TUSK_ADDRESS`` (+ ``TUSK_AUTH_TOKEN``) overrides the active context.

LOCAL_CONTEXT = "local"


@dataclass(frozen=True)
class Context:
    name: str
    address: str | None  # None: embedded (the local root)
    auth_token: str | None = None


def user_config_path() -> Path:
    env = os.environ.get("TUSK_CONFIG")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tusk" / "config.json"


def load_user_config() -> dict:  # type: ignore[type-arg]
    path = user_config_path()
    if not path.exists():
        return {"active_context": LOCAL_CONTEXT, "contexts": {}}
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("contexts", {}), dict):
        raise InvalidArgument(f"{path}: expected an object with 'contexts'")
    cfg.setdefault("contexts", {})
    cfg.setdefault("active_context", LOCAL_CONTEXT)
    return cfg


def save_user_config(cfg: dict) -> None:  # type: ignore[type-arg]
    path = user_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f, indent=2)
    os.replace(tmp, path)


def list_contexts() -> tuple[str, list[Context]]:
    """(active context name, every context including the built-in 'local')."""
    cfg = load_user_config()
    out = [Context(LOCAL_CONTEXT, None)]
    for name, c in sorted(cfg["contexts"].items()):
        out.append(Context(name, c.get("address"), c.get("auth_token")))
    return str(cfg["active_context"]), out


def current_context() -> Context:
    """Where commands go: ``TUSK_ADDRESS`` if set, else the active context."""
    address = os.environ.get("TUSK_ADDRESS")
    if address:
        return Context("$TUSK_ADDRESS", address, os.environ.get("TUSK_AUTH_TOKEN") or None)
    if not user_config_path().exists():
        return Context(LOCAL_CONTEXT, None)
    active, contexts = list_contexts()
    for c in contexts:
        if c.name == active:
            token = os.environ.get("TUSK_AUTH_TOKEN") or c.auth_token
            return Context(c.name, c.address, token)
    raise InvalidArgument(f"the active context {active!r} does not exist; run 'tusk context use local'")
