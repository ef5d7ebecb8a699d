"""PFS's output API (``pfs/output.py``): what the pipeline layer writes an output commit through.

Real SQLite and a real object store; the output commit is the open commit that propagation
makes on a branch with provenance, as a pipeline's is.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tusk.errors import FailedPrecondition
from tusk.pfs.merge import Listing
from tusk.pfs.output import OutputCommit
from tusk.pfs.refs import parse_commit, parse_file, parse_repo
from tusk.pfs.service import PfsService
from tusk.pfs.trees import Entry


def put(svc: PfsService, ref: str, files: dict[str, bytes]) -> None:
    with svc.modify(parse_commit(ref)) as fs:
        for path, data in files.items():
            fs.put_bytes(path, data)


def files(svc: PfsService, ref: str) -> dict[str, bytes]:
    return {f.path: b"".join(svc.read_file(parse_file(f"{ref}:{f.path}")))
            for f in svc.walk_file(parse_file(ref + ":/")) if f.type == "file"}


def stored(svc: PfsService, datum: str, outputs: dict[str, bytes]) -> tuple[list[Entry], tuple]:  # type: ignore[type-arg]
    """Write ``outputs`` as content, as a worker does; their entries and the index rows."""
    w = svc.b.writer()
    entries = []
    for path, data in outputs.items():
        c = w.write_bytes(data)
        entries.append((path, c))
    rows = w.seal()
    # Sealing fills in the chunk digests of small files bundled together.
    return [Entry(p, c.size, c.hash, c.chunks, datum) for p, c in entries], rows


def next_output(svc: PfsService, base: int | None = None) -> OutputCommit:
    """Move the input so the output branch gets a new open commit; open it."""
    with svc.b.db.read() as conn:
        (pending,) = svc.output.open_commits(conn, parse_repo("out"))
    return svc.output.open(pending.commit_pk, base)


@pytest.fixture
def out(svc: PfsService) -> OutputCommit:
    svc.create_repo(parse_repo("in"))
    put(svc, "in@master", {"/x": b"x"})
    svc.create_repo(parse_repo("out"))
    svc.create_branch(parse_repo("out"), "master", provenance=[(parse_repo("in"), "master")])
    return next_output(svc)


def test_listings_handed_in_by_another_process_land_at_seal(svc: PfsService, out: OutputCommit,
                                                             tmp_path: Path) -> None:
    entries, rows = stored(svc, "a" * 64, {"/a.txt": b"from a"})
    out.add_listing("a" * 64, entries, content=rows)
    # Another process (a worker) opens the same commit and hands in its own datum's listing.
    script = textwrap.dedent(f"""
        from pathlib import Path
        from tusk.pfs.service import PfsService
        from tusk.pfs.trees import Entry
        svc = PfsService.open(Path({str(svc.b.root)!r}))
        w = svc.b.writer()
        c = w.write_bytes(b"from b")
        rows = w.seal()
        out = svc.output.open({out.commit_pk})
        out.add_listing("b" * 64, [Entry("/b.txt", c.size, c.hash, c.chunks, "b" * 64)], content=rows)
        svc.close()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert [lst.datum_id for lst in out.listings()] == ["a" * 64, "b" * 64]
    merged = out.prepare()
    assert merged.error == ""
    with svc.b.db.tx() as conn:
        out.seal(conn, merged)
    assert files(svc, "out@master") == {"/a.txt": b"from a", "/b.txt": b"from b"}
    info = svc.inspect_commit(parse_commit("out@master"))
    assert info.finished and info.error == "" and info.file_count == 2
    assert out.listings() == []  # sealed: the listings are folded into the tree


def test_a_listing_handed_in_again_replaces_the_first(svc: PfsService, out: OutputCommit) -> None:
    first, rows1 = stored(svc, "a" * 64, {"/old.txt": b"1"})
    again, rows2 = stored(svc, "a" * 64, {"/new.txt": b"2"})
    out.add_listing("a" * 64, first, content=rows1)
    out.add_listing("a" * 64, first, content=rows1)  # a retried hand-in: no duplicate
    out.add_listing("a" * 64, again, content=rows2)  # the task ran again
    with svc.b.db.tx() as conn:
        out.seal(conn, out.prepare())
    assert files(svc, "out@master") == {"/new.txt": b"2"}


