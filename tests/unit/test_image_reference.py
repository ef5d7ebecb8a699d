"""Image references are read as Docker reads them (``tusk.images.reference``)."""

from __future__ import annotations

import pytest

from tusk.errors import InvalidArgument
from tusk.images.reference import parse_image


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "name"), [
    ("python:3.11", "docker.io", "library/python", "3.11", "python"),
    ("ubuntu", "docker.io", "library/ubuntu", "latest", "ubuntu"),
    ("pachyderm/opencv:1.0", "docker.io", "pachyderm/opencv", "1.0", "pachyderm/opencv"),
    ("127.0.0.1:5000/app:v1", "127.0.0.1:5000", "app", "v1", "127.0.0.1:5000/app"),
    ("localhost/team/app", "localhost", "team/app", "latest", "localhost/team/app"),
    ("registry.example.com/a/b/c:x-1.2", "registry.example.com", "a/b/c", "x-1.2",
     "registry.example.com/a/b/c"),
])
def test_references_parse_as_docker_reads_them(text: str, registry: str, repository: str,
                                               tag: str, name: str) -> None:
    ref = parse_image(text)
    assert (ref.registry, ref.repository, ref.tag, ref.name) == (registry, repository, tag, name)
    assert ref.explicit_registry == (registry != "docker.io")


def test_a_digest_pins_the_reference() -> None:
    d = "sha256:" + "ab" * 32
    ref = parse_image(f"127.0.0.1:5000/app@{d}")
    assert ref.digest == d and ref.reference == d and ref.tag == ""
    assert parse_image("app:v1").pinned(d) == f"app@{d}"


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty"),
    ("App:1", '"App" is not a valid name component'),
    ("app@sha256:xyz", "sha256:<64 hex digits>"),
    ("app::x", "is not a valid tag"),
    ("app:-x", '"-x" is not a valid tag'),
])
def test_bad_references_are_refused_with_the_rule(text: str, says: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_image(text)
    assert says in e.value.message
