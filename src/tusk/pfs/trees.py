"""Immutable trees: a commit's content as a sorted map ``path -> Entry``.

A tree is two levels of immutable nodes named by their blake3 hash:

* a *range* node holds a few thousand consecutive entries (sorted by path);
* the *root* (metarange) node lists the ranges as ``(first, last, hash, count, bytes)``.

Range boundaries are content-defined: a range ends after a path whose CRC is 0 modulo
``TARGET`` (or when a range grows too large), so inserting or deleting a path moves no boundary
elsewhere. Applying k changes to a tree of n paths rewrites only the ranges the changes touch
plus the root: O(k * range size + n / range size) bytes, never O(n). Diff opens only ranges
whose hashes differ. Everything here is pure: nodes come from a ``NodeStore`` and new nodes are
*returned* for the caller to persist inside its own transaction.
"""

from __future__ import annotations

import bisect
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import blake3
import msgpack

TARGET = 1024  # average entries per range
MAX_ENTRIES = 8 * TARGET
MAX_BYTES = 4 << 20  # approximate encoded size at which a range is cut regardless


class Entry(NamedTuple):
    """One file in a tree."""

    path: str
    size: int
    hash: bytes
    chunks: Sequence[Sequence]  # [(chunk digest, length, offset in chunk), ...]
    datum: str = "default"


class RangeRef(NamedTuple):
    first: str
    last: str
    hash: bytes
    count: int
    bytes: int


class NodeStore(Protocol):
    def get_node(self, digest: bytes) -> bytes:
        """The encoded node with this hash (raise NotFound if absent)."""


# -- encoding ---------------------------------------------------------------------------------


def encode_entries(entries: Sequence[Entry]) -> bytes:
    for e in entries:
        for ref in e.chunks:
            if ref[0] is None:  # a bundle not sealed yet: persisting it would lose the file
                raise RuntimeError(f"entry {e.path} refers to an unsealed bundle; seal the writer first")
    return msgpack.packb(entries, use_bin_type=True)


def decode_entries(data: bytes) -> list[Entry]:
    return [Entry(*e) for e in msgpack.unpackb(data, raw=False, use_list=True)]


def encode_root(ranges: Sequence[RangeRef]) -> bytes:
    return msgpack.packb(ranges, use_bin_type=True)


def decode_root(data: bytes) -> list[RangeRef]:
    return [RangeRef(*r) for r in msgpack.unpackb(data, raw=False, use_list=True)]


