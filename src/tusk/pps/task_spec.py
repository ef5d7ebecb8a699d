"""What a datum task carries: everything a worker needs to run one datum without the controller.

A task's ``spec`` (msgpack) holds the datum itself (its inputs, matched paths and file
records), each input file as a content reference (path, size, content hash, chunk list: the
worker materialises it from the object store), and the job's input commit IDs (for
``<input>_COMMIT``). Encoding and decoding are pure and inverse of each other.
"""

from __future__ import annotations

from typing import Any

from tusk.pfs import trees
from tusk.pps import datums as dm

Key = tuple[str, str, str]  # (project, repo, branch) of an input


def encode(d: dm.Datum, entries: dict[Key, dict[str, trees.Entry]],
           commit_ids: dict[Key, str]) -> dict[str, Any]:
    """The task spec of datum ``d``; ``entries`` gives each input file's content reference."""
    inputs = []
    files: list[list[Any]] = []
    keys: set[Key] = set()
    for di in d.inputs:
        key = (di.project, di.repo, di.branch)
        keys.add(key)
        inputs.append([di.name, di.repo, di.branch, di.project, di.path, di.hash, di.join_key,
                       di.group_key, [[f.path, f.hash, f.size] for f in di.files]])
        for f in di.files:
            e = entries[key][f.path]
            files.append([list(key), e.path, e.size, e.hash, [list(c) for c in e.chunks],
                          e.datum])
    return {"id": d.id, "inputs": inputs, "files": files,
            "commits": [[list(k), commit_ids.get(k, "")] for k in sorted(keys)]}


def decode(spec: dict[str, Any]) -> tuple[dm.Datum, dict[Key, dict[str, trees.Entry]],
                                          dict[Key, str]]:
    """The datum, its input files' entries and the input commit IDs of a task spec."""
    ins = []
    for name, repo, branch, project, path, h, join_key, group_key, recs in spec["inputs"]:
        ins.append(dm.DatumInput(name, repo, branch, project, path,
                                 tuple(dm.FileRecord(p, fh, size) for p, fh, size in recs), h,
                                 join_key, group_key))
    d = dm.Datum(spec["id"], tuple(ins))
    entries: dict[Key, dict[str, trees.Entry]] = {}
    for key, path, size, h, chunks, tag in spec["files"]:
        entries.setdefault(tuple(key), {})[path] = trees.Entry(  # type: ignore[index]
            path, size, h, [tuple(c) for c in chunks], tag)
    commit_ids = {tuple(k): cid for k, cid in spec["commits"]}
    return d, entries, commit_ids  # type: ignore[return-value]
