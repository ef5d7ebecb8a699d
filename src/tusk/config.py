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
