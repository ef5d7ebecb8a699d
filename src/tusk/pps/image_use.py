"""A pipeline's image, as its spec names it: resolved with the spec's pull secrets.

Create checks that it can be found; each job (and each start of a service) resolves it again,
so a tag pushed anew is what the next job runs, and unpacks it before user code runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tusk.images.reference import parse_image
from tusk.images.store import ImageStore, Resolved
from tusk.pps.secrets import SecretStore, pull_credentials
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
