"""Pachyderm's inner loop in one command: build, tag uniquely, push, and name the result in
the spec (``create|update pipeline --build / --push-images``).

``--push-images`` (as pachctl has it): the image the spec names must be in the local engine
(built with ``docker build -t <transform.image> .``); it is tagged with a tag unique to its
content (``tusk-<12 hex of its image ID>``), pushed to ``--registry`` (default: the image's
own registry), and the spec is stored naming that tag, so every push is a new reference and no
node serves a stale image under an old tag.

``--build`` (beyond pachctl): the engine builds the image first, from the spec's
``transform.dockerfile`` (relative to the spec file) or a ``Dockerfile`` beside the spec, and
the spec names the new image by its unique tag. Without ``--push-images`` nothing is pushed:
the job finds the image in the local engine, so no registry is needed on a laptop.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tusk.errors import FailedPrecondition, InvalidArgument, NotFound
from tusk.images import engines
from tusk.images.reference import DOCKER_HUB, ImageRef, parse_image


def unique_tag(image_id: str) -> str:
    return "tusk-" + image_id.split(":", 1)[-1][:12]


def _engine() -> str:
    found = engines.engines()
    if not found:
        raise FailedPrecondition(
            "no container engine answers (docker or podman): install one, or start dockerd")
    return found[0]


def build(spec: Any, spec_path: str) -> str:
    """Build ``spec``'s image from its Dockerfile; the new image's local reference."""
    if not spec.transform.image:
        raise InvalidArgument(f"pipeline {spec.name}: --build needs transform.image (the name"
                              " to build the image as)")
    base = Path(spec_path).resolve().parent if spec_path not in ("-", "") else Path.cwd()
    named = spec.transform.extras.get("dockerfile") or ""
    dockerfile = (base / named) if named else base / "Dockerfile"
    if not dockerfile.is_file():
        raise NotFound(f"pipeline {spec.name}: no Dockerfile at {dockerfile}; write one, or name"
                       " it in transform.dockerfile (relative to the spec)")
    ref = parse_image(spec.transform.image)
    cli = _engine()
    try:
        engines.run(cli, "build", "-q", "-f", str(dockerfile), "-t", ref.written,
                    str(dockerfile.parent), timeout=1800)
    except engines.EngineError as e:
        raise FailedPrecondition(f"pipeline {spec.name}: building {ref.written} failed: {e}") from None
    local = engines.find(ref.written)
    assert local is not None, "just built"
    tagged = _retag(ref, local, None, "")
    engines.run(local.engine, "tag", local.id, tagged)
    return tagged


def push(spec: Any, registry: str | None, username: str | None) -> str:
    """Tag ``spec``'s local image uniquely and push it; the pushed reference."""
    if not spec.transform.image:
        raise InvalidArgument(f"pipeline {spec.name}: --push-images needs transform.image")
    ref = parse_image(spec.transform.image)
    local = engines.find(ref.written)
    if local is None:
        raise NotFound(f'pipeline {spec.name}: image "{ref.written}" is not in {engines.where()};'
                       f" build it first (docker build -t {ref.written} .)")
    target = _retag(ref, local, registry, username or "")
    try:
        engines.run(local.engine, "tag", local.id, target)
        engines.run(local.engine, "push", *engines.push_args(local.engine, parse_image(target).registry),
                    target, timeout=1800)
    except engines.EngineError as e:
        raise FailedPrecondition(f"pipeline {spec.name}: pushing {target} failed: {e}") from None
    return target


def _retag(ref: ImageRef, local: engines.LocalImage, registry: str | None, username: str) -> str:
    """The reference ``local`` is pushed (or kept) as: ``[host/]path:tusk-<id>``."""
    path = ref.repository.removeprefix("library/")
    if username and "/" not in path:
        path = f"{username}/{path}"
    host = registry or ref.registry
    if host == DOCKER_HUB and not ref.explicit_registry and not registry:
        return f"{path}:{unique_tag(local.id)}"  # Docker Hub, written as the user writes it
    return f"{host}/{path}:{unique_tag(local.id)}"


def with_image(spec: Any, image: str) -> Any:
    """``spec`` naming ``image`` (in its typed fields and in the user's document)."""
    doc = dict(spec.user_doc)
    doc["transform"] = {**(doc.get("transform") or {}), "image": image}
    return dataclasses.replace(spec, transform=dataclasses.replace(spec.transform, image=image),
                               user_doc=doc)
