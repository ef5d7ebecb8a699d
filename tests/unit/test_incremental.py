"""Planning from the input diff must agree with planning everything."""

from __future__ import annotations

from pathlib import Path

import pytest

from tusk.pfs import trees
from tusk.pfs.refs import parse_commit, parse_repo
from tusk.pfs.service import PfsService
from tusk.pps import datums as dm
from tusk.pps.incremental import affected


def _tree(svc: PfsService, ref: str) -> trees.Tree:
    with svc.b.db.read() as conn:
        return svc.view(conn, svc.resolve_commit(conn, parse_commit(ref)))


def _full(src: dm.PfsSource, t: trees.Tree) -> dict[str, str]:
    records = [dm.FileRecord(e.path, e.hash, e.size) for e in t]
    return {d.id: d.hash("salt") for d in dm.plan(src, lambda _s: records)}


@pytest.fixture(scope="module")
def two_trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[trees.Tree, trees.Tree]:
    svc = PfsService.open(Path(tmp_path_factory.mktemp("incr")))
    svc.create_repo(parse_repo("r"))
    with svc.modify(parse_commit("r@master")) as s:
        for i in range(3000):  # several tree ranges
            s.put_bytes(f"/d{i % 30}/f{i}", b"%d" % i)
    first = svc.inspect_commit(parse_commit("r@master")).id
    with svc.modify(parse_commit("r@master")) as s:
        s.put_bytes("/d3/f3", b"changed")
        s.put_bytes("/d99/new", b"new")
        s.delete("/d7", recursive=True)
    return _tree(svc, f"r@{first}"), _tree(svc, "r@master")


@pytest.mark.parametrize("glob", ["/*", "/*/*", "/", "/**", "/d3/*", "/d?/*"])
def test_changed_datums_match_the_full_plan(two_trees: tuple[trees.Tree, trees.Tree], glob: str) -> None:
    old, new = two_trees
    src = dm.PfsSource("r", "r", "master", glob)
    before, after = _full(src, old), _full(src, new)
    changed, gone = affected(src, old, new)
    # Every datum it returns is exactly the full planner's datum for that ID...
    for d in changed:
        assert after[d.id] == d.hash("salt")
    # ...every datum whose hash changed (or is new) is among them...
    assert {i for i in after if before.get(i) != after[i]} <= {d.id for d in changed}
    # ...and every datum that disappeared is reported gone, none that still exists.
    assert {i for i in before if i not in after} <= set(gone)
    assert not set(gone) & set(after)


def test_identical_trees_touch_nothing(two_trees: tuple[trees.Tree, trees.Tree]) -> None:
    _old, new = two_trees
    assert affected(dm.PfsSource("r", "r", "master", "/*"), new, new) == ([], [])
