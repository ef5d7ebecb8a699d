"""A SIGKILLed bulk ``put file -r`` leaves no worker behind, and nothing that blocks ``tusk gc``.

A bulk put forks worker processes (storage/bulk.py). They must die with the CLI, and the data
lock the CLI held must not live on in them (an flock is shared with forked children).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from faults import check_after_kill, descendants, make_files, start, wait_gone

pytestmark = pytest.mark.e2e


def test_killing_a_bulk_put_kills_its_workers_and_gc_is_not_blocked(tusk: Any) -> None:
    tusk.env["TUSK_PUT_WORKERS"] = "2"
    tusk.ok("create", "repo", "data")
    src = Path(tusk.cwd) / "src"
    make_files(src, 12000, 16 << 10, "killed-put")  # ~190 MB: seconds of work for the workers
    proc = start(tusk, "put", "file", "-r", "data@master:/", "-f", str(src))
    workers: set[int] = set()
    deadline = time.monotonic() + 30
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        workers |= descendants(proc.pid)
        time.sleep(0.02)
    assert len(workers) >= 2, "the put forked no workers (did it take the bulk path?)"
    # Killed as soon as both workers run (mid-way: reading, hashing and packing); waiting
    # longer lets a quiet machine finish the put first.
    assert proc.poll() is None, "the put finished before it could be killed; use more files"
    proc.kill()
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):  # a surviving worker would hold them open
        if pipe is not None:
            pipe.close()

    survivors = wait_gone(workers, timeout=3)
    assert not survivors, f"put workers {sorted(survivors)} outlived the killed CLI"
    t0 = time.monotonic()
    tusk.ok("gc", "--timeout", "20", timeout=60)
    assert time.monotonic() - t0 < 20
    assert tusk.json("list", "branch", "data", "--raw") == []  # nothing was committed
    check_after_kill(tusk, {}, Path(tusk.cwd), "after a killed bulk put", killed=True)
