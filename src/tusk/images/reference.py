"""Image references as Docker reads them: ``[host[:port]/]path[:tag][@digest]``.

The first path component is a registry host when it has a ``.`` or a ``:`` or is
``localhost``; otherwise the image lives on Docker Hub (``docker.io``), where a one-component
name is an official image under ``library/``. The tag defaults to ``latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tusk.errors import InvalidArgument

DOCKER_HUB = "docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference. ``registry`` is the host (``docker.io`` for Docker Hub),
    ``repository`` the path in it, ``tag`` and ``digest`` what it pins ("" if not given)."""

    registry: str
    repository: str
    tag: str = "latest"
    digest: str = ""
    written: str = ""  # as the user wrote it
    explicit_registry: bool = False  # the name itself names a registry host

    @property
    def reference(self) -> str:
        """What a registry is asked for: the digest if pinned, else the tag."""
        return self.digest or self.tag

    @property
    def name(self) -> str:
        """``host/path`` without tag or digest (Hub images as the user would write them)."""
        if self.registry == DOCKER_HUB and not self.explicit_registry:
            path = self.repository.removeprefix("library/")
            return path
        return f"{self.registry}/{self.repository}"

    def pinned(self, digest: str) -> str:
        """This image pinned to ``digest``: ``name@sha256:...``."""
        return f"{self.name}@{digest}"

    def with_tag(self, tag: str, registry: str | None = None) -> ImageRef:
        """The same repository under another tag (and registry), as ``docker tag`` makes it."""
        host = registry or self.registry
        repo = self.repository.removeprefix("library/") if registry else self.repository
        written = f"{host}/{repo}:{tag}"
        return ImageRef(host, repo, tag, "", written, True)


def parse_image(text: str) -> ImageRef:
    """Parse ``text``; InvalidArgument with the rule broken when it is no image reference."""
    raw = text.strip()
    if not raw:
        raise InvalidArgument("transform.image is empty; name an image, e.g. \"python:3.11\"")
    rest, digest = raw, ""
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidArgument(f'image "{raw}": the digest must be sha256:<64 hex digits>')
    parts = rest.split("/")
    explicit = len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost")
    host = parts.pop(0) if explicit else DOCKER_HUB
    tag = ""
    if ":" in parts[-1]:
        parts[-1], tag = parts[-1].split(":", 1)
        if not _TAG.match(tag):
            raise InvalidArgument(f'image "{raw}": "{tag}" is not a valid tag')
    for c in parts:
        if not _COMPONENT.match(c):
            raise InvalidArgument(
                f'image "{raw}": "{c}" is not a valid name component (lowercase letters,'
                " digits and . _ - between them)")
    if host == DOCKER_HUB and len(parts) == 1:
        parts.insert(0, "library")
    return ImageRef(host, "/".join(parts), tag or ("" if digest else "latest"), digest, raw,
                    explicit)
