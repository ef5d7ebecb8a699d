"""A pipeline's image, as its spec names it: resolved with the spec's pull secrets.

Create checks that it can be found; each job (and each start of a service) resolves it again,
so a tag pushed anew is what the next job runs, and unpacks it before user code runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from tusk.images.reference import parse_image
from tusk.images.store import ImageStore, Resolved
from tusk.pps.model import TERMINAL
from tusk.pps.secrets import SecretStore, pull_credentials
from tusk.storage import schema as s
from tusk.workers.base import ImageRoot


def credentials(root: Path, spec: Any) -> list[tuple[str, str]]:
    registry = parse_image(spec.transform.image).registry
    return pull_credentials(SecretStore(root), spec, registry)


def resolve(root: Path, spec: Any) -> Resolved:
    """Find the spec's image now; NotFound naming where it was looked for."""
    return ImageStore(root).resolve(spec.transform.image, credentials(root, spec))


def fetch(root: Path, spec: Any) -> tuple[Resolved, ImageRoot]:
    """Resolve the spec's image and make sure its root is unpacked."""
    resolved = resolve(root, spec)
    return resolved, ImageStore(root).ensure(resolved, credentials(root, spec))


def prune(root: Path, db: Any, grace: float) -> tuple[int, int]:
    """Remove the unpacked images no job in flight runs (``tusk gc``); (how many, bytes)."""
    with db.read() as conn:
        in_use = {r for r in conn.execute(select(s.jobs.c.image_id).where(
            s.jobs.c.image_id.is_not(None), s.jobs.c.state.not_in(TERMINAL))).scalars()}
    return ImageStore(root).prune(in_use, grace)
