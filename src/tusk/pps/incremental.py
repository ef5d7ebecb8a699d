"""Planning only what changed: the datums of a pfs input touched by a commit.

The full planner (``datums.plan``) looks at every file of every input, which is O(input) per
job. For the common case, a single pfs input whose spec has not changed since the base job,
that work is unnecessary: a datum's ID depends only on its match path, and its hash only on the
files under that match. So the datums that can differ from the base job are exactly those whose
match covers a path that changed between the base job's input commit and this job's. The
tree diff finds those paths while skipping every unchanged range, so the cost follows the size
of the change, not the size of the input.
"""

from __future__ import annotations

from tusk.pfs import trees
from tusk.pfs.globs import compile_glob
from tusk.pps.datums import Datum, DatumInput, FileRecord, PfsSource, matches


def _ident(source: PfsSource, path: str) -> str:
    """A datum's ID from its match path alone (IDs never depend on file contents)."""
    return Datum.of([DatumInput(source.name, source.repo, source.branch, source.project, path, (), b"")]).id


def affected(source: PfsSource, old: trees.Tree, new: trees.Tree) -> tuple[list[Datum], list[str]]:
    """(datums whose content may have changed, recomputed on ``new``; IDs of datums now gone)."""
    glob = compile_glob(source.glob or "/")
    candidates: set[str] = set()
    for a, b in trees.diff(old, new):
        path = (a if a is not None else b).path  # type: ignore[union-attr]
        if glob.pattern == "/":
            candidates.add("/")
            break
        parts = path.split("/")
        for i in range(2, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if glob.matches(prefix):
                candidates.add(prefix)
    current: list[Datum] = []
    gone: list[str] = []
    for m in sorted(candidates):
        if m == "/":
            files = list(new)
        else:
            e = new.get(m)
            files = [e] if e is not None else list(new.scan_prefix(m + "/"))
        records = [FileRecord(f.path, f.hash, f.size) for f in files]
        found = [di for di in matches(source, records) if di.path == m] if records else []
        if found:
            current.append(Datum.of(found[:1]))
        else:
            gone.append(_ident(source, m))
    return current, gone
