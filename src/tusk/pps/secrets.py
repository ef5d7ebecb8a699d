"""Secrets, as pachctl has them: Kubernetes Secret manifests, named by pipelines.

``tusk create secret -f secret.json`` takes a Kubernetes ``Secret`` manifest (JSON or YAML,
``data`` base64-encoded, ``stringData`` plain). A pipeline names secrets in ``transform.secrets``:
``{"name": n, "mount_path": "/secrets/n"}`` shows each key as a read-only file in that
directory, ``{"name": n, "env_var": "TOKEN", "key": "token"}`` sets one variable; and in
``transform.image_pull_secrets``, whose ``.dockerconfigjson`` (a ``kubernetes.io/dockerconfigjson``
secret) gives registry credentials for pulling the image.

Values live in ``<root>/secrets/<name>.json``, written atomically, in a directory only the
owner can enter, each file readable by the owner only. Nothing else ever holds a value: listing
and inspecting show names, types and keys, pipeline specs name secrets, logs and the API never
see a value (user code, which is given them, is the exception a secret exists for).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tusk.errors import AlreadyExists, InvalidArgument, NotFound

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # a Kubernetes object name
_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


@dataclass(frozen=True)
class SecretInfo:
    name: str
    type: str
    keys: list[str]
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "keys": list(self.keys),
                "created_at": self.created_at}


def parse_manifest(text: str, source: str) -> tuple[str, str, dict[str, bytes]]:
    """(name, type, values) of a Kubernetes Secret manifest; InvalidArgument naming the
    field otherwise."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        # Where, never what: the parser's message can quote the secret's own text.
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InvalidArgument(f"{source}: not JSON or YAML{at}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{source}: a secret manifest must be an object (kind: Secret)")
    if doc.get("kind") != "Secret":
        raise InvalidArgument(f'{source}: kind: must be "Secret" (a Kubernetes Secret manifest)')
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(f"{source}: metadata.name: a lowercase name of letters, digits,"
                              " '-' and '.' is required")
    values: dict[str, bytes] = {}
    data = doc.get("data") or {}
    strings = doc.get("stringData") or {}
    if not isinstance(data, dict) or not isinstance(strings, dict):
        raise InvalidArgument(f"{source}: data and stringData must be maps of key to value")
    for key, value in data.items():
        _check_key(source, "data", key)
        try:
            values[key] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(f"{source}: data.{key}: not base64 (put plain text in"
                                  " stringData instead)") from None
    for key, value in strings.items():
        _check_key(source, "stringData", key)
        values[key] = str(value).encode()
    if not values:
        raise InvalidArgument(f"{source}: the secret has no data or stringData")
    return name, str(doc.get("type") or "Opaque"), values


def _check_key(source: str, where: str, key: Any) -> None:
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidArgument(f"{source}: {where}: {key!r} is not a valid key (letters, digits,"
                              " '-', '_' and '.')")


class SecretStore:
    """The secrets of one tusk root."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "secrets"

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise NotFound(f"secret {name} not found")
        return self.dir / f"{name}.json"

    def create(self, text: str, source: str) -> SecretInfo:
        name, kind, values = parse_manifest(text, source)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        path = self._path(name)
        if path.exists():
            raise AlreadyExists(f"secret {name} already exists; delete it first"
                                f" ('tusk delete secret {name}')")
        body = json.dumps({"name": name, "type": kind, "created_at": time.time(),
                           "data": {k: base64.b64encode(v).decode() for k, v in values.items()}})
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".new-")  # created 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)  # fails if another create won the name meanwhile
        except FileExistsError:
            raise AlreadyExists(f"secret {name} already exists") from None
        finally:
            os.unlink(tmp)
        return self.inspect(name)

    def _load(self, name: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self._path(name).read_text()))
        except FileNotFoundError:
            raise NotFound(f"secret {name} not found; create it with 'tusk create secret -f"
                           " <manifest>'") from None

    def inspect(self, name: str) -> SecretInfo:
        doc = self._load(name)
        return SecretInfo(doc["name"], doc["type"], sorted(doc["data"]), doc["created_at"])

    def list(self) -> list[SecretInfo]:
        if not self.dir.is_dir():
            return []
        return [self.inspect(p.stem) for p in sorted(self.dir.glob("*.json"))]

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            raise NotFound(f"secret {name} not found") from None

    def values(self, name: str) -> dict[str, bytes]:
        """The secret's values: for running user code, and nothing else."""
        return {k: base64.b64decode(v) for k, v in self._load(name)["data"].items()}


def check_spec_secrets(store: SecretStore, spec: Any) -> None:
    """Every secret ``spec`` names exists (with the key an env_var reads); NotFound otherwise."""
    t = spec.transform.extras
    for i, ref in enumerate(t.get("secrets") or []):
        name = ref.get("name") or ""
        if not name:
            raise InvalidArgument(f"pipeline {spec.name}: transform.secrets[{i}].name: required")
        if not ref.get("mount_path") and not ref.get("env_var"):
            raise InvalidArgument(f"pipeline {spec.name}: transform.secrets[{i}]: give mount_path"
                                  " (files) or env_var and key (a variable)")
        if ref.get("env_var") and not ref.get("key"):
            raise InvalidArgument(f"pipeline {spec.name}: transform.secrets[{i}].key: required"
                                  " with env_var (which key of the secret to set it to)")
        if ref.get("mount_path") and not str(ref["mount_path"]).startswith("/"):
            raise InvalidArgument(f"pipeline {spec.name}: transform.secrets[{i}].mount_path:"
                                  " must be an absolute path")
        try:
            values = store.values(name)
        except NotFound as e:
            raise NotFound(f"pipeline {spec.name}: {e.message}") from None
        if ref.get("env_var") and ref["key"] not in values:
            raise NotFound(f"pipeline {spec.name}: secret {name} has no key {ref['key']!r}"
                           f" (it has: {', '.join(sorted(values))})")
    for name in t.get("image_pull_secrets") or []:
        try:
            store.values(name)
        except NotFound as e:
            raise NotFound(f"pipeline {spec.name}: image_pull_secrets: {e.message}") from None


def for_datum(store: SecretStore, spec: Any) -> tuple[dict[str, str], dict[str, dict[str, bytes]]]:
    """(environment variables, mount path -> files) the spec's secrets give its user code."""
    env: dict[str, str] = {}
    files: dict[str, dict[str, bytes]] = {}
    for ref in spec.transform.extras.get("secrets") or []:
        values = store.values(ref["name"])
        if ref.get("env_var"):
            env[ref["env_var"]] = values[ref["key"]].decode("utf-8", "replace")
        if ref.get("mount_path"):
            files[ref["mount_path"]] = values
    return env, files


def pull_credentials(store: SecretStore, spec: Any, registry: str) -> list[tuple[str, str]]:
    """Registry credentials for ``registry`` from the spec's ``image_pull_secrets``."""
    from tusk.images.registry import credentials_from

    out = []
    for name in spec.transform.extras.get("image_pull_secrets") or []:
        values = store.values(name)
        raw = values.get(".dockerconfigjson") or values.get(".dockercfg")
        if raw is None:
            continue
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        found = credentials_from(doc.get("auths", doc), registry)
        if found is not None:
            out.append(found)
    return out
