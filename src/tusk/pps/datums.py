"""Datum planning: how a pipeline's input tree is cut into datums, and which datums must run.

This module owns the *datum* concept of Pachyderm 2.x (features §3.2-§3.4):

* ``matches`` applies one pfs input's glob to the files of its commit. The glob selects files
  *and* directories (a directory exists when some file lies under it); every match becomes one
  ``DatumInput`` holding all files at or under the matched path.
* ``plan`` combines pfs inputs through ``cross`` (Cartesian product), ``union`` (concatenation),
  ``join`` (``join_on`` keys, inner and ``outer_join``) and ``group`` (``group_by`` keys) into the
  job's list of ``Datum``.
* A datum's **ID** names *which* data it covers (input names, repos, branches, projects and
  matched paths, never contents), so the same paths give the same ID in every job. Its **hash**
  adds the content hashes of everything it mounts plus the pipeline salt, so any change to the
  data (a file edited, added or removed) or to the salt gives a new hash.
* ``diff_datums`` compares a job's datums with the last successful job's: unchanged datums are
  skipped, new or changed ones run, vanished ones have their outputs removed.

Everything here is pure: the input tree arrives as the small frozen dataclasses below (the
pipeline layer builds them from the spec, so this module does not depend on the spec parser)
and each input's files come from a caller-supplied ``Listing``. No I/O, no storage, no database.

Decisions worth knowing:

* An input whose commit has no files yields **no** datums, whatever the glob (even ``/``):
  there is nothing to mount. A cross or join involving it therefore yields none either; a union
  still yields its other inputs' datums.
* Matches come in the order of the sorted file listing, a directory placed just before its
  first file (as if its path ended with ``/``): ``/a b``, ``/a.txt``, ``/a``, ``/a/x``.
* ``join`` and ``group`` emit one bucket per key in sorted key order (Pachyderm orders by key
  hash; any stable order will do and sorted is easier to read).
* Two datums with the same ID (possible in a ``union`` whose branches select the same path of
  the same repo under the same name) mount exactly the same data, so only the first is kept.
* An empty ``cross``/``union``/``join``/``group`` yields no datums.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

import blake3

from tusk.pfs.globs import compile_glob

__all__ = [
    "Cross",
    "Datum",
    "DatumInput",
    "FileRecord",
    "Group",
    "Join",
    "Listing",
    "Node",
    "PfsSource",
    "Union",
    "content_hash",
    "datum_id",
    "diff_datums",
    "matches",
    "plan",
]


# --------------------------------------------------------------------------------------------
# Input tree.


@dataclass(frozen=True, slots=True)
class PfsSource:
    """One pfs input: a branch of a repo, cut into datums by ``glob``.

    ``name`` is the mount name (``/pfs/<name>``). ``lazy`` and ``empty_files`` only change how
    the runner mounts the files; they are carried here so one object describes the input.
    """

    name: str
    repo: str
    branch: str
    glob: str
    project: str = "default"
    join_on: str = ""
    outer_join: bool = False
    group_by: str = ""
    lazy: bool = False
    empty_files: bool = False


@dataclass(frozen=True, slots=True)
class Cross:
    """Cartesian product of the sub-inputs' datums (first input varies slowest)."""

    inputs: tuple[Node, ...]

    def __post_init__(self) -> None:
        # Accept any sequence from callers but keep the node hashable and immutable.
        object.__setattr__(self, "inputs", tuple(self.inputs))


@dataclass(frozen=True, slots=True)
class Union:
    """Concatenation of the sub-inputs' datums; sub-inputs may share a mount name."""

    inputs: tuple[Node, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))


@dataclass(frozen=True, slots=True)
class Join:
    """Datums of matches whose ``join_on`` keys agree across the (pfs) inputs."""

    inputs: tuple[PfsSource, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))


@dataclass(frozen=True, slots=True)
class Group:
    """One datum per ``group_by`` key holding every match of every (pfs) input with that key."""

    inputs: tuple[PfsSource, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))


