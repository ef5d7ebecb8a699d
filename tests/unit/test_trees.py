"""Immutable range/metarange trees (tusk.pfs.trees) checked against a plain dict model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tusk.errors import NotFound
from tusk.pfs import trees
from tusk.pfs.trees import APPEND, DELETE, PUT, ApplyResult, Entry, Op, Tree
from tusk.storage.content import refs_hash

# -- the fast twin of the node store and a dict model ---------------------------------------


class MemStore:
    """A dict-backed NodeStore that records every node it hands out."""

    def __init__(self, nodes: dict[bytes, bytes] | None = None) -> None:
        self.nodes: dict[bytes, bytes] = dict(nodes or {})
        self.reads: list[bytes] = []

    def get_node(self, digest: bytes) -> bytes:
        self.reads.append(digest)
        try:
            return self.nodes[digest]
        except KeyError:
            raise NotFound(f"node {digest.hex()[:16]} missing") from None

    def add(self, res: ApplyResult) -> ApplyResult:
        self.nodes.update(res.nodes)
        return res


def mk(path: str, data: bytes = b"x", datum: str = "default") -> Entry:
    """An entry as trees store it (chunk refs are lists after a msgpack round trip)."""
    digest = blake3.blake3(data).digest()
    return Entry(path, len(data), digest, [[digest, len(data), 0]], datum)


Model = dict[str, Entry]


def model_apply(model: Model, ops: Sequence[tuple[str, Op]], prefixes: Iterable[str] = ()) -> Model:
    """The reference semantics: drop the prefixes, then apply each op in order."""
    pre = tuple(prefixes)
    out = {p: e for p, e in model.items() if not p.startswith(pre)} if pre else dict(model)
    for path, op in ops:
        if op.kind == DELETE:
            out.pop(path, None)
            continue
        assert op.entry is not None
        new, old = op.entry, out.get(path)
        if op.kind == APPEND and old is not None:
            chunks = list(old.chunks) + list(new.chunks)
            new = Entry(path, old.size + new.size, refs_hash(chunks), chunks, new.datum)
        out[path] = new
    return out


def model_items(model: Model) -> list[Entry]:
    return [model[p] for p in sorted(model)]


def build_model(store: MemStore, model: Model) -> ApplyResult:
    return store.add(trees.build(model_items(model)))


def big_paths(n: int) -> list[str]:
    return sorted(f"/d{i % 37:02d}/f{i:06d}" for i in range(n))


@cache
def big_tree(n: int) -> tuple[MemStore, bytes, Model]:
    """A tree of ``n`` entries over 37 directories (built once per size; tests add nodes to a copy)."""
    store = MemStore()
    entries = [mk(p, p.encode()) for p in big_paths(n)]
    res = store.add(trees.build(entries))
    assert res.root is not None
    return store, res.root, {e.path: e for e in entries}


def boundaries(paths: Iterable[str]) -> list[str]:
    return [p for p in paths if trees._is_boundary(p)]


# -- reading ----------------------------------------------------------------------------------


def test_empty_tree_reads_as_empty() -> None:
    t = Tree(MemStore(), None)
    assert t.count == 0 and t.size == 0
    assert t.get("/a") is None
    assert list(t) == [] and list(t.scan("/a", "/b")) == []
    assert not t.has_prefix("/")
    assert list(trees.diff(t, t)) == []


def test_big_tree_has_many_content_defined_ranges() -> None:
    store, root, model = big_tree(50_000)
    t = Tree(store, root)
    assert t.count == 50_000
    assert t.size == sum(v[1] for v in model.values())
    assert 20 < len(t.ranges) < 120  # TARGET = 1024 entries on average
    for r in t.ranges[:-1]:
        assert trees._is_boundary(r.last)  # every range but the last ends at a boundary path
        assert r.count <= trees.MAX_ENTRIES
    firsts = [r.first for r in t.ranges]
    assert firsts == sorted(firsts)
    assert all(a.last < b.first for a, b in zip(t.ranges, t.ranges[1:], strict=False))


def test_get_finds_every_path_and_nothing_else() -> None:
    store, root, model = big_tree(20_000)
    t = Tree(store, root)
    for p in list(model)[::97] + [r.first for r in t.ranges] + [r.last for r in t.ranges]:
        got = t.get(p)
        assert got == model[p]
    # before the first path, between two ranges, after the last path, and a directory
    misses = ["/", "/a", "/d00", "/d00/", "/zzz", "/d00/f000000x"]
    misses += [r.last + "\x00" for r in t.ranges]
    for p in misses:
        assert p not in model
        assert t.get(p) is None


@settings(max_examples=60, deadline=None)
@given(
    a=st.integers(0, 40_000),
    b=st.integers(0, 40_000),
    open_end=st.booleans(),
)
def test_scan_is_a_half_open_range(a: int, b: int, open_end: bool) -> None:
    store, root, model = big_tree(20_000)
    t = Tree(store, root)
    start = f"/d{a % 37:02d}/f{a:06d}"[: 3 + a % 10]
    stop = None if open_end else f"/d{b % 37:02d}/f{b:06d}"[: 3 + b % 10]
    got = [e.path for e in t.scan(start, stop)]
    want = [p for p in sorted(model) if p >= start and (stop is None or p < stop)]
    assert got == want


def test_scan_prefix_and_has_prefix() -> None:
    store, root, model = big_tree(20_000)
    t = Tree(store, root)
    got = [e.path for e in t.scan_prefix("/d05/")]
    assert got == sorted(p for p in model if p.startswith("/d05/"))
    assert len(got) > 500  # spans several ranges
    assert t.has_prefix("/d36/") and t.has_prefix("/d0") and t.has_prefix("/")
    assert not t.has_prefix("/d37/") and not t.has_prefix("/d05/f1x")
    # a prefix is a string prefix, not a directory: "/d0" also matches "/d05/..."
    assert {e.path[:4] for e in t.scan_prefix("/d0")} == {f"/d0{i}" for i in range(10)}


def test_prefix_end() -> None:
    assert trees.prefix_end("") is None
    assert trees.prefix_end("/a/") == "/a0"
    for p in ["/a/", "/a/zzz", "/a/\U0010fff0"]:
        assert "/a/" <= p < trees.prefix_end("/a/")  # type: ignore[operator]
    assert not ("/a0" < trees.prefix_end("/a/"))  # type: ignore[operator]


def test_missing_node_is_not_found() -> None:
    with pytest.raises(NotFound):
        Tree(MemStore(), b"\x01" * 32).get("/a")


# -- writing ----------------------------------------------------------------------------------


def test_build_equals_apply_of_the_same_puts() -> None:
    entries = [mk(p, p.encode()[::-1]) for p in big_paths(5000)]
    s = MemStore()
    built = s.add(trees.build(entries))
    applied = s.add(trees.apply(s, None, [(e.path, Op(PUT, e)) for e in entries]))
    assert built.root == applied.root
    assert (built.count, built.size) == (applied.count, applied.size) == (5000, built.size)
    assert list(Tree(s, applied.root)) == entries
    assert trees.build([]).root is None


def test_apply_without_changes_keeps_the_root() -> None:
    store, root, _ = big_tree(20_000)
    res = trees.apply(store, root, [])
    assert res.root == root and res.nodes == {} and res.count == 20_000


def test_deleting_everything_gives_the_empty_tree() -> None:
    store, root, model = big_tree(5000)
    res = trees.apply(store, root, [], ["/"])
    assert res.root is None and res.count == 0 and res.size == 0
    ops = [(p, Op(DELETE)) for p in sorted(model)]
    assert trees.apply(store, root, ops).root is None
    # applying onto the empty tree: deletes of absent paths are no-ops
    assert trees.apply(store, None, [("/a", Op(DELETE))], ["/b/"]).root is None


def test_append_concatenates_chunks_and_adds_sizes() -> None:
    s = MemStore()
    r1 = s.add(trees.apply(s, None, [("/f", Op(PUT, mk("/f", b"hello ")))]))
    r2 = s.add(trees.apply(s, r1.root, [("/f", Op(APPEND, mk("/f", b"world", "d1")))]))
    e = Tree(s, r2.root).get("/f")
    assert e is not None
    first, then = mk("/f", b"hello "), mk("/f", b"world")
    assert e.size == 11 and r2.size == 11 and Tree(s, r2.root).size == 11
    assert e.chunks == [*first.chunks, *then.chunks]
    assert e.hash == refs_hash([*first.chunks, *then.chunks])
    assert e.hash not in (first.hash, then.hash)
    assert e.datum == "d1"
    # appending to a path that does not exist is a put
    r3 = trees.apply(s, r2.root, [("/g", Op(APPEND, mk("/g", b"new")))])
    s.add(r3)
    assert Tree(s, r3.root).get("/g") == mk("/g", b"new")
    # putting over an existing file replaces it
    r4 = s.add(trees.apply(s, r3.root, [("/f", Op(PUT, mk("/f", b"bye")))]))
    assert Tree(s, r4.root).get("/f") == mk("/f", b"bye")
    assert r4.size == 3 + 3


def test_combine() -> None:
    base = mk("/f", b"ab")
    assert trees.combine(base, Op(DELETE)) is None
    assert trees.combine(None, Op(DELETE)) is None
    assert trees.combine(base, Op(PUT, mk("/f", b"c"))) == mk("/f", b"c")
    assert trees.combine(None, Op(APPEND, mk("/f", b"c"))) == mk("/f", b"c")
    both = trees.combine(base, Op(APPEND, mk("/f", b"c")))
    assert both is not None and both.size == 3 and len(both.chunks) == 2


def test_deleted_prefix_then_puts_under_it() -> None:
    """Prefix deletions happen first; ops in the same apply land after them."""
    s = MemStore()
    r1 = s.add(trees.build([mk("/a/x"), mk("/a/y"), mk("/ab"), mk("/b")]))
    ops = [("/a/y", Op(APPEND, mk("/a/y", b"new"))), ("/a/z", Op(PUT, mk("/a/z")))]
    r2 = s.add(trees.apply(s, r1.root, ops, ["/a/"]))
    assert [e.path for e in Tree(s, r2.root)] == ["/a/y", "/a/z", "/ab", "/b"]
    assert Tree(s, r2.root).get("/a/y").size == 3  # type: ignore[union-attr]  # not appended


def test_nested_deleted_prefixes_delete_everything_under_the_outer_one() -> None:
    s = MemStore()
    r1 = s.add(trees.build([mk("/a/b/x"), mk("/a/c"), mk("/a/d/e"), mk("/z")]))
    for dels in (["/a/", "/a/b/"], ["/a/b/", "/a/"], ["/a/b/", "/a/", "/a/d/", "/a/"]):
        res = s.add(trees.apply(s, r1.root, [], dels))
        assert [e.path for e in Tree(s, res.root)] == ["/z"], dels


def test_one_change_in_a_big_tree_writes_few_nodes() -> None:
    store, root, model = big_tree(50_000)
    old = Tree(MemStore(store.nodes), root)
    paths = sorted(model)
    bounds = boundaries(paths)
    changes: list[tuple[str, list[tuple[str, Op]], list[str]]] = [
        ("replace", [(paths[25_000], Op(PUT, mk(paths[25_000], b"changed")))], []),
        ("append", [(paths[10], Op(APPEND, mk(paths[10], b"more")))], []),
        ("delete", [(paths[40_000], Op(DELETE))], []),
        ("insert", [("/d10/f025000a", Op(PUT, mk("/d10/f025000a")))], []),
        ("insert at end", [("/zz", Op(PUT, mk("/zz")))], []),
        ("insert at start", [("/a", Op(PUT, mk("/a")))], []),
        ("delete a boundary path", [(bounds[5], Op(DELETE))], []),
        ("delete the last path", [(paths[-1], Op(DELETE))], []),
    ]
    s = MemStore(store.nodes)
    for what, ops, dels in changes:
        res = trees.apply(s, root, ops, dels)
        s.add(res)
        new = Tree(s, res.root)
        assert len(res.nodes) <= 3, what  # the touched range (maybe split) plus the root
        old_hashes = {r.hash for r in old.ranges}
        new_hashes = {r.hash for r in new.ranges}
        # the root lists every untouched range as before (same bounds, same order)...
        kept = [r for r in new.ranges if r.hash in old_hashes]
        assert kept == [r for r in old.ranges if r.hash in new_hashes], what
        # ...and replaces at most two old ranges with ranges written by this change
        assert len(kept) >= len(old.ranges) - 2, what
        assert new_hashes - old_hashes <= set(res.nodes), what
        touched = {p: model[p] for p, _op in ops if p in model}
        want = model_diff(touched, model_apply(touched, ops, dels))
        assert list(trees.diff(old, new)) == want, what
        assert new.count == len(model_apply(touched, ops, dels)) - len(touched) + old.count


def test_inserting_a_path_moves_no_other_boundary() -> None:
    store, root = MemStore(big_tree(20_000)[0].nodes), big_tree(20_000)[1]
    old = Tree(store, root)
    # a path that is not a boundary: the range that receives it grows by one, nothing else moves
    plain = next(p for p in (f"/d03/f010000{c}" for c in "abcdefghij") if not trees._is_boundary(p))
    res = store.add(trees.apply(store, root, [(plain, Op(PUT, mk(plain)))]))
    new = Tree(store, res.root)
    assert len(new.ranges) == len(old.ranges)
    changed = [(a, b) for a, b in zip(old.ranges, new.ranges, strict=True) if a != b]
    assert len(changed) == 1
    a, b = changed[0]
    assert b.count == a.count + 1 and b.first <= plain <= b.last
    # a path that is a boundary splits its range in two and leaves the others alone
    cut = next(p for p in (f"/d03/f010000x{i}" for i in range(100_000)) if trees._is_boundary(p))
    res = store.add(trees.apply(store, root, [(cut, Op(PUT, mk(cut)))]))
    new = Tree(store, res.root)
    assert len(new.ranges) == len(old.ranges) + 1
    assert len({r.hash for r in new.ranges} - {r.hash for r in old.ranges}) == 2
    assert any(r.last == cut for r in new.ranges)


def test_the_same_content_gives_the_same_root_whatever_the_history() -> None:
    base_store, root, model = big_tree(20_000)
    store = MemStore(base_store.nodes)
    paths = sorted(model)
    bounds = boundaries(paths)
    # deleting boundary paths (and whole directories) merges ranges as a fresh build would
    ops = [(p, Op(DELETE)) for p in bounds[::3]]
    res = store.add(trees.apply(store, root, ops, ["/d07/"]))
    want = model_apply(model, ops, ["/d07/"])
    assert res.root == build_model(store, want).root
    # and putting them back restores the original root exactly
    back = [(p, Op(PUT, mk(p, p.encode()))) for p in sorted(p for p in model if p not in want)]
    res2 = store.add(trees.apply(store, res.root, back))
    assert res2.root == root


def test_a_long_run_without_boundaries_is_cut_at_max_entries() -> None:
    paths = [p for p in (f"/n{i:07d}" for i in range(12_000)) if not trees._is_boundary(p)]
    paths = paths[: trees.MAX_ENTRIES + 100]
    s = MemStore()
    res = s.add(trees.build([mk(p) for p in paths]))
    t = Tree(s, res.root)
    assert [r.count for r in t.ranges] == [trees.MAX_ENTRIES, 100]
    assert t.get(paths[trees.MAX_ENTRIES]) is not None and t.count == len(paths)
    res2 = s.add(trees.apply(s, res.root, [(paths[5], Op(DELETE))]))
    assert [e.path for e in Tree(s, res2.root)] == paths[:5] + paths[6:]
    # an edit before a forced cut rewrites that range only; it does not cascade into the next
    assert len(res2.nodes) == 2
    assert Tree(s, res2.root).ranges[1] == t.ranges[1]


# -- random operation sequences against the dict model ---------------------------------------

BASE_N = 6000
_ops_paths = big_paths(BASE_N)
_bounds = boundaries(_ops_paths)
_dirs = sorted({p[:4] for p in _ops_paths})

path_st = st.one_of(
    st.sampled_from(_ops_paths),
    st.sampled_from(_bounds),
    st.builds(lambda d, n: f"{d}/f{n:06d}", st.sampled_from([*_dirs, "/d99", "/a"]), st.integers(0, 9000)),
    st.builds(lambda d, s: f"{d}/{s}", st.sampled_from(_dirs), st.sampled_from(["x", "x/y", "f0"])),
)
op_st = st.tuples(
    path_st,
    st.sampled_from([PUT, APPEND, DELETE]),
    st.binary(max_size=4),
    st.sampled_from(["default", "d1"]),
)
batch_st = st.tuples(
    st.lists(op_st, max_size=25),
    st.lists(st.sampled_from([d + "/" for d in _dirs] + ["/d1", "/d05/f0001", "/"]), max_size=2),
)


def to_ops(raw: list[tuple[str, str, bytes, str]]) -> list[tuple[str, Op]]:
    ops: dict[str, Op] = {}
    for path, kind, data, datum in raw:
        ops[path] = Op(DELETE) if kind == DELETE else Op(kind, mk(path, data, datum))
    return sorted(ops.items())


SHARED = MemStore(big_tree(BASE_N)[0].nodes)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(batch_st, min_size=1, max_size=3))
def test_apply_matches_the_dict_model(batches: list[tuple[list, list[str]]]) -> None:
    _, root, model = big_tree(BASE_N)
    store = SHARED  # one store object across examples keeps the decoded-range cache warm
    cur: bytes | None = root
    for raw, dels in batches:
        if "/" in dels and len(batches) > 1:
            dels = [d for d in dels if d != "/"]  # keep most sequences large
        ops = to_ops(raw)
        res = store.add(trees.apply(store, cur, ops, dels))
        model = model_apply(model, ops, dels)
        t = Tree(store, res.root)
        assert list(t) == model_items(model)
        assert res.count == t.count == len(model)
        assert res.size == t.size == sum(e.size for e in model.values())
        for path, _op in ops:
            assert t.get(path) == model.get(path)
        # the structure depends on the content only
        assert res.root == build_model(store, model).root
        cur = res.root


# -- diff -------------------------------------------------------------------------------------


def model_diff(old: Model, new: Model, prefix: str = "") -> list[tuple[Entry | None, Entry | None]]:
    out = []
    for p in sorted(set(old) | set(new)):
        if not p.startswith(prefix):
            continue
        a, b = old.get(p), new.get(p)
        if a is None or b is None or (a.size, a.hash, a.datum) != (b.size, b.hash, b.datum):
            out.append((a, b))
    return out


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(left=batch_st, right=batch_st, prefix=st.sampled_from(["", "/d0", "/d05/", "/nothing"]))
def test_diff_matches_the_model_and_skips_shared_ranges(
    left: tuple[list, list[str]], right: tuple[list, list[str]], prefix: str
) -> None:
    _, root, model = big_tree(BASE_N)
    store = SHARED
    l_ops, r_ops = to_ops(left[0]), to_ops(right[0])
    l_res = store.add(trees.apply(store, root, l_ops, left[1]))
    r_res = store.add(trees.apply(store, root, r_ops, right[1]))
    l_model, r_model = model_apply(model, l_ops, left[1]), model_apply(model, r_ops, right[1])
    fresh = MemStore(store.nodes)  # a new store object: nothing cached for it yet
    old_t, new_t = Tree(fresh, l_res.root), Tree(fresh, r_res.root)
    got = list(trees.diff(old_t, new_t, prefix))
    assert got == model_diff(l_model, r_model, prefix)
    shared = {r.hash for r in old_t.ranges} & {r.hash for r in new_t.ranges}
    assert not shared & set(fresh.reads)


def test_diff_opens_only_the_ranges_that_differ() -> None:
    base_store, root, model = big_tree(50_000)
    store = MemStore(base_store.nodes)
    paths = sorted(model)
    ops = [(paths[100], Op(PUT, mk(paths[100], b"new"))), (paths[30_000], Op(DELETE))]
    res = store.add(trees.apply(store, root, ops))
    fresh = MemStore(store.nodes)
    old_t, new_t = Tree(fresh, root), Tree(fresh, res.root)
    got = [(a and a.path, b and b.path) for a, b in trees.diff(old_t, new_t)]
    assert got == [(paths[100], paths[100]), (paths[30_000], None)]
    # two roots plus at most two ranges on each side, out of ~50
    assert len(fresh.reads) <= 2 + 4
    assert len(old_t.ranges) > 20
    # identical trees: nothing is opened at all
    fresh2 = MemStore(store.nodes)
    assert list(trees.diff(Tree(fresh2, root), Tree(fresh2, root))) == []
    assert fresh2.reads == []


def test_diff_reports_datum_and_content_changes_but_not_identical_entries() -> None:
    s = MemStore()
    r1 = s.add(trees.build([mk("/a", b"1"), mk("/b", b"2"), mk("/c", b"3")]))
    r2 = s.add(trees.build([mk("/a", b"1"), mk("/b", b"2", "d1"), mk("/c", b"4"), mk("/d")]))
    got = [(a and a.path, b and b.path) for a, b in trees.diff(Tree(s, r1.root), Tree(s, r2.root))]
    assert got == [("/b", "/b"), ("/c", "/c"), (None, "/d")]
    back = [(a and a.path, b and b.path) for a, b in trees.diff(Tree(s, r2.root), Tree(s, r1.root))]
    assert back == [("/b", "/b"), ("/c", "/c"), ("/d", None)]
    assert [b.path for _a, b in trees.diff(Tree(s, None), Tree(s, r1.root))] == ["/a", "/b", "/c"]


# -- file / directory collisions --------------------------------------------------------------


def collision_after(
    base_paths: list[str], ops: list[tuple[str, Op]], dels: Sequence[str] = ()
) -> tuple[str, str] | None:
    s = MemStore()
    base = Tree(s, s.add(trees.build([mk(p) for p in sorted(base_paths)])).root)
    res = s.add(trees.apply(s, base.root, sorted(ops), dels))
    written = [p for p, op in sorted(ops) if op.kind != DELETE]
    return trees.find_collision(Tree(s, res.root), base, written)


def put(path: str) -> tuple[str, Op]:
    return (path, Op(PUT, mk(path)))


def test_file_and_directory_written_in_one_commit_collide() -> None:
    assert collision_after([], [put("/a"), put("/a/b")]) == ("/a", "/a/b")
    assert collision_after([], [put("/a/b/c"), put("/a")]) == ("/a", "/a/b/c")


def test_new_file_over_an_existing_directory_collides() -> None:
    assert collision_after(["/a/x", "/a/y/z"], [put("/a")]) == ("/a", "/a/x")
    # unless the directory is deleted in the same commit
    assert collision_after(["/a/x", "/a/y/z"], [put("/a")], ["/a/"]) is None
    assert collision_after(["/a/x"], [put("/a"), ("/a/x", Op(DELETE))]) is None


def test_new_path_under_an_existing_file_collides() -> None:
    assert collision_after(["/a"], [put("/a/b/c")]) == ("/a", "/a/b/c")
    assert collision_after(["/x/a"], [put("/x/a/b")]) == ("/x/a", "/x/a/b")
    assert collision_after(["/a"], [put("/a/b/c"), ("/a", Op(DELETE))]) is None


def test_clean_trees_have_no_collision() -> None:
    assert collision_after([], [put("/a"), put("/ab/c"), put("/a-b/c"), put("/a0")]) is None
    assert collision_after(["/a/x", "/b"], [put("/a/y"), put("/c/d/e"), put("/a.txt")]) is None
    base_store, root, model = big_tree(5000)
    store = MemStore(base_store.nodes)
    base = Tree(store, root)
    ops = [put("/d05/new"), put("/d99/x/y")]
    res = store.add(trees.apply(store, root, ops))
    assert trees.find_collision(Tree(store, res.root), base, [p for p, _ in ops]) is None
    bad = [put("/d05")]
    res = store.add(trees.apply(store, root, bad))
    clash = trees.find_collision(Tree(store, res.root), base, ["/d05"])
    assert clash is not None and clash[0] == "/d05"
    assert clash[1] == min(p for p in model if p.startswith("/d05/"))

