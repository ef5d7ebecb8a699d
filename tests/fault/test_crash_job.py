"""kill -9 of the pipeline controller at random points of running jobs.

Each trial commits new input, SIGKILLs every controller of the root after a random delay
(before the job starts, mid-datum, while the output is being sealed, or after), and then lets
``tusk wait commit`` start a new controller. The job must finish with exactly the right
output, every earlier acknowledged output commit must read back the same, fsck must be clean
and ``gc --grace 0`` must leave nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest
from faults import SEED, TRIALS, check_after_kill, rng
from pipeline_helpers import Pipes, bash, pfs_input, pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e

FILES = 4


def test_controller_killed_at_random_points_of_jobs(pipes: Pipes) -> None:
    p = pipes
    pick = rng("job")
    inputs: dict[str, str] = {"seed": "0"}
    p.repo("in", dict(inputs))
    p.create(spec("copy", pfs_input("in", "/*"),
                  bash("sleep 0.2; cp $in /pfs/out/$(basename $in)")))
    p.wait(p.head("in"), timeout=120)
    work = Path(p.t.cwd)
    acked: dict[str, tuple[str, dict[str, str]]] = {}
    for i in range(max(TRIALS, 2)):
        batch = {f"t{i}-{k}": pick.randbytes(pick.randint(1, 4096)).hex() for k in range(FILES)}
        inputs.update(batch)
        cid = p.put("in", batch)
        delay = pick.uniform(0.0, 4.0)
        time.sleep(delay)
        killed = p.controller_pids()
        for pid in killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        note = f"trial {i}: killed {len(killed)} controller(s) after {delay:.2f}s (seed {SEED})"
        p.wait(cid, timeout=180)  # starts a new controller, which must finish the job
        job = p.job("copy", cid)
        assert job["state"] == "SUCCESS", f"{note}: {job}"
        # The output commit shares the input's commit set ID.
        assert p.text_tree(f"copy@{cid}") == {f"/{k}": v for k, v in inputs.items()}, note
        acked[cid] = (f"copy@{cid}:/", {k: hashlib.sha256(v.encode()).hexdigest()
                                        for k, v in inputs.items()})
        check_after_kill(p.t, {cid: acked[cid]}, work, note, killed=bool(killed))
    check_after_kill(p.t, acked, work, f"end of job trials (seed {SEED})")
