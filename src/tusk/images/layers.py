"""Unpacking image layers into one root file system, as an overlay of them would look.

Layers are tar archives (plain or gzip) applied in order. A later layer's file replaces an
earlier one; ``.wh.<name>`` deletes ``<name>``, and ``.wh..wh..opq`` empties its directory of
what lower layers put there (the OCI image spec's whiteouts). Nothing is written outside the
root: members with absolute paths or ``..`` are refused, and a path that would pass through a
symlink out of the root is refused too (``tarfile``'s ``tar`` filter). Device nodes are
skipped: the runtime gives the code its own ``/dev``. Set-uid and set-gid bits are dropped.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
# Directories the runtime mounts over; present (empty) in every unpacked root.
MOUNT_POINTS = ("pfs", "tmp", "dev", "proc", "run")


class LayerError(Exception):
    """A layer cannot be unpacked safely; the message says which member and why."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def apply_layer(root: Path, layer: Path) -> None:
    """Apply the layer archive ``layer`` onto ``root``."""
    try:
        tf = tarfile.open(layer, mode="r:*")  # noqa: SIM115 - closed by the with below
    except tarfile.TarError as e:
        raise LayerError(f"{layer.name}: not a tar archive this can read ({e})") from None
    with tf:
        opaque_done: set[str] = set()
        members = tf.getmembers()
        # Opaque markers first: they hide only what lower layers put in their directory.
        for m in members:
            name = m.name.removeprefix("./")
            head, _, base = name.rstrip("/").rpartition("/")
            if base == OPAQUE:
                target = _inside(root, head) if head else root
                if target.is_dir() and not target.is_symlink() and head not in opaque_done:
                    for child in list(target.iterdir()):
                        _remove(child)
                    opaque_done.add(head)
        for m in members:
            name = m.name.removeprefix("./")
            head, _, base = name.rstrip("/").rpartition("/")
            if base == OPAQUE or not base:
                continue
            if base.startswith(WHITEOUT):
                _remove(_inside(root, f"{head}/{base[len(WHITEOUT):]}" if head else base[len(WHITEOUT):]))
                continue
            if m.ischr() or m.isblk() or m.isfifo():
                continue
            path = _inside(root, name)
            if os.path.lexists(path) and not (m.isdir() and path.is_dir() and not path.is_symlink()):
                _remove(path)  # a file, link or directory replaced by something else
            m.name = name
            m.mode &= ~0o6000  # no set-uid or set-gid program in a root user code runs in
            try:
                tf.extract(m, root, set_attrs=True, filter="tar")
            except (tarfile.FilterError, OSError) as e:
                raise LayerError(f"{layer.name}: cannot unpack {name!r}: {e}") from None


def _inside(root: Path, name: str) -> Path:
    """``root/name`` after checking the name stays inside (no absolute path, no ``..``)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise LayerError(f"layer member {name!r} points outside the image's root")
    return root.joinpath(*parts) if parts else root


def finish_root(root: Path) -> None:
    """Make the mount points the runtime needs (an image may lack ``/pfs`` or ``/tmp``)."""
    for d in MOUNT_POINTS:
        p = root / d
        if os.path.lexists(p) and not p.is_dir():
            _remove(p)
        p.mkdir(mode=0o755, exist_ok=True)
