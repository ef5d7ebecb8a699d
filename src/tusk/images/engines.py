"""Images in a local container engine: Docker Engine or Podman, through their command lines.

Both take the same commands for what tusk needs (``image inspect``, ``save``, ``tag``, ``push``,
``build``), so an engine is just the CLI that answers; ``TUSK_ENGINE`` names one to use only.
An engine that is installed but has no daemon to talk to is skipped, as if absent.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLIS = ("docker", "podman")
TIMEOUT = 120.0


@dataclass(frozen=True)
class LocalImage:
    """An image an engine holds: its ID (the config digest), config and the digests it was
    pushed under (``repo@sha256:...``)."""

    engine: str  # the CLI that holds it
    id: str
    config: dict[str, Any]
    repo_digests: tuple[str, ...]


class EngineError(Exception):
    """An engine command failed; the message is its own error line."""


def _candidates() -> list[str]:
    chosen = os.environ.get("TUSK_ENGINE", "").strip()
    names = [chosen] if chosen else list(CLIS)
    return [p for n in names if (p := shutil.which(n))]


@functools.lru_cache(maxsize=8)
def _answers(cli: str) -> bool:
    """The engine can be talked to (a Docker CLI without a daemon cannot)."""
    try:
        r = subprocess.run([cli, "version", "--format", "{{.Server.Version}}"],
                           capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and bool(r.stdout.strip())


def engines() -> list[str]:
    """The engine CLIs that are installed and answer, in order of preference."""
    return [c for c in _candidates() if _answers(c)]


def where() -> str:
    """The engines looked in, for messages ("the local Docker Engine" and so on)."""
    found = engines()
    if found:
        return " and ".join(f"the local {Path(c).name} engine" for c in found)
    return "no local engine (none of docker, podman answers)"


@functools.lru_cache(maxsize=16)
def takes(cli: str, command: str, flag: str) -> bool:
    """``cli command`` has option ``flag`` (asked of its help, not of its name)."""
    try:
        r = subprocess.run([cli, command, "--help"], capture_output=True, text=True, timeout=20,
                           check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in r.stdout


def push_args(cli: str, registry: str) -> list[str]:
    """Options ``push`` needs for ``registry``: a registry on 127.0.0.1 speaks plain HTTP,
    which Docker assumes and an engine with ``--tls-verify`` (Podman) must be told."""
    from tusk.images.registry import insecure

    return ["--tls-verify=false"] if insecure(registry) and takes(cli, "push", "--tls-verify") else []


def run(cli: str, *args: str, timeout: float = TIMEOUT) -> str:
    try:
        r = subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise EngineError(f"{Path(cli).name} {args[0]} took longer than {timeout:g}s") from None
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        raise EngineError(lines[-1] if lines else f"{Path(cli).name} {args[0]} failed")
    return r.stdout


def find(reference: str) -> LocalImage | None:
    """The image ``reference`` names in the first engine that has it, or None."""
    for cli in engines():
        try:
            out = run(cli, "image", "inspect", "--format", "{{json .}}", reference, timeout=30)
        except EngineError:
            continue
        doc = json.loads(out)  # Docker prints one object per line, Podman a list
        if isinstance(doc, list):
            doc = doc[0]
        image_id = str(doc.get("Id") or doc.get("ID"))
        if ":" not in image_id:
            image_id = "sha256:" + image_id  # Podman leaves the algorithm out
        return LocalImage(cli, image_id, doc.get("Config") or {},
                          tuple(doc.get("RepoDigests") or ()))
    return None


def save(image: LocalImage, dest: Path) -> None:
    """Write ``image`` as a docker-archive tar to ``dest``."""
    run(image.engine, "save", "-o", str(dest), image.id)  # both engines' default format
