"""A registry client for pulling images (the registry HTTP API v2, the OCI distribution spec).

Only what pulling needs: a manifest by tag or digest (a manifest list / OCI index picks this
machine's platform), and blobs streamed to a file with their digest checked. Credentials come
from the engines' own login files (``docker login`` writes ``~/.docker/config.json``, ``podman
login`` writes ``$XDG_RUNTIME_DIR/containers/auth.json``) or are handed in (a pipeline's
``image_pull_secrets``); a registry that answers 401 gets Basic credentials or, when it asks
for a bearer token, a token fetched from the realm it names. Registries on 127.0.0.1 and
``localhost`` (and those in ``TUSK_INSECURE_REGISTRIES``) are spoken to over plain HTTP, as
Docker treats them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

import httpx

from tusk.errors import NotFound
from tusk.images.reference import DOCKER_HUB, ImageRef

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_LISTS = MANIFEST_TYPES[:2]
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class RegistryError(Exception):
    """The registry could not be reached or refused us (not: the image is not there)."""


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def api_host(registry: str) -> str:
    return "registry-1.docker.io" if registry == DOCKER_HUB else registry


def insecure(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry
    extra = [h.strip() for h in os.environ.get("TUSK_INSECURE_REGISTRIES", "").split(",") if h.strip()]
    return host in ("localhost", "127.0.0.1", "[::1]") or registry in extra


def login_files() -> list[Path]:
    """The engines' login files, in the order they are read."""
    files = []
    docker_dir = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    files.append(Path(docker_dir) / "config.json")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if os.environ.get("REGISTRY_AUTH_FILE"):
        files.insert(0, Path(os.environ["REGISTRY_AUTH_FILE"]))
    if runtime:
        files.append(Path(runtime) / "containers" / "auth.json")
    files.append(Path(os.path.expanduser("~/.config/containers/auth.json")))
    return files


def credentials_from(auths: dict[str, Any], registry: str) -> tuple[str, str] | None:
    """The (user, password) a ``{"auths": ...}`` document holds for ``registry``."""
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry == DOCKER_HUB:
        keys += ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
    for key in keys:
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            return user, password
        if entry.get("username"):
            return str(entry["username"]), str(entry.get("password", ""))
    return None


def stored_credentials(registry: str) -> tuple[str, str] | None:
    """Credentials for ``registry`` from the engines' login files, if any."""
    for f in login_files():
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        found = credentials_from(doc.get("auths") or {}, registry)
        if found is not None:
            return found
    return None