# Cron inputs are not a node kind of their own: the caller turns them into a PfsSource over the
# tick repo with glob "/*".
Node = PfsSource | Cross | Union | Join | Group


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A file in an input commit. ``path`` is absolute ("/dir/a.txt"); ``hash`` its content hash."""

    path: str
    hash: bytes
    size: int


# The files of one input's commit, sorted by path. The caller decides which commit that is.
Listing = Callable[[PfsSource], Iterable[FileRecord]]


# --------------------------------------------------------------------------------------------
# Datums.

_LEN = struct.Struct(">Q")
_EMPTY_REL = _LEN.pack(0)  # the framed empty relative path of a file matched by itself


def _framed(*parts: bytes) -> bytes:
    """Length-prefix each part, so that no two different part lists give the same bytes."""
    return b"".join(_LEN.pack(len(p)) + p for p in parts)


@dataclass(frozen=True, slots=True)
class DatumInput:
    """One input's share of a datum: a glob match and every file at or under it.

    ``path`` is the matched path (a file, a directory, or "/" for the whole repo); the files
    are mounted at ``/pfs/<name><file path>``, so the original layout is preserved. ``hash``
    is the content hash of the match (see ``content_hash``). ``join_key`` / ``group_key`` are
    the expanded ``join_on`` / ``group_by`` templates ("" when the input has none).
    """

    name: str
    repo: str
    branch: str
    project: str
    path: str
    files: tuple[FileRecord, ...]
    hash: bytes
    join_key: str = ""
    group_key: str = ""
    # The identity bytes that feed the datum ID, computed once per match because a cross reuses
    # the same DatumInput in many datums.
    _ident: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Length-prefixing (in characters, before encoding) keeps the five fields unambiguous;
        # one f-string and one encode is markedly cheaper than framing five byte strings.
        n, r, b, p, path = self.name, self.repo, self.branch, self.project, self.path
        ident = f"{len(n)}:{n}{len(r)}:{r}{len(b)}:{b}{len(p)}:{p}{len(path)}:{path}".encode()
        object.__setattr__(self, "_ident", ident)


@dataclass(frozen=True, slots=True)
class Datum:
    """A unit of work: one ``DatumInput`` per input taking part, in input order.

    ``id`` (64 hex) depends only on the inputs' names, repos, branches, projects and matched
    paths, so the same data selection has the same ID in every job; it names the datum in
    logs, meta paths and output tags.
    """

    id: str
    inputs: tuple[DatumInput, ...]

    @classmethod
    def of(cls, inputs: Sequence[DatumInput]) -> Datum:
        """The datum made of ``inputs``, with its ID computed."""
        inputs = tuple(inputs)
        return cls(datum_id(inputs), inputs)

    def hash(self, salt: str, extra: bytes = b"") -> str:
        """Hex hash deciding whether a previously processed datum can be skipped.

        Covers the ID (which paths), each input's content hash (what is in them), the pipeline
        ``salt`` (a reprocess changes it) and ``extra`` (anything else the caller wants to
        invalidate on, e.g. the transform).
        """
        parts = [self.id.encode()]
        parts.extend(di.hash for di in self.inputs)
        parts.append(salt.encode())
        parts.append(extra)
        return blake3.blake3(_framed(*parts)).hexdigest()


def datum_id(inputs: Sequence[DatumInput]) -> str:
    """The ID of a datum made of ``inputs``: blake3 over each input's framed identity."""
    # Every input contributes exactly five framed fields, so the concatenation is unambiguous.
    if len(inputs) == 1:  # the common case, worth skipping the join for
        return blake3.blake3(inputs[0]._ident).hexdigest()
    return blake3.blake3(b"".join([di._ident for di in inputs])).hexdigest()


def content_hash(path: str, files: Sequence[FileRecord]) -> bytes:
    """Content hash of the match at ``path`` made of ``files`` (all at or under ``path``).

    blake3 over (path relative to the match, file hash) for each file in order, so a
    directory's hash changes when a file under it changes, appears or disappears, or is
    renamed within it. The matched path itself is not included: the datum ID already is.
    """
    if len(files) == 1 and files[0].path == path:
        # A file match (the common case): its relative path is "", so frame only the hash.
        digest = files[0].hash
        return blake3.blake3(_EMPTY_REL + _LEN.pack(len(digest)) + digest).digest()
    base = len(path) if path != "/" else 0
    # One join and one hash call: much cheaper than one hasher update per file.
    blob = b"".join(
        _LEN.pack(len(rel)) + rel + _LEN.pack(len(f.hash)) + f.hash
        for f in files
        for rel in (f.path[base:].encode(),)
    )
    return blake3.blake3(blob).digest()