def node_hash(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def _is_boundary(path: str) -> bool:
    return (zlib.crc32(path.encode()) % TARGET) == TARGET - 1


def _entry_weight(e: Entry) -> int:
    return 48 + len(e.path) + 40 * len(e.chunks)


# -- reading ----------------------------------------------------------------------------------


class Tree:
    """Read access to one immutable tree (root hash ``None`` is the empty tree)."""

    def __init__(self, store: NodeStore, root: bytes | None) -> None:
        self.store = store
        self.root = root
        self._ranges: list[RangeRef] | None = None
        self._lasts: list[str] | None = None

    @property
    def ranges(self) -> list[RangeRef]:
        if self._ranges is None:
            self._ranges = [] if self.root is None else _cached_root(self.store, self.root)
            self._lasts = [r.last for r in self._ranges]
        return self._ranges

    @property
    def count(self) -> int:
        return sum(r.count for r in self.ranges)

    @property
    def size(self) -> int:
        return sum(r.bytes for r in self.ranges)

    def range_entries(self, ref: RangeRef) -> list[Entry]:
        return _cached_range(self.store, ref.hash)

    def get(self, path: str) -> Entry | None:
        ranges = self.ranges
        i = bisect.bisect_left(self._lasts, path)  # type: ignore[arg-type]
        if i == len(ranges) or ranges[i].first > path:
            return None
        entries = self.range_entries(ranges[i])
        j = bisect.bisect_left(entries, path, key=lambda e: e.path)
        if j < len(entries) and entries[j].path == path:
            return entries[j]
        return None

    def scan(self, start: str = "", stop: str | None = None) -> Iterator[Entry]:
        """Entries with ``start <= path < stop`` in path order."""
        ranges = self.ranges
        i = bisect.bisect_left(self._lasts, start)  # type: ignore[arg-type]
        while i < len(ranges):
            ref = ranges[i]
            if stop is not None and ref.first >= stop:
                return
            entries = self.range_entries(ref)
            j = bisect.bisect_left(entries, start, key=lambda e: e.path) if ref.first < start else 0
            for e in entries[j:]:
                if stop is not None and e.path >= stop:
                    return
                yield e
            i += 1

    def scan_prefix(self, prefix: str) -> Iterator[Entry]:
        return self.scan(prefix, prefix_end(prefix))

    def has_prefix(self, prefix: str) -> bool:
        return next(self.scan_prefix(prefix), None) is not None

    def __iter__(self) -> Iterator[Entry]:
        return self.scan()


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``."""
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class _NodeCache:
    """Decoded nodes by digest. Nodes are content-addressed, so a digest means the same node
    in every store; keying on the digest alone keeps no store (or overlay) alive."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[bytes, tuple] = OrderedDict()

    def get(self, store: NodeStore, digest: bytes, decode: Callable[[bytes], list]) -> tuple:
        hit = self.items.get(digest)
        if hit is not None:
            self.items.move_to_end(digest)
            return hit
        value = tuple(decode(store.get_node(digest)))
        self.items[digest] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


_ROOTS = _NodeCache(64)
_RANGES = _NodeCache(256)


def _cached_root(store: NodeStore, digest: bytes) -> list[RangeRef]:
    return list(_ROOTS.get(store, digest, decode_root))


def _cached_range(store: NodeStore, digest: bytes) -> list[Entry]:
    return list(_RANGES.get(store, digest, decode_entries))


# -- writing ----------------------------------------------------------------------------------

PUT, APPEND, DELETE = "put", "append", "delete"


class Op(NamedTuple):
    """A change to one path: put (replace), append (add chunks to the end), delete."""

    kind: str
    entry: Entry | None = None


def combine(base: Entry | None, op: Op) -> Entry | None:
    """The entry after applying ``op`` on top of ``base``."""
    if op.kind == DELETE:
        return None
    assert op.entry is not None
    if op.kind == PUT or base is None:
        return op.entry
    from tusk.storage.content import refs_hash  # local: keeps trees free of storage at import

    chunks = list(base.chunks) + list(op.entry.chunks)
    return Entry(base.path, base.size + op.entry.size, refs_hash(chunks), chunks, op.entry.datum)


@dataclass
class ApplyResult:
    root: bytes | None
    nodes: dict[bytes, bytes]
    count: int
    size: int


def apply(
    store: NodeStore,
    root: bytes | None,
    ops: Sequence[tuple[str, Op]],
    deleted_prefixes: Sequence[str] = (),
) -> ApplyResult:
    """A new tree: ``root`` with ``deleted_prefixes`` removed, then ``ops`` (sorted by path)."""
    base = Tree(store, root)
    ranges = base.ranges
    nodes: dict[bytes, bytes] = {}
    if not ops and not deleted_prefixes:
        return ApplyResult(root, nodes, base.count, base.size)
    lasts = [r.last for r in ranges]
    firsts = [r.first for r in ranges]
    touched = [False] * len(ranges)
    if ranges:
        for path, _op in ops:
            touched[min(bisect.bisect_left(lasts, path), len(ranges) - 1)] = True
        for prefix in deleted_prefixes:
            lo = bisect.bisect_left(lasts, prefix)
            end = prefix_end(prefix)
            hi = len(ranges) if end is None else bisect.bisect_left(firsts, end)
            for i in range(lo, hi):
                touched[i] = True
    dels = _outermost(deleted_prefixes)
    new_ranges: list[RangeRef] = []
    op_i = 0
    i = 0
    while i < len(ranges) or (not ranges and op_i == 0):
        if ranges and not touched[i]:
            new_ranges.append(ranges[i])
            i += 1
            continue
        # A run of touched ranges [i, j): merge its entries with the ops in its key span.
        j = i
        merged: list[Entry] = []
        while True:
            old: list[Entry] = []
            while j < len(ranges) and touched[j]:
                old.extend(base.range_entries(ranges[j]))
                j += 1
            span_end = lasts[j - 1] if j < len(ranges) else None  # last run takes all later ops
            run_ops = []
            while op_i < len(ops) and (span_end is None or ops[op_i][0] <= span_end):
                run_ops.append(ops[op_i])
                op_i += 1
            merged.extend(_merge(old, run_ops, dels))
            if j == len(ranges) or not merged or _is_boundary(merged[-1].path):
                break
            if not _is_boundary(lasts[j - 1]):
                break  # the run ended at a forced (size) cut: keep it, as before
            # The run's closing boundary path is gone: like a fresh build, the run flows on into
            # the next range (so the same content always gives the same ranges and root).
            touched[j] = True
        new_ranges.extend(_cut(merged, nodes))
        i = j
        if not ranges:
            break
    root_data = encode_root(new_ranges) if new_ranges else None
    new_root = None
    if root_data is not None:
        new_root = node_hash(root_data)
        nodes[new_root] = root_data
    return ApplyResult(
        new_root, nodes, sum(r.count for r in new_ranges), sum(r.bytes for r in new_ranges)
    )


def _outermost(prefixes: Iterable[str]) -> list[str]:
    """Sorted prefixes without those inside another one ("/a/", "/a/b/" -> "/a/").

    ``_under`` needs this: with nested prefixes the nearest smaller one may be the inner one.
    """
    out: list[str] = []
    for p in sorted(set(prefixes)):
        if not out or not p.startswith(out[-1]):
            out.append(p)
    return out


def _under(path: str, dels: list[str]) -> bool:
    """Whether ``path`` starts with one of ``dels`` (sorted, none inside another)."""
    i = bisect.bisect_right(dels, path)
    return i > 0 and path.startswith(dels[i - 1])


def _merge(old: list[Entry], ops: list[tuple[str, Op]], dels: list[str]) -> list[Entry]:
    out: list[Entry] = []
    a = 0
    for path, op in ops:
        while a < len(old) and old[a].path < path:
            if not dels or not _under(old[a].path, dels):
                out.append(old[a])
            a += 1
        base = None
        if a < len(old) and old[a].path == path:
            if not dels or not _under(path, dels):
                base = old[a]
            a += 1
        result = combine(base, op)
        if result is not None:
            out.append(result)
    for e in old[a:]:
        if not dels or not _under(e.path, dels):
            out.append(e)
    return out


def _cut(entries: list[Entry], nodes: dict[bytes, bytes]) -> Iterator[RangeRef]:
    start = 0
    weight = 0
    for idx, e in enumerate(entries):
        weight += _entry_weight(e)
        if _is_boundary(e.path) or idx + 1 - start >= MAX_ENTRIES or weight >= MAX_BYTES:
            yield _emit(entries[start : idx + 1], nodes)
            start = idx + 1
            weight = 0
    if start < len(entries):
        yield _emit(entries[start:], nodes)


def _emit(entries: list[Entry], nodes: dict[bytes, bytes]) -> RangeRef:
    data = encode_entries(entries)
    digest = node_hash(data)
    nodes[digest] = data
    return RangeRef(entries[0].path, entries[-1].path, digest, len(entries), sum(e.size for e in entries))


def build(entries: Iterable[Entry]) -> ApplyResult:
    """A tree from sorted entries (used by copy and tests)."""
    nodes: dict[bytes, bytes] = {}
    ranges = list(_cut(list(entries), nodes))
    if not ranges:
        return ApplyResult(None, nodes, 0, 0)
    data = encode_root(ranges)
    digest = node_hash(data)
    nodes[digest] = data
    return ApplyResult(digest, nodes, sum(r.count for r in ranges), sum(r.bytes for r in ranges))


# -- diff -------------------------------------------------------------------------------------


def diff(old_t: Tree, new_t: Tree, prefix: str = "") -> Iterator[tuple[Entry | None, Entry | None]]:
    """Changed entries as ``(old, new)`` pairs in path order; ranges shared by both are skipped.

    A range hash names an exact list of entries, so a range present in both trees contributes
    nothing to the diff and is never opened.
    """
    if old_t.root == new_t.root:
        return
    shared = {r.hash for r in old_t.ranges} & {r.hash for r in new_t.ranges}

    def stream(t: Tree) -> Iterator[Entry]:
        end = prefix_end(prefix)
        for r in t.ranges:
            if r.hash in shared or r.last < prefix or (end is not None and r.first >= end):
                continue
            for e in t.range_entries(r):
                if e.path.startswith(prefix):
                    yield e

    a_it, b_it = stream(old_t), stream(new_t)
    a, b = next(a_it, None), next(b_it, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.path < b.path):
            yield a, None
            a = next(a_it, None)
        elif a is None or b.path < a.path:
            yield None, b
            b = next(b_it, None)
        else:
            if a.hash != b.hash or a.size != b.size or a.datum != b.datum:
                yield a, b
            a, b = next(a_it, None), next(b_it, None)


# -- validation -------------------------------------------------------------------------------


def find_collision(new: Tree, base: Tree, changed: Sequence[str]) -> tuple[str, str] | None:
    """A (file, path inside it) pair if the new tree has a path that is both file and directory.

    Only paths this commit wrote can introduce a collision, so only they are checked:
    (a) no directory above a written path may be a file; (b) a written path may not be a
    directory, which (since written paths are covered by (a)) can only come from entries that
    were already under it in the base tree.
    """
    written = set(changed)

    def is_file(d: str) -> bool:
        # Answered from what was written and from the base, so the new tree's ranges (freshly
        # built, not yet decoded anywhere) are opened only when the base had a file there.
        if d in written:
            return True
        return base.root is not None and base.get(d) is not None and new.get(d) is not None

    checked_dirs: set[str] = set()
    for path in changed:  # written (put or appended) paths, not deleted ones
        parent = path.rpartition("/")[0]
        while parent and parent not in checked_dirs:
            checked_dirs.add(parent)
            if is_file(parent):
                return parent, path
            parent = parent.rpartition("/")[0]
        inner = path + "/"
        # A path that was a file in the (valid) base cannot also have been a directory there.
        if base.root is not None and base.get(path) is None and base.has_prefix(inner):
            child = next(new.scan_prefix(inner), None)
            if child is not None:
                return path, child.path
    return None
