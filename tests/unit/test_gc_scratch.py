"""What killed writers leave behind: gc reclaims it, fsck reports it, and a live writer's
scratch is never touched (storage/scratch.py).

The killed writers are real processes: a child python writes into the root's scratch through
a ``ContentWriter`` and SIGKILLs itself mid-write, as a killed ``tusk put file`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tusk.pfs.refs import parse_commit, parse_file, parse_repo
from tusk.pfs.service import PfsService
from tusk.storage.content import ContentWriter

MIB = 1 << 20


def scratch(svc: PfsService) -> list[str]:
    return sorted(os.listdir(svc.b.objects.scratch_dir()))


def killed_writer(svc: PfsService, publish: bool = False) -> None:
    """A child process that writes ~6 MiB through a ContentWriter into this root's store
    (sealing and publishing its pack when ``publish``) and is SIGKILLed before any commit."""
    root = svc.b.root
    code = textwrap.dedent(f"""
        import os, random, signal
        from pathlib import Path
        from tusk.pfs.service import PfsService
        svc = PfsService.open(Path({str(root)!r}))
        w = svc.b.writer()
        w.write_bytes(random.Random(1).randbytes(6 << 20))
        if {publish!r}:
            w.seal()  # published, but the commit that would index it never runs
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    p = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True)
    assert p.returncode == -9, p.stderr.decode()


def test_gc_reclaims_the_scratch_of_a_killed_writer_and_fsck_reports_it(svc: PfsService) -> None:
    killed_writer(svc)
    left = scratch(svc)
    assert left, "the killed writer left no scratch file (the test did not kill it mid-write)"
    report = svc.fsck()
    assert report.problems == []  # leftovers are no damage
    assert report.reclaimable is not None
    assert report.reclaimable["scratch_files"] == len(left)
    assert report.reclaimable["scratch_bytes"] >= 6 * MIB

    stats = svc.garbage_collect()  # the default grace: the writer is provably dead
    assert stats.scratch_freed == len(left)
    assert stats.bytes_freed >= 6 * MIB
    assert scratch(svc) == []
    assert svc.fsck().reclaimable == {"scratch_files": 0, "scratch_bytes": 0,
                                      "unindexed_packs": 0, "unindexed_bytes": 0}


def test_gc_reclaims_a_published_pack_a_killed_writer_never_indexed(svc: PfsService) -> None:
    killed_writer(svc, publish=True)
    assert len(list(svc.b.objects.list("packs/"))) == 1
    assert svc.fsck().reclaimable["unindexed_packs"] == 1  # type: ignore[index]
    svc.garbage_collect()  # no grace needed: its writer can never index it now
    assert list(svc.b.objects.list("packs/")) == []


def test_a_live_writers_scratch_is_never_reclaimed_however_old(svc: PfsService) -> None:
    w: ContentWriter = svc.b.writer()
    w.write_bytes(os.urandom(2 * MIB))  # an open pack in scratch, owned by this process
    (pack,) = scratch(svc)
    old = time.time() - 7 * 24 * 3600
    os.utime(svc.b.objects.scratch_dir() / pack, (old, old))
    stats = svc.garbage_collect(grace=0)
    assert stats.scratch_freed == 0
    assert scratch(svc) == [pack]
    assert svc.fsck().reclaimable["scratch_files"] == 0  # type: ignore[index]
    w.abort()
    assert scratch(svc) == []


def test_scratch_named_by_no_owner_is_reclaimed_after_the_grace(svc: PfsService) -> None:
    legacy = svc.b.objects.scratch_dir() / ("0" * 32)  # how an older tusk named its temp files
    legacy.write_bytes(b"x" * 1000)
    svc.garbage_collect()
    assert legacy.exists()  # young: may belong to a writer in flight
    old = time.time() - 2 * 3600
    os.utime(legacy, (old, old))
    assert svc.garbage_collect().scratch_freed == 1
    assert not legacy.exists()


def test_gc_grace_comes_from_the_environment(svc: PfsService, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    legacy = svc.b.objects.scratch_dir() / "pack-0123"
    legacy.write_bytes(b"x")
    monkeypatch.setenv("TUSK_GC_GRACE", "0")
    assert svc.garbage_collect().scratch_freed == 1


def test_committed_data_survives_the_scratch_sweep(svc: PfsService) -> None:
    svc.create_repo(parse_repo("data"))
    payload = os.urandom(3 * MIB)
    with svc.modify(parse_commit("data@master")) as fs:
        fs.put_bytes("/f", payload)
    killed_writer(svc, publish=True)
    svc.garbage_collect(grace=0)
    assert b"".join(svc.read_file(parse_file("data@master:/f"))) == payload
    assert svc.fsck().problems == []
    assert scratch(svc) == []


def test_writers_name_their_scratch_and_packs_after_themselves(tmp_path: Path, svc: PfsService) -> None:
    from tusk.storage.scratch import owner_alive, owner_of_pack, owner_of_scratch, owner_token

    w: ContentWriter = svc.b.writer()
    w.write_bytes(os.urandom(2 * MIB))
    (name,) = scratch(svc)
    assert owner_of_scratch(name) == owner_token()
    w.seal()
    (key,) = list(svc.b.objects.list("packs/"))
    assert owner_of_pack(key) == owner_token()
    assert owner_alive(owner_token()) is True
    assert owner_alive("w999999999.1") is False
    assert owner_alive("not-a-token") is None
