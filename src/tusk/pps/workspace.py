"""A datum's files on the host: materialising inputs and harvesting ``/pfs/out``.

Inputs come from a content cache under the root (one file per content hash, written once),
hard-linked into the datum's scratch directory when the sandbox mounts them read-only, copied
for the process runner (whose code could otherwise write through a link into the cache).

Harvesting walks ``out`` without following links. A symlink is resolved as the user code saw
it: to another output file (stored again under the link's path), to an input file (recorded as
a metadata-only copy of that input, as Pachyderm does), or refused. Nothing is ever read through
a link on the host, so output cannot smuggle in host files.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from tusk.errors import InvalidArgument
from tusk.pfs.names import normalize_path
from tusk.pfs.trees import Entry
from tusk.runners.base import Workspace
from tusk.storage.content import ContentReader, ContentWriter


class OutputError(Exception):
    """The datum's output is unacceptable (bad name, escaping symlink, special file)."""


class ContentCache:
    """Whole files by content hash, for cheap repeated materialisation."""

    def __init__(self, root: Path, reader: ContentReader) -> None:
        self.root = root
        self.reader = reader
        root.mkdir(parents=True, exist_ok=True)

    def path_for(self, entry: Entry) -> Path:
        h = entry.hash.hex()
        path = self.root / h[:2] / h
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{h}.{uuid.uuid4().hex[:8]}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                self.reader.copy_to_fd(entry.chunks, fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        return path


def materialize(ws: Workspace, name: str, entries: list[Entry], cache: ContentCache, link: bool,
                empty_files: bool = False) -> None:
    """Place input files at ``ws.pfs/<name>/<path>``."""
    base = ws.pfs / name
    base.mkdir(parents=True, exist_ok=True)
    made: set[str] = set()
    for e in entries:
        target = base / e.path.lstrip("/")
        parent = str(target.parent)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        if empty_files:
            open(target, "wb").close()
            continue
        src = cache.path_for(e)
        if link:
            try:
                os.link(src, target)
                continue
            except OSError:
                pass  # another filesystem: copy instead
        shutil.copyfile(src, target)


def reset(ws: Workspace) -> None:
    if ws.root.exists():
        shutil.rmtree(ws.root)
    ws.out.mkdir(parents=True)
    ws.tmp.mkdir(parents=True)


@dataclass
class Harvest:
    entries: list[Entry]


def harvest(ws: Workspace, datum_id: str, writer: ContentWriter, lock: threading.Lock,
            inputs: dict[str, dict[str, Entry]]) -> list[Entry]:
    """The files user code left in ``/pfs/out``, stored and tagged with the datum ID.

    ``inputs`` maps input name -> path -> entry, to resolve links into inputs.
    """
    out_root = str(ws.out)
    found: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(out_root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, out_root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        names = filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(names):
            local = os.path.join(dirpath, name)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                path = normalize_path("/" + rel, allow_root=False)
            except InvalidArgument as e:
                raise OutputError(f"output /pfs/out/{rel}: {e.message}") from None
            found.append(_store(local, path, ws, datum_id, writer, lock, inputs, depth=0))
    return found


def _store(local: str, path: str, ws: Workspace, datum_id: str, writer: ContentWriter,
           lock: threading.Lock, inputs: dict[str, dict[str, Entry]], depth: int) -> Entry:
    if os.path.islink(local):
        if depth > 16:
            raise OutputError(f"output {path}: too many levels of symbolic links")
        return _resolve_link(local, path, ws, datum_id, writer, lock, inputs, depth)
    if not os.path.isfile(local):
        raise OutputError(f"output {path} is not a regular file; write files only")
    with lock:
        content = writer.write_path(Path(local))
    return Entry(path, content.size, content.hash, content.chunks, datum_id)


def _resolve_link(local: str, path: str, ws: Workspace, datum_id: str, writer: ContentWriter,
                  lock: threading.Lock, inputs: dict[str, dict[str, Entry]], depth: int) -> Entry:
    target = os.readlink(local)
    # Interpret the target as the user code saw it: inside the sandbox, /pfs/... paths.
    link_dir = posixpath.dirname("/pfs/out" + path)
    seen = posixpath.normpath(posixpath.join(link_dir, target))
    scratch = str(ws.pfs)
    if seen.startswith(scratch + "/"):  # the process runner rewrote /pfs to the scratch dir
        seen = "/pfs" + seen[len(scratch):]
    if seen.startswith("/pfs/out/"):
        return _store(str(ws.out) + seen[len("/pfs/out"):], path, ws, datum_id, writer, lock,
                      inputs, depth + 1)._replace(path=path)
    parts = seen.split("/")
    if len(parts) > 3 and parts[1] == "pfs" and parts[2] in inputs:
        entry = inputs[parts[2]].get("/" + "/".join(parts[3:]))
        if entry is not None:
            return entry._replace(path=path, datum=datum_id)
    raise OutputError(
        f"output {path} is a symlink to {target}, outside /pfs/out and the datum's inputs;"
        " write a regular file instead"
    )