class Registry:
    """One registry, for one image repository's pulls."""

    def __init__(self, registry: str, credentials: Iterable[tuple[str, str]] = ()) -> None:
        self.registry = registry
        scheme = "http" if insecure(registry) else "https"
        self.base = f"{scheme}://{api_host(registry)}/v2"
        self.creds = list(credentials)
        stored = stored_credentials(registry)
        if stored is not None:
            self.creds.append(stored)
        self.client = httpx.Client(timeout=TIMEOUT, follow_redirects=True)
        self._auth: dict[str, str] = {}  # the Authorization header that worked

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------

    def _get(self, url: str, headers: dict[str, str], stream: bool = False) -> httpx.Response:
        try:
            req = self.client.build_request("GET", url, headers={**headers, **self._auth})
            resp = self.client.send(req, stream=stream)
            if resp.status_code == 401 and self._authenticate(resp):
                resp.close()
                req = self.client.build_request("GET", url, headers={**headers, **self._auth})
                resp = self.client.send(req, stream=stream)
        except httpx.HTTPError as e:
            raise RegistryError(f"registry {self.registry} cannot be reached: {e}") from None
        return resp

    def _authenticate(self, resp: httpx.Response) -> bool:
        """Answer a 401: Basic with the first credentials, or a bearer token from the realm."""
        challenge = resp.headers.get("www-authenticate", "")
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not self.creds or self._auth:
                return False
            user, password = self.creds[0]
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._auth = {"Authorization": f"Basic {token}"}
            return True
        if scheme.lower() != "bearer":
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if "realm" not in fields:
            return False
        query = {k: v for k, v in fields.items() if k in ("service", "scope")}
        auth = self.creds[0] if self.creds else None
        try:
            got = self.client.get(fields["realm"], params=query, auth=auth)
        except httpx.HTTPError as e:
            raise RegistryError(f"registry {self.registry}: cannot get a token: {e}") from None
        if got.status_code != 200:
            return False
        body = got.json()
        token = body.get("token") or body.get("access_token")
        if not token or self._auth.get("Authorization") == f"Bearer {token}":
            return False
        self._auth = {"Authorization": f"Bearer {token}"}
        return True

    def _check(self, resp: httpx.Response, what: str) -> None:
        if resp.status_code == 404:
            raise NotFound(f"{what} not found in registry {self.registry}")
        if resp.status_code in (401, 403):
            raise RegistryError(
                f"registry {self.registry} refused {what} (HTTP {resp.status_code}): log in with"
                " 'docker login' / 'podman login', or name credentials in image_pull_secrets")
        if resp.status_code >= 400:
            raise RegistryError(f"registry {self.registry} answered HTTP {resp.status_code} for {what}")

    # -- what pulling needs -----------------------------------------------------------------

    def manifest(self, ref: ImageRef) -> tuple[str, dict[str, Any]]:
        """(digest, manifest) of ``ref``: this platform's image manifest, and the digest the
        user's reference resolves to (the list's, for a multi-platform image)."""
        what = f"image {ref.name}:{ref.tag}" if not ref.digest else f"image {ref.name}@{ref.digest}"
        resp = self._get(f"{self.base}/{ref.repository}/manifests/{ref.reference}",
                         {"Accept": ", ".join(MANIFEST_TYPES)})
        self._check(resp, what)
        body = resp.content
        digest = resp.headers.get("docker-content-digest") or "sha256:" + hashlib.sha256(body).hexdigest()
        doc = json.loads(body)
        media = doc.get("mediaType") or resp.headers.get("content-type", "").split(";")[0]
        if media in _LISTS or "manifests" in doc:
            chosen = self._platform(doc, what)
            resp = self._get(f"{self.base}/{ref.repository}/manifests/{chosen}",
                             {"Accept": ", ".join(MANIFEST_TYPES[2:])})
            self._check(resp, what)
            doc = json.loads(resp.content)
        if "config" not in doc or "layers" not in doc:
            raise RegistryError(f"{what}: the registry's manifest is not an image manifest")
        return digest, doc

    @staticmethod
    def _platform(index: dict[str, Any], what: str) -> str:
        arch = _arch()
        for m in index.get("manifests", []):
            p = m.get("platform") or {}
            if p.get("os", "linux") == "linux" and p.get("architecture") == arch:
                return str(m["digest"])
        raise NotFound(f"{what} has no linux/{arch} image")

    def blob(self, ref: ImageRef, digest: str, dest: Path) -> None:
        """Download blob ``digest`` to ``dest``, checking its digest (``dest`` is written whole
        or not at all)."""
        tmp = dest.with_name(dest.name + ".part")
        resp = self._get(f"{self.base}/{ref.repository}/blobs/{digest}", {}, stream=True)
        try:
            self._check(resp, f"blob {digest[:19]} of {ref.name}")
            h = hashlib.sha256()
            with open(tmp, "wb") as f:
                for chunk in resp.iter_bytes(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
        except httpx.HTTPError as e:
            raise RegistryError(f"registry {self.registry}: download failed: {e}") from None
        finally:
            resp.close()
        if "sha256:" + h.hexdigest() != digest:
            tmp.unlink(missing_ok=True)
            raise RegistryError(f"blob {digest[:19]} of {ref.name}: its content does not match its digest")
        os.replace(tmp, dest)