# --------------------------------------------------------------------------------------------
# Glob matching for one pfs input.

_by_path = attrgetter("path")


def matches(source: PfsSource, files: Iterable[FileRecord]) -> list[DatumInput]:
    """The glob matches of ``source`` over ``files``, one ``DatumInput`` each, in path order.

    A match may be a file or a directory; a directory match carries every file beneath it.
    Directories are not listed: they exist because files lie under them. A directory does not
    make its children separate matches unless the glob matches them too ("/**" matches every
    file and directory at every depth, each its own datum). No files, no matches.
    """
    # The listing is promised sorted; sorting an already sorted list is a linear check, and it
    # makes the result order (and the file order inside a directory match) certain.
    records = sorted(files, key=_by_path)
    if not records:
        return []
    glob = compile_glob(source.glob or "/")

    def make(path: str, groups: tuple[str, ...], found: Sequence[FileRecord]) -> DatumInput:
        # Positional arguments: this runs once per match, up to hundreds of thousands of times.
        return DatumInput(
            source.name,
            source.repo,
            source.branch,
            source.project,
            path,
            tuple(found),
            content_hash(path, found),
            glob.expand_groups(source.join_on, groups) if source.join_on else "",
            glob.expand_groups(source.group_by, groups) if source.group_by else "",
        )

    if glob.pattern == "/":
        # The whole repository is one datum.
        return [make("/", (), records)]

    match = glob.match
    prefix = glob.literal_prefix
    max_depth = glob.max_depth
    # Every match starts with the literal prefix, so the path segments the prefix spells out
    # completely can never be a match themselves: start looking at the first segment after the
    # prefix's last '/'. `first_depth` is that segment's depth ("/a" is depth 1).
    first_cut = prefix.rfind("/") + 1
    first_depth = prefix.count("/")
    if max_depth is not None and first_depth > max_depth:
        return []

    # Matches in first-seen order. Because the records are sorted, first-seen order is path
    # order with a directory just before its contents.
    found: dict[str, tuple[tuple[str, ...], list[FileRecord]]] = {}
    # Directory verdicts: the list of files collected so far if it matched, None if it did not.
    # Many files share a directory, and a directory is matched against the glob only once.
    dirs: dict[str, list[FileRecord] | None] = {}
    unseen: list[FileRecord] | None = []  # sentinel for "directory not tested yet"

    # Sorted records put every path that starts with the prefix in one contiguous run: jump to
    # it and stop at its end, so "/logs/2024/*" costs nothing for files elsewhere in the repo.
    first = bisect.bisect_left(records, prefix, key=_by_path) if prefix != "/" else 0
    for rec in itertools.islice(records, first, None):
        path = rec.path
        if not path.startswith(prefix):
            break
        # Candidates are the ancestor directories of the file below the prefix, then the file
        # itself, shallow to deep; deeper than max_depth nothing can match.
        start, depth = first_cut, first_depth
        while True:
            cut = path.find("/", start)
            if cut < 0:
                groups = match(path)
                if groups is not None:
                    found[path] = (groups, [rec])
                break
            parent = path[:cut]
            bucket = dirs.get(parent, unseen)
            if bucket is unseen:
                groups = match(parent)
                if groups is None:
                    bucket = None
                else:
                    bucket = []
                    found[parent] = (groups, bucket)
                dirs[parent] = bucket
            if bucket is not None:
                bucket.append(rec)
            if max_depth is not None and depth >= max_depth:
                break
            start = cut + 1
            depth += 1

    if source.join_on or source.group_by:
        return [make(path, groups, recs) for path, (groups, recs) in found.items()]
    # No keys to expand: build directly, saving a call per match on large listings.
    name, repo, branch, project = source.name, source.repo, source.branch, source.project
    return [
        DatumInput(name, repo, branch, project, path, tuple(recs), content_hash(path, recs))
        for path, (_, recs) in found.items()
    ]


# --------------------------------------------------------------------------------------------
# Combining inputs.

_Combo = tuple[DatumInput, ...]


