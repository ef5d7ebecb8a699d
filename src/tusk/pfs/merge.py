"""Merging per-datum output listings onto a base tree: the pure half of the output API.

A pipeline's output commit is its base (the content of the pipeline's last successful job)
with, per datum that ran or disappeared, that datum's earlier outputs retracted and its new
outputs put. Two datums writing one path is a user error that fails the job, as in Pachyderm:
the merge reports it instead of picking a winner. Nothing here touches storage; new tree nodes
are returned for the caller to persist (``output.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tusk.pfs import trees
from tusk.storage.backend import OverlayNodeStore


@dataclass(frozen=True)
class Listing:
    """What one datum did to the output: the files it wrote (``entries``, each tagged with
    ``datum_id``) and the paths its previous run wrote that must go (``retract``). A path in
    ``retract`` is removed only while the base still holds this datum's file there."""

    datum_id: str
    entries: Sequence[trees.Entry] = ()
    retract: Sequence[str] = ()


@dataclass
class Merged:
    """The outcome of a merge: the new tree, or ``error`` (and then the base's tree)."""

    root: bytes | None
    size: int
    count: int
    nodes: dict[bytes, bytes] = field(default_factory=dict)
    error: str = ""


def duplicate(path: str, first: str, second: str) -> str:
    return (f"duplicate path output by different datums: {path} was written by datums"
            f" {first[:12]} and {second[:12]}; write to unique paths"
            " (e.g. /pfs/out/$PACH_DATUM_ID/...)")


def plan_ops(base: trees.Tree, listings: Iterable[Listing]) -> tuple[dict[str, trees.Op], str]:
    """The tree operations the listings make on ``base``, and the first duplicate path found
    (as a message; "" if none). Retractions come first, so a datum that writes again a path it
    wrote before, or a path another retracted datum held, is no duplicate."""
    items = list(listings)
    ops: dict[str, trees.Op] = {}
    for lst in items:
        for path in lst.retract:
            old = base.get(path)
            if old is not None and old.datum == lst.datum_id:
                ops[path] = trees.Op(trees.DELETE)
    writers: dict[str, str] = {}
    for lst in items:
        for e in lst.entries:
            other = writers.get(e.path)
            if other is not None and other != lst.datum_id:
                return ops, duplicate(e.path, other, lst.datum_id)
            writers[e.path] = lst.datum_id
            if e.path not in ops:
                old = base.get(e.path)
                if old is not None and old.datum != lst.datum_id:
                    return ops, duplicate(e.path, old.datum, lst.datum_id)
            ops[e.path] = trees.Op(trees.PUT, e)
    return ops, ""


def collision(new: trees.Tree, base: trees.Tree, written: Sequence[str]) -> str:
    """The file / directory collision among ``written`` paths, as a message ("" if none)."""
    clash = trees.find_collision(new, base, written)
    if clash is None:
        return ""
    return (f"file / directory path collision: {clash[0]} is a file but {clash[1]} is inside it;"
            " delete one of them")


def merge(nodes: trees.NodeStore, base_root: bytes | None, listings: Iterable[Listing],
          failure: str = "") -> Merged:
    """The output tree of ``listings`` over the tree ``base_root``.

    A duplicate path, then ``failure`` (the caller's reason the job failed), then a file /
    directory collision, in that order, make the result the base's tree with that error: a
    failed job's output commit keeps the content its pipeline had.
    """
    base = trees.Tree(nodes, base_root)
    ops, error = plan_ops(base, listings)
    error = error or failure
    if not error:
        res = trees.apply(nodes, base_root, sorted(ops.items()))
        written = sorted(p for p, op in ops.items() if op.kind != trees.DELETE)
        error = collision(trees.Tree(OverlayNodeStore(res.nodes, nodes), res.root), base, written)  # type: ignore[arg-type]
        if not error:
            return Merged(res.root, res.size, res.count, dict(res.nodes))
    return Merged(base_root, base.size, base.count, {}, error)
