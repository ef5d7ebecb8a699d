"""Bulk puts: many local files written by forked worker processes (storage/bulk.py).

The thresholds are lowered so a few hundred files take the bulk path through many units and
batches; the storage properties checked are those docs/storage.md promises for small files.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tusk.errors import InvalidArgument, NotFound, TuskError
from tusk.pfs import write_session
from tusk.pfs.refs import parse_commit, parse_file, parse_repo
from tusk.pfs.service import PfsService
from tusk.pfs.sources import walk_local
from tusk.storage import bulk

C, F = parse_commit, parse_file


@pytest.fixture(autouse=True)
def small_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(write_session, "BULK_MIN_FILES", 50)
    monkeypatch.setattr(write_session, "UNIT_FILES", 16)
    monkeypatch.setattr(write_session, "BATCH_FILES", 24)
    monkeypatch.setenv("TUSK_PUT_WORKERS", "2")


@pytest.fixture
def repo(svc: PfsService) -> PfsService:
    svc.create_repo(parse_repo("data"))
    return svc


def make_tree(root: Path, n: int, seed: int = 0, sizes: tuple[int, ...] = (700, 1024, 3000)) -> Path:
    rnd = random.Random(seed)
    for i in range(n):
        d = root / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04d}").write_bytes(rnd.randbytes(rnd.choice(sizes)))
    return root


def put_dir(svc: PfsService, src: Path, ref: str = "data@master") -> int:
    with svc.modify(C(ref)) as s:
        return s.put_many(walk_local(src, "/"), normalized=True)


def pack_bytes(svc: PfsService) -> int:
    store = svc.b.objects
    return sum(store.size(k) for k in store.list("packs/"))


def scratch_files(svc: PfsService) -> list[str]:
    return sorted(os.listdir(svc.b.objects.scratch_dir()))


def cat(svc: PfsService, ref: str) -> bytes:
    return b"".join(svc.read_file(F(ref)))


def test_a_bulk_put_reads_back_and_hashes_like_a_single_write(repo: PfsService, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 400)
    (src / "empty").write_bytes(b"")
    (src / "medium").write_bytes(random.Random(1).randbytes(300_000))  # one whole chunk
    (src / "large").write_bytes(random.Random(2).randbytes(3 << 20))  # cut by FastCDC
    (src / "dup").write_bytes((src / "d0" / "f0000").read_bytes())
    assert put_dir(repo, src) == 404
    infos = {f.path: f for f in repo.walk_file(F("data@master:/"))}
    assert len(infos) == 404
    for dest, local in walk_local(src, "/"):
        assert cat(repo, f"data@master:{dest}") == Path(local).read_bytes()
    # File hashes do not depend on how the write was split between processes.
    repo.create_repo(parse_repo("single"))
    with repo.modify(C("single@master")) as s:
        for dest, local in walk_local(src, "/"):
            s.put_bytes(dest, Path(local).read_bytes())
    for f in repo.walk_file(F("single@master:/")):
        assert infos[f.path].hash == f.hash and infos[f.path].size == f.size
    assert scratch_files(repo) == []


def test_small_files_are_bundled_not_stored_one_by_one(repo: PfsService, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 400, sizes=(1024,))
    put_dir(repo, src)
    digests = {f.chunks[0][0] for f in repo.walk_file(F("data@master:/"))}
    assert 400 // 16 <= len(digests) < 200  # at least one bundle per unit, far fewer than files


def test_re_putting_the_same_files_stores_nothing_new(repo: PfsService, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 500)
    put_dir(repo, src)
    before, packs = pack_bytes(repo), len(list(repo.b.objects.list("packs/")))
    put_dir(repo, src)
    assert pack_bytes(repo) == before
    assert len(list(repo.b.objects.list("packs/"))) == packs
    assert len(repo.list_commits(parse_repo("data"))) == 2


def bundle_bytes(svc: PfsService, path: str) -> int:
    """Bytes of the bundle holding ``path``: what re-storing that one bundle costs."""
    bundle = svc.inspect_file(F(f"data@master:{path}")).chunks[0][0]
    return sum(f.size for f in svc.walk_file(F("data@master:/")) if f.chunks[0][0] == bundle)


def test_changing_or_adding_one_file_re_stores_only_its_bundle(repo: PfsService, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 600, sizes=(1024,))
    put_dir(repo, src)
    total = pack_bytes(repo)
    (src / "d3" / "f0300").write_bytes(b"changed" * 100)
    put_dir(repo, src)
    grew = pack_bytes(repo) - total
    assert grew == bundle_bytes(repo, "/d3/f0300") < total / 4
    total = pack_bytes(repo)
    (src / "d2" / "f0100a").write_bytes(b"new file" * 100)  # sorts into the middle of d2
    put_dir(repo, src)
    grew = pack_bytes(repo) - total
    assert grew == bundle_bytes(repo, "/d2/f0100a") < total / 4
    assert cat(repo, "data@master:/d2/f0100a") == b"new file" * 100
    assert cat(repo, "data@master:/d3/f0300") == b"changed" * 100


def test_an_unreadable_file_fails_the_put_and_leaves_nothing(repo: PfsService, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 300)
    items = list(walk_local(src, "/"))
    items.insert(200, ("/trap", str(src / "d1")))  # a directory: open works, read fails
    with pytest.raises(TuskError) as err, repo.modify(C("data@master")) as s:
        s.put_many(items, normalized=True)
    assert str(src / "d1") in str(err.value) and "\n" not in str(err.value)
    assert repo.list_commits(parse_repo("data")) == []
    assert list(repo.b.objects.list("packs/")) == []
    assert scratch_files(repo) == []


def test_a_missing_file_is_not_found(repo: PfsService, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 300)
    items = list(walk_local(src, "/"))
    items.insert(10, ("/gone", str(src / "no-such-file")))
    with pytest.raises(NotFound, match="no-such-file"), repo.modify(C("data@master")) as s:
        s.put_many(items, normalized=True)
    assert repo.list_commits(parse_repo("data")) == []
    assert scratch_files(repo) == []


def test_a_worker_error_surfaces_as_itself(repo: PfsService, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(writer, paths, ends):  # type: ignore[no-untyped-def]
        raise InvalidArgument("boom from a worker")

    monkeypatch.setattr(bulk, "write_units", boom)  # the forked workers inherit it
    src = make_tree(tmp_path / "src", 200)
    with pytest.raises(InvalidArgument, match="boom from a worker"):
        put_dir(repo, src)
    assert repo.list_commits(parse_repo("data")) == []
    assert scratch_files(repo) == []


def test_a_worker_that_dies_fails_the_put(repo: PfsService, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def die(writer, paths, ends):  # type: ignore[no-untyped-def]
        os._exit(9)

    monkeypatch.setattr(bulk, "write_units", die)
    src = make_tree(tmp_path / "src", 200)
    with pytest.raises(TuskError, match="worker process died"):
        put_dir(repo, src)
    assert repo.list_commits(parse_repo("data")) == []
    assert scratch_files(repo) == []


def test_an_error_after_the_bulk_put_deletes_its_packs(repo: PfsService, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 200)
    with pytest.raises(RuntimeError, match="later"), repo.modify(C("data@master")) as s:
        s.put_many(walk_local(src, "/"), normalized=True)
        raise RuntimeError("later")
    assert list(repo.b.objects.list("packs/")) == []
    assert scratch_files(repo) == []


def test_bulk_append_and_progress(repo: PfsService, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 120)
    put_dir(repo, src)
    seen: list[int] = []
    with repo.modify(C("data@master")) as s:
        s.put_many(walk_local(src, "/"), append=True, progress=seen.append, normalized=True)
    local = src / "d4" / "f0004"
    assert cat(repo, "data@master:/d4/f0004") == local.read_bytes() * 2
    assert sum(seen) == sum(p.stat().st_size for p in src.rglob("*") if p.is_file())


def test_later_puts_of_a_path_win_in_order(repo: PfsService, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 100)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"first")
    b.write_bytes(b"second")
    items = [("/x", str(a))] + list(walk_local(src, "/")) + [("/x", str(b))]
    with repo.modify(C("data@master")) as s:
        assert s.put_many(items, normalized=True) == 102
    assert cat(repo, "data@master:/x") == b"second"


def test_without_workers_the_threaded_path_gives_the_same_tree(
    repo: PfsService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_tree(tmp_path / "src", 300)
    put_dir(repo, src)
    monkeypatch.setenv("TUSK_PUT_WORKERS", "0")
    repo.create_repo(parse_repo("other"))
    put_dir(repo, src, "other@master")
    one = {(f.path, f.hash, f.size) for f in repo.walk_file(F("data@master:/"))}
    two = {(f.path, f.hash, f.size) for f in repo.walk_file(F("other@master:/"))}
    assert one == two


def test_into_an_open_commit(repo: PfsService, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 200)
    commit = repo.start_commit(parse_repo("data"), "master")
    with repo.modify(C(f"data@{commit.id}")) as s:
        s.put_many(walk_local(src, "/"), normalized=True)
    repo.finish_commit(C(f"data@{commit.id}"))
    assert len(list(repo.walk_file(F("data@master:/")))) == 200
    assert cat(repo, "data@master:/d0/f0007") == (src / "d0" / "f0007").read_bytes()


def test_a_first_commit_builds_the_same_tree_as_applying_onto_an_empty_one(
    repo: PfsService, tmp_path: Path
) -> None:
    """close() builds a first commit's tree with trees.build: it must equal trees.apply."""
    from tusk.pfs import staging, trees

    src = make_tree(tmp_path / "src", 300)
    put_dir(repo, src)
    commit = repo.inspect_commit(C("data@master"))
    changes = staging.ChangeSet()
    for f in repo.walk_file(F("data@master:/")):
        changes.put(trees.Entry(f.path, f.size, bytes.fromhex(f.hash), [list(c) for c in f.chunks]))
    changes.put(trees.Entry("/zz", 1, b"\x01" * 32, []))
    changes.delete("/zz")
    changes.put(trees.Entry("/appended", 2, b"\x02" * 32, []), append=True)
    changes.delete("/never-there")
    applied = trees.apply(repo.b.nodes, None, changes.sorted_ops(), ["/nope/"])
    built = write_session._new_tree(repo.b.nodes, trees.Tree(repo.b.nodes, None), changes.sorted_ops(), ["/nope/"])
    assert built.root == applied.root and built.nodes == applied.nodes
    assert (built.count, built.size) == (applied.count, applied.size) == (301, commit.size_bytes + 2)