def plan(node: Node, listing: Listing) -> list[Datum]:
    """All datums of the input tree ``node``, in Pachyderm's order.

    ``listing`` returns the files of a pfs input's commit. Datums with the same ID (a union
    selecting the same data twice) are kept once, at their first position.
    """
    datums: list[Datum] = []
    seen: set[str] = set()
    for combo in _plan(node, listing):
        datum = Datum.of(combo)
        if datum.id not in seen:
            seen.add(datum.id)
            datums.append(datum)
    return datums


def _plan(node: Node, listing: Listing) -> list[_Combo]:
    if isinstance(node, PfsSource):
        return [(di,) for di in matches(node, listing(node))]
    if isinstance(node, Cross):
        return _cross([_plan(child, listing) for child in node.inputs])
    if isinstance(node, Union):
        return [combo for child in node.inputs for combo in _plan(child, listing)]
    if isinstance(node, Join):
        return _join(_pfs_only(node.inputs, "join"), listing)
    if isinstance(node, Group):
        return _group(_pfs_only(node.inputs, "group"), listing)
    raise TypeError(f"not an input node: {node!r}")


def _pfs_only(inputs: tuple[PfsSource, ...], kind: str) -> tuple[PfsSource, ...]:
    for child in inputs:
        if not isinstance(child, PfsSource):
            raise TypeError(f"{kind} inputs must be pfs inputs, got {type(child).__name__}")
    return inputs


def _cross(parts: Sequence[Sequence[_Combo]]) -> list[_Combo]:
    """Cartesian product, first part slowest; nothing if there are no parts or one is empty."""
    if not parts or any(not part for part in parts):
        return []
    return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*parts)]


def _by_key(
    sources: tuple[PfsSource, ...], listing: Listing, key: Callable[[DatumInput], str]
) -> list[dict[str, list[DatumInput]]]:
    """For each source, its matches bucketed by key (each bucket in path order)."""
    buckets: list[dict[str, list[DatumInput]]] = []
    for source in sources:
        by: dict[str, list[DatumInput]] = {}
        for di in matches(source, listing(source)):
            by.setdefault(key(di), []).append(di)
        buckets.append(by)
    return buckets


def _join(sources: tuple[PfsSource, ...], listing: Listing) -> list[_Combo]:
    buckets = _by_key(sources, listing, attrgetter("join_key"))
    keys = sorted(set().union(*buckets)) if buckets else []
    out: list[_Combo] = []
    for key in keys:
        present = [i for i, by in enumerate(buckets) if key in by]
        if len(present) < len(sources):
            # Not every input has this key: an inner join drops it, and only the outer inputs
            # that do have it still get to see their files (without the inner ones).
            present = [i for i in present if sources[i].outer_join]
            if not present:
                continue
        out.extend(_cross([[(di,) for di in buckets[i][key]] for i in present]))
    return out


def _group(sources: tuple[PfsSource, ...], listing: Listing) -> list[_Combo]:
    buckets = _by_key(sources, listing, attrgetter("group_key"))
    keys = sorted(set().union(*buckets)) if buckets else []
    # Input order first, then path order within an input.
    return [tuple(di for by in buckets for di in by.get(key, ())) for key in keys]


# --------------------------------------------------------------------------------------------
# Incremental processing.


def diff_datums(
    previous: dict[str, str], current: Sequence[Datum], salt: str, extra: bytes = b""
) -> tuple[list[Datum], list[Datum], list[str]]:
    """Split ``current`` against the base job: ``(to_run, skipped, removed_ids)``.

    ``previous`` maps datum ID -> hash for the datums the base (last successful) job processed
    successfully. A datum with the same ID and the same hash (computed with ``salt`` and
    ``extra``) is skipped: its earlier output stands. A new ID, or a known ID whose data or
    salt changed, must run (the caller first retracts the old output of a changed one). IDs of
    the base that are gone now are returned, sorted, so their outputs can be removed.
    """
    to_run: list[Datum] = []
    skipped: list[Datum] = []
    current_ids: set[str] = set()
    for datum in current:
        current_ids.add(datum.id)
        old = previous.get(datum.id)
        if old is not None and old == datum.hash(salt, extra):
            skipped.append(datum)
        else:
            to_run.append(datum)
    removed = sorted(i for i in previous if i not in current_ids)
    return to_run, skipped, removed
