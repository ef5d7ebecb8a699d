"""kill -9 at random points of the commands that write: put file (one large file; many small
files with -r, the bulk path with worker processes), finish commit, and gc.

Each trial kills the real ``tusk`` process after a random delay (from before it has even
imported tusk to after it would have finished), then ``check_after_kill``: fsck is clean, every
acknowledged commit reads back byte for byte, and ``gc --grace 0`` leaves nothing behind.
``TUSK_FAULT_TRIALS`` sets the number of trials; the seed is in every failure message.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from faults import (
    SEED,
    TRIALS,
    check_after_kill,
    digests,
    fsck_clean,
    gc_leaves_nothing,
    kill_after,
    make_files,
    rng,
    start,
)

pytestmark = pytest.mark.e2e

Acked = dict[str, tuple[str, dict[str, str]]]


def head(tusk: Any, ref: str) -> str | None:
    r = tusk("list", "commit", ref, "-n", "1", "--raw")
    if r.returncode != 0:
        return None
    found = tusk.json("list", "commit", ref, "-n", "1", "--raw")
    return found[0]["id"] if found else None


def to_check(acked: Acked, newest: str | None, pick: Any) -> Acked:
    """The newest acknowledged commit and two others at random (all of them at the end)."""
    keys = [k for k in acked if k != newest]
    chosen = pick.sample(keys, min(2, len(keys))) + ([newest] if newest in acked else [])
    return {k: acked[k] for k in chosen}


def _put_trials(tusk: Any, name: str, make_source, args) -> None:  # type: ignore[no-untyped-def]
    """Trials of ``put file`` killed at random; ``make_source(i)`` makes trial i's source
    directory, ``args(i, src)`` the put's arguments."""
    pick = rng(name)
    tusk.ok("create", "repo", "data")
    work = Path(tusk.cwd)
    acked: Acked = {}
    budget = 2.0  # grows to the longest uninterrupted put seen
    for i in range(max(TRIALS, 2)):
        src = make_source(i)
        want = digests(src)
        delay = 120.0 if i == 0 else pick.uniform(0.0, budget * 1.2)  # trial 0 measures
        import time

        t0 = time.monotonic()
        done = kill_after(start(tusk, *args(i, src)), delay)
        note = f"trial {i} of {name}, killed after {delay:.2f}s" if not done else f"trial {i}"
        if done:
            budget = max(budget, time.monotonic() - t0)
            cid = head(tusk, "data@master")
            assert cid is not None
            acked[cid] = (f"data@{cid}:/t{i}", want)
        check_after_kill(tusk, to_check(acked, cid if done else None, pick), work, note, killed=not done)
        shutil.rmtree(src)
    if TRIALS > 2:  # with more trials, some acknowledged commits were not sampled on the way
        check_after_kill(tusk, acked, work, f"end of {name}")


def test_put_of_one_large_file_killed_at_random(tusk: Any) -> None:
    base = Path(tusk.cwd)
    pick = rng("large")

    def source(i: int) -> Path:
        d = base / f"large{i}"
        d.mkdir()
        (d / "big.bin").write_bytes(pick.randbytes(16 << 20))
        return d

    _put_trials(tusk, "large", source, lambda i, src: ("put", "file", f"data@master:/t{i}/big.bin",
                                                        "-f", str(src / "big.bin")))


def test_put_of_many_small_files_killed_at_random(tusk: Any) -> None:
    tusk.env["TUSK_PUT_WORKERS"] = "2"
    base = Path(tusk.cwd)

    def source(i: int) -> Path:
        d = base / f"many{i}"
        make_files(d, 2500, 2048, f"{SEED}:many:{i}")  # 2,500 files: the bulk path
        return d

    _put_trials(tusk, "many", source, lambda i, src: ("put", "file", "-r", f"data@master:/t{i}",
                                                       "-f", str(src)))


def test_finish_commit_killed_at_random(tusk: Any) -> None:
    pick = rng("finish")
    tusk.ok("create", "repo", "data")
    work = Path(tusk.cwd)
    acked: Acked = {}
    for i in range(max(TRIALS, 2)):
        src = work / f"staged{i}"
        want = make_files(src, 300, 1024, f"{SEED}:finish:{i}")
        cid = tusk.json("start", "commit", "data@master", "--raw")["id"]
        tusk.ok("put", "file", "-r", f"data@master:/t{i}", "-f", str(src))
        delay = 5.0 if i == 0 else pick.uniform(0.0, 1.2)
        done = kill_after(start(tusk, "finish", "commit", "data@master"), delay)
        state = tusk.json("inspect", "commit", f"data@{cid}", "--raw")["state"].lower()
        if not done:
            # Killed: the commit is finished (the transaction landed) or still open, never
            # half-finished; finishing it again must work.
            assert state in ("started", "finished"), state
            fsck_clean(tusk, f"trial {i} of finish, before recovery (seed {SEED})")
            if state == "started":
                tusk.ok("finish", "commit", "data@master")
        else:
            assert state == "finished"
        acked[cid] = (f"data@{cid}:/t{i}", want)
        check_after_kill(tusk, {cid: acked[cid]}, work, f"trial {i} of finish, killed={not done}",
                         killed=not done)
        shutil.rmtree(src)
    if TRIALS > 2:
        check_after_kill(tusk, acked, work, "end of finish")


def test_gc_killed_at_random(tusk: Any) -> None:
    pick = rng("gc")
    tusk.ok("create", "repo", "data")
    work = Path(tusk.cwd)
    keep = work / "keep"
    keep.mkdir()
    (keep / "kept.bin").write_bytes(pick.randbytes(3 << 20))
    tusk.ok("put", "file", "-r", "data@master:/keep", "-f", str(keep))
    kept_id = head(tusk, "data@master")
    assert kept_id is not None
    acked: Acked = {kept_id: (f"data@{kept_id}:/keep", digests(keep))}
    for i in range(max(TRIALS, 2)):
        # Garbage: a mostly dead pack (repacked) and whole dead packs, from deleted commits.
        junk = work / f"junk{i}"
        junk.mkdir()
        for j in range(3):
            (junk / f"j{j}.bin").write_bytes(pick.randbytes(4 << 20))
        tusk.ok("put", "file", "-r", "data@master:/junk", "-f", str(junk))
        tusk.ok("delete", "commit", head(tusk, "data@master"), input="")
        delay = 5.0 if i == 0 else pick.uniform(0.0, 1.5)
        done = kill_after(start(tusk, "gc", "--grace", "0"), delay)
        check_after_kill(tusk, acked, work, f"trial {i} of gc, killed={not done}", killed=not done)
        shutil.rmtree(junk)
    gc_leaves_nothing(tusk, "end of gc")
    assert hashlib.sha256((keep / "kept.bin").read_bytes()).hexdigest() == \
        acked[kept_id][1]["kept.bin"]
