"""Resolving a pipeline's image to a digest, and keeping its unpacked root under the tusk root.

Where an image is looked for, in order:

* a reference that names a registry host (``127.0.0.1:5000/app:v1``): that registry, then the
  local engines (an image built and tagged but not pushed yet);
* any other (``python:3.11``, ``me/app:v1``): the local engines, then Docker Hub.

A tag is resolved anew each time (``resolve``): pushing a new image under the same tag makes
the next job run it. What a job records is the digest it resolved: the registry's manifest
digest, or for an image only an engine holds, its image ID (the digest of its config).

Unpacked roots live in ``<root>/images/<image id>/`` (``rootfs/`` and ``image.json``), keyed
by the image ID, which names the content exactly: a tag moved back and forth unpacks nothing
twice. A root is unpacked beside its place and renamed into it, so a root that is there is
whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tusk.errors import FailedPrecondition, NotFound
from tusk.images import engines
from tusk.images.layers import LayerError, apply_layer, finish_root
from tusk.images.reference import ImageRef, parse_image
from tusk.workers.base import ImageRoot


@dataclass(frozen=True)
class Resolved:
    """An image reference resolved: ``digest`` is what runs; ``image_id`` keys its root."""

    ref: ImageRef
    digest: str
    image_id: str
    source: str  # where it was found, for messages
    manifest: dict[str, Any] | None = None  # from a registry: what to pull
    local: engines.LocalImage | None = None  # from an engine: what to save

    @property
    def pinned(self) -> str:
        return self.ref.pinned(self.digest)


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "images"

    # -- resolving --------------------------------------------------------------------------

    def resolve(self, written: str, credentials: Iterable[tuple[str, str]] = ()) -> Resolved:
        """Find ``written``; NotFound naming the image and every place looked in."""
        ref = parse_image(written)
        creds = list(credentials)
        looked: list[str] = []
        order = ("registry", "engine") if ref.explicit_registry else ("engine", "registry")
        for place in order:
            found = self._from_registry(ref, creds, looked) if place == "registry" \
                else self._from_engine(ref, looked)
            if found is not None:
                return found
        raise NotFound(f'image "{written}" not found: looked in {"; ".join(looked)}')

    def _from_engine(self, ref: ImageRef, looked: list[str]) -> Resolved | None:
        img = engines.find(ref.written)
        if img is None:
            looked.append(engines.where())
            return None
        digest = img.id
        for rd in img.repo_digests:
            if rd.split("@", 1)[0] in (ref.name, f"{ref.registry}/{ref.repository}"):
                digest = rd.split("@", 1)[1]
                break
        return Resolved(ref, digest, img.id, f"the local {Path(img.engine).name} engine", local=img)

    def _from_registry(self, ref: ImageRef, creds: list[tuple[str, str]],
                       looked: list[str]) -> Resolved | None:
        from tusk.images.registry import Registry, RegistryError  # httpx: only when asked

        try:
            with Registry(ref.registry, creds) as reg:
                digest, manifest = reg.manifest(ref)
        except NotFound:
            looked.append(f"registry {ref.registry}")
            return None
        except RegistryError as e:
            looked.append(str(e))
            return None
        image_id = str(manifest["config"]["digest"])
        return Resolved(ref, digest, image_id, f"registry {ref.registry}", manifest=manifest)

    # -- unpacked roots ---------------------------------------------------------------------

    def root_of(self, image_id: str) -> ImageRoot:
        """The unpacked root of image ``image_id``; NotFound if it is not unpacked here."""
        home = self.dir / _key(image_id)
        try:
            meta = json.loads((home / "image.json").read_text())
        except (OSError, ValueError):
            raise NotFound(f"image {image_id[:19]} is not unpacked in {self.dir}") from None
        cfg = meta.get("config") or {}
        return ImageRoot(home / "rootfs", tuple(cfg.get("Env") or ()), cfg.get("WorkingDir") or "",
                         cfg.get("User") or "", meta.get("digest", image_id))

    def ensure(self, res: Resolved, credentials: Iterable[tuple[str, str]] = ()) -> ImageRoot:
        """The unpacked root of ``res``, pulled or saved and unpacked first if needed."""
        try:
            return self.root_of(res.image_id)
        except NotFound:
            pass
        from tusk.images.registry import RegistryError

        self.dir.mkdir(parents=True, exist_ok=True)
        work = self.dir / f".tmp-{uuid.uuid4().hex[:12]}"
        rootfs = work / "rootfs"
        rootfs.mkdir(parents=True)
        try:
            if res.manifest is not None:
                config = self._pull(res, work, rootfs, list(credentials))
            else:
                assert res.local is not None
                config = self._save(res.local, work, rootfs)
            finish_root(rootfs)
            (work / "image.json").write_text(json.dumps(
                {"digest": res.digest, "image_id": res.image_id, "reference": res.ref.written,
                 "config": config.get("config") or {}}))
            for leftover in work.iterdir():
                if leftover.name not in ("rootfs", "image.json"):
                    _remove(leftover)
            try:
                os.rename(work, self.dir / _key(res.image_id))
            except OSError:
                pass  # unpacked meanwhile by another process: that one is as good
        except (LayerError, RegistryError, engines.EngineError, tarfile.TarError, OSError) as e:
            raise FailedPrecondition(f"image {res.ref.written}: cannot unpack it: {e}") from None
        finally:
            if work.exists():
                _remove(work)
        return self.root_of(res.image_id)

    def _pull(self, res: Resolved, work: Path, rootfs: Path,
              creds: list[tuple[str, str]]) -> dict[str, Any]:
        from tusk.images.registry import Registry

        assert res.manifest is not None
        with Registry(res.ref.registry, creds) as reg:
            cfg_path = work / "config.json"
            reg.blob(res.ref, res.manifest["config"]["digest"], cfg_path)
            for layer in res.manifest["layers"]:
                blob = work / "layer"
                reg.blob(res.ref, layer["digest"], blob)
                apply_layer(rootfs, blob)
                blob.unlink()
        return dict(json.loads(cfg_path.read_text()))

    def _save(self, img: engines.LocalImage, work: Path, rootfs: Path) -> dict[str, Any]:
        archive = work / "image.tar"
        engines.save(img, archive)
        unpacked = work / "archive"
        with tarfile.open(archive) as tf:
            tf.extractall(unpacked, filter="data")
        archive.unlink()
        manifest = json.loads((unpacked / "manifest.json").read_text())[0]
        for layer in manifest["Layers"]:
            apply_layer(rootfs, unpacked / layer)
        return dict(json.loads((unpacked / manifest["Config"]).read_text()))


    def prune(self, in_use: set[str], grace: float) -> tuple[int, int]:
        """Remove unpacked roots no job in flight uses, and what an unpack killed midway left,
        once older than ``grace`` seconds; (how many, bytes). A job starting later unpacks
        its image again."""
        if not self.dir.is_dir():
            return 0, 0
        keep = {_key(i) for i in in_use}
        now = time.time()
        removed = freed = 0
        for entry in self.dir.iterdir():
            if entry.name in keep or now - entry.stat().st_mtime < grace:
                continue
            size = sum(f.lstat().st_size for f in entry.rglob("*") if not f.is_dir())
            _remove(entry)
            removed, freed = removed + 1, freed + size
        return removed, freed


def _key(image_id: str) -> str:
    return image_id.split(":", 1)[-1]


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