def test_two_datums_writing_one_path_fail_the_commit_and_keep_the_base(
        svc: PfsService, out: OutputCommit) -> None:
    a, rows = stored(svc, "a" * 64, {"/same": b"a"})
    with svc.b.db.tx() as conn:
        out.seal(conn, out.prepare([Listing("a" * 64, a)]), rows)
    base = svc.inspect_commit(parse_commit("out@master"))
    put(svc, "in@master", {"/y": b"y"})
    nxt = next_output(svc, base=out.commit_pk)
    b, rows_b = stored(svc, "b" * 64, {"/same": b"b"})
    merged = nxt.prepare([Listing("b" * 64, b)])
    assert "duplicate path output by different datums: /same" in merged.error
    with svc.b.db.tx() as conn:
        nxt.seal(conn, merged, rows_b)
    info = svc.inspect_commit(parse_commit("out@master"))
    assert info.id != base.id and info.error.startswith("duplicate path")
    assert info.file_count == 1  # the base's content, not half of the merge


def test_a_retracted_datums_outputs_go_and_no_one_elses(svc: PfsService, out: OutputCommit) -> None:
    a, rows_a = stored(svc, "a" * 64, {"/a/1": b"1", "/shared-name": b"a"})
    b, rows_b = stored(svc, "b" * 64, {"/b/1": b"2"})
    with svc.b.db.tx() as conn:
        out.seal(conn, out.prepare([Listing("a" * 64, a), Listing("b" * 64, b)]),
                 (rows_a[0] + rows_b[0], rows_a[1] + rows_b[1]))
    put(svc, "in@master", {"/y": b"y"})
    nxt = next_output(svc, base=out.commit_pk)
    # Datum a is gone (its input was deleted); it claims /b/1 too, which it never wrote.
    nxt.add_listing("a" * 64, [], retract=["/a/1", "/shared-name", "/b/1"])
    with svc.b.db.tx() as conn:
        nxt.seal(conn, nxt.prepare())
    assert files(svc, "out@master") == {"/b/1": b"2"}


def test_a_failed_job_keeps_the_base_content(svc: PfsService, out: OutputCommit) -> None:
    a, rows = stored(svc, "a" * 64, {"/a": b"a"})
    out.add_listing("a" * 64, a, content=rows)
    merged = out.prepare(failure="1 of 2 datum(s) failed")
    with svc.b.db.tx() as conn:
        out.seal(conn, merged)
    info = svc.inspect_commit(parse_commit("out@master"))
    assert info.error == "1 of 2 datum(s) failed" and info.file_count == 0


def test_a_sealed_commit_takes_no_listing_and_no_second_seal(svc: PfsService, out: OutputCommit) -> None:
    with svc.b.db.tx() as conn:
        out.seal(conn, out.prepare())
    before = svc.inspect_commit(parse_commit("out@master"))
    a, rows = stored(svc, "a" * 64, {"/a": b"a"})
    with pytest.raises(FailedPrecondition, match="finished or deleted"):
        out.add_listing("a" * 64, a, content=rows)
    assert out.listings() == []
    with pytest.raises(FailedPrecondition), svc.b.db.tx() as conn:
        out.seal(conn, out.prepare([Listing("a" * 64, a)]), rows)
    assert svc.inspect_commit(parse_commit("out@master")) == before


def test_fail_finishes_only_an_open_output_commit(svc: PfsService, out: OutputCommit) -> None:
    with svc.b.db.tx() as conn:
        assert svc.output.fail(conn, out.commit_pk, "job was stopped") is True
    with svc.b.db.tx() as conn:
        assert svc.output.fail(conn, out.commit_pk, "again") is False
    assert svc.inspect_commit(parse_commit("out@master")).error == "job was stopped"


def test_gc_keeps_content_only_a_listing_names(svc: PfsService, out: OutputCommit) -> None:
    a, rows = stored(svc, "a" * 64, {"/big": b"z" * 300_000})
    out.add_listing("a" * 64, a, content=rows)
    svc.garbage_collect(grace=0)
    with svc.b.db.tx() as conn:
        out.seal(conn, out.prepare())
    assert files(svc, "out@master") == {"/big": b"z" * 300_000}


def test_input_commits_of_an_output_commit(svc: PfsService, out: OutputCommit) -> None:
    with svc.b.db.read() as conn:
        ups = svc.output.input_commits(conn, out.commit_pk)
    head = svc.inspect_commit(parse_commit("in@master"))
    assert [(u.repo.name, u.commit.commit_id) for u in ups] == [("in", head.id)]
