"""Composition of staged file operations (tusk.pfs.staging: compose and ChangeSet)."""

from __future__ import annotations

import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from tusk.pfs import trees
from tusk.pfs.staging import ChangeSet, compose
from tusk.pfs.trees import APPEND, DELETE, PUT, Entry, Op, Tree
from tusk.storage.content import refs_hash


class MemStore:
    """A dict-backed NodeStore."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def get_node(self, digest: bytes) -> bytes:
        return self.nodes[digest]


def mk(path: str, data: bytes, datum: str = "default") -> Entry:
    digest = blake3.blake3(data).digest()
    return Entry(path, len(data), digest, [[digest, len(data), 0]], datum)


A, B, C = mk("/f", b"aa"), mk("/f", b"bbb"), mk("/f", b"c", "d1")


def test_anything_then_put_is_that_put() -> None:
    for first in (None, Op(PUT, A), Op(APPEND, A), Op(DELETE)):
        assert compose(first, Op(PUT, B)) == Op(PUT, B)


def test_anything_then_delete_is_a_delete() -> None:
    for first in (None, Op(PUT, A), Op(APPEND, A), Op(DELETE)):
        assert compose(first, Op(DELETE)) == Op(DELETE)


def test_nothing_then_append_stays_an_append() -> None:
    assert compose(None, Op(APPEND, A)) == Op(APPEND, A)


def test_put_then_append_is_a_put_of_both() -> None:
    op = compose(Op(PUT, A), Op(APPEND, B))
    assert op.kind == PUT and op.entry is not None
    assert op.entry.path == "/f" and op.entry.size == 5
    assert op.entry.chunks == [*A.chunks, *B.chunks]
    assert op.entry.hash == refs_hash([*A.chunks, *B.chunks])


def test_append_hash_does_not_depend_on_grouping() -> None:
    """Appending B then C in one commit or in two must give the same file hash."""
    store = MemStore()
    base = trees.apply(store, None, [("/f", Op(PUT, A))])
    store.nodes.update(base.nodes)
    together = trees.apply(store, base.root, [("/f", compose(Op(APPEND, B), Op(APPEND, C)))])
    step = trees.apply(store, base.root, [("/f", Op(APPEND, B))])
    store.nodes.update(step.nodes)
    apart = trees.apply(store, step.root, [("/f", Op(APPEND, C))])
    store.nodes.update(together.nodes)
    store.nodes.update(apart.nodes)
    assert Tree(store, together.root).get("/f") == Tree(store, apart.root).get("/f")


def test_append_then_append_is_an_append_of_both() -> None:
    op = compose(Op(APPEND, A), Op(APPEND, B))
    assert op.kind == APPEND and op.entry is not None
    assert op.entry.size == 5 and op.entry.chunks == [*A.chunks, *B.chunks]
    op = compose(op, Op(APPEND, C))
    assert op.kind == APPEND and op.entry is not None
    assert op.entry.size == 6 and op.entry.chunks == [*A.chunks, *B.chunks, *C.chunks]
    assert op.entry.datum == "d1"  # the latest write's datum tag


def test_delete_then_append_is_a_put_of_the_appended_content() -> None:
    assert compose(Op(DELETE), Op(APPEND, B)) == Op(PUT, B)


def test_inputs_are_not_modified() -> None:
    first = Op(PUT, mk("/f", b"aa"))
    compose(first, Op(APPEND, B))
    assert first == Op(PUT, A) and len(A.chunks) == 1


def test_changeset_puts_compose_per_path() -> None:
    cs = ChangeSet()
    assert not cs
    cs.put(A)
    cs.put(B, append=True)
    cs.put(mk("/g", b"g"), append=True)
    assert cs
    assert cs.ops["/f"].kind == PUT and cs.ops["/f"].entry.size == 5  # type: ignore[union-attr]
    assert cs.ops["/g"] == Op(APPEND, mk("/g", b"g"))
    cs.delete("/f")
    assert cs.ops["/f"] == Op(DELETE)
    cs.put(C, append=True)
    assert cs.ops["/f"] == Op(PUT, C)


def test_delete_dir_drops_staged_ops_under_the_prefix() -> None:
    cs = ChangeSet()
    for p in ["/a", "/a/x", "/a/y/z", "/ab", "/a-b/x", "/b/a/x"]:
        cs.put(mk(p, b"1"))
    cs.delete("/a/gone")
    cs.delete_dir("/a/")
    assert sorted(cs.ops) == ["/a", "/a-b/x", "/ab", "/b/a/x"]
    assert cs.deleted_dirs == {"/a/"}
    # a write after the directory deletion is kept and lands after it
    cs.put(mk("/a/new", b"2"), append=True)
    assert cs.ops["/a/new"].kind == APPEND
    assert cs  # a change set with only a deleted directory is not empty
    only = ChangeSet()
    only.delete_dir("/x/")
    assert only and only.sorted_ops() == []


def test_sorted_ops_are_in_path_order() -> None:
    cs = ChangeSet()
    paths = ["/b", "/a/z", "/a", "/a-", "/a/b", "/A", "/a0"]
    for p in paths:
        cs.put(mk(p, b"1"))
    cs.delete("/0")
    got = [p for p, _op in cs.sorted_ops()]
    assert got == sorted([*paths, "/0"])
    assert got[:3] == ["/0", "/A", "/a"]


# -- a change set applied to a tree equals the actions applied one by one ---------------------

PATHS = ["/a", "/a/x", "/a/y", "/a/y/z", "/b", "/b/x", "/c"]
action_st = st.one_of(
    st.tuples(st.sampled_from(["put", "append"]), st.sampled_from(PATHS), st.binary(max_size=3)),
    st.tuples(st.just("delete"), st.sampled_from(PATHS), st.just(b"")),
    st.tuples(st.just("delete_dir"), st.sampled_from(["/a/", "/a/y/", "/b/", "/"]), st.just(b"")),
)
Shape = tuple[int, list[list[object]], str]


def shape(e: Entry) -> Shape:
    """What a reader sees of a file, apart from its hash."""
    return (e.size, [list(c) for c in e.chunks], e.datum)


@settings(max_examples=150, deadline=None)
@given(
    base_paths=st.lists(st.sampled_from(PATHS), unique=True),
    actions=st.lists(action_st, max_size=12),
)
def test_changeset_equals_the_actions_in_order(
    base_paths: list[str], actions: list[tuple[str, str, bytes]]
) -> None:
    store = MemStore()
    base = trees.build([mk(p, p.encode()) for p in sorted(base_paths)])
    store.nodes.update(base.nodes)
    model: dict[str, Shape] = {p: shape(mk(p, p.encode())) for p in base_paths}
    cs = ChangeSet()
    for i, (kind, path, data) in enumerate(actions):
        datum = f"d{i}"
        if kind == "delete_dir":
            cs.delete_dir(path)
            model = {p: v for p, v in model.items() if not p.startswith(path)}
        elif kind == "delete":
            cs.delete(path)
            model.pop(path, None)
        else:
            e = mk(path, data, datum)
            cs.put(e, append=kind == "append")
            old = model.get(path)
            if kind == "append" and old is not None:
                model[path] = (old[0] + e.size, old[1] + [list(c) for c in e.chunks], datum)
            else:
                model[path] = shape(e)
    res = trees.apply(store, base.root, cs.sorted_ops(), sorted(cs.deleted_dirs))
    store.nodes.update(res.nodes)
    got = {e.path: shape(e) for e in Tree(store, res.root)}
    assert got == model
