"""Datums as tasks on worker processes: per-datum overhead against bare spawns, in one run.

Run: .venv/bin/python bench/bench_tasks.py [--datums 2000] [--parallelism 2] [--threads]
         [--batching]
     .venv/bin/python bench/bench_tasks.py --datums 100000 --runtimes process --sample 5000

Each datum is one one-file input and ``sh -c 'cp $in /pfs/out/'``. The job runs the way a user's
does: the controller (in this process, ``Controller.step``) enqueues the datums as tasks and
worker processes (``tusk.pps.worker``) claim, run and complete them. The reference is the same
number of bare spawns of the same command at the same parallelism, measured in the same run:
``sh -c cp`` for the process runtime, ``bwrap`` with the same binds and ``setpriv`` for the
sandbox. ``--sample N`` times N bare spawns and scales them to the job's size (100,000 bare
spawns take as long as the job). Peak RSS of the controller (this process) and of the largest
worker is reported too.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import fresh_dir, report

from tusk.pfs.refs import parse_commit, parse_repo
from tusk.pfs.service import PfsService
from tusk.pps.controller import Controller
from tusk.pps.service import PpsService
from tusk.pps.spec import parse_spec
from tusk.workers.base import Invocation, Workspace
from tusk.workers.runtimes.sandbox import SandboxRuntime, bwrap_usable

CMD = ["sh", "-c", 'cp "$inp" /pfs/out/']  # $inp: the datum's file, as Pachyderm sets it
BARE = ["sh", "-c", "cp /pfs/inp/x /pfs/out/"]  # the same, with the path written out


def bare(argvs: list[list[str]], workers: int) -> float:
    """Seconds to spawn each argv (``workers`` at a time)."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda a: subprocess.run(a, check=True, stdout=subprocess.DEVNULL), argvs))
    return time.perf_counter() - t0


def bare_process(n: int, workers: int) -> float:
    base = fresh_dir("bare-sh")
    argvs = []
    for i in range(n):
        d = base / str(i)
        (d / "out").mkdir(parents=True)
        (d / "x").write_text(f"{i}\n")
        argvs.append(["sh", "-c", f"cp {d}/x {d}/out/x"])
    return bare(argvs, workers)


def bare_bwrap(n: int, workers: int) -> float:
    """The sandbox's own argv (same binds, same uid drop) around the same ``cp``."""
    runtime = SandboxRuntime()
    base = fresh_dir("bare-bwrap")
    argvs = []
    for i in range(n):
        ws = Workspace(base / str(i))
        ws.out.mkdir(parents=True)
        ws.tmp.mkdir(parents=True)
        (ws.pfs / "inp").mkdir()
        (ws.pfs / "inp" / "x").write_text(f"{i}\n")
        if os.geteuid() == 0:  # the code runs as uid 65534 (the sandbox hands it its out, /tmp)
            for d in (ws.out, ws.tmp):
                os.chown(d, 65534, 65534)
        argvs.append(runtime.command(ws, Invocation(BARE, inputs=["inp"])))
    return bare(argvs, workers)


# Datum batching: one Python process per slot asks for datums in a loop (tusk's SDK).
BATCH = [sys.executable, "-c", ("import os, shutil, tusk\n"
                                "while tusk.next_datum() is not None:\n"
                                "    shutil.copy(os.environ['inp'], '/pfs/out/')\n")]


def one_file_datums(root: Path, n: int, transform: dict, parallelism: int,
                    ) -> tuple[PfsService, Controller, PpsService, Any]:
    """A root whose repo ``inp`` holds ``n`` one-file datums, its controller and PPS, and the
    spec of pipeline ``p`` over them with ``transform``."""
    pfs = PfsService.open(root)
    pfs.create_repo(parse_repo("inp"))
    with pfs.modify(parse_commit("inp@master")) as s:
        for i in range(n):
            s.put_bytes(f"/f{i:07d}", b"%d\n" % i)
    spec = parse_spec({"pipeline": {"name": "p"}, "transform": transform,
                       "parallelism_spec": {"constant": parallelism},
                       "input": {"pfs": {"repo": "inp", "glob": "/*", "name": "inp"}}})
    return pfs, Controller(pfs, verbose=False), PpsService(pfs), spec


def tusk_job(n: int, runtime: str, parallelism: int, threads: bool = False,
             batching: bool = False, changes: list[float] | None = None) -> tuple[float, int]:
    """Seconds for the job (create pipeline to sealed output) and the workers' peak RSS (KiB).
    ``threads``: datums in the controller's threads (``TUSK_WORKERS=0``), for comparison."""
    root = fresh_dir(f"tasks-{runtime}")
    os.environ["TUSK_RUNNER"] = runtime
    os.environ["TUSK_WORKERS"] = "0" if threads else "1"
    transform = {"cmd": BATCH, "datum_batching": True} if batching else {"cmd": CMD}
    pfs, ctl, pps, spec = one_file_datums(root, n, transform, parallelism)
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    pps.create_pipeline(spec)
    while ctl.step():
        pass
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{runtime}: controller cpu {c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime:.1f}s"
          f" of {wall:.1f}s", file=sys.stderr)
    job = pps.list_jobs("p")[0]
    assert job.state == "SUCCESS" and job.processed == n, job
    if changes is not None:
        # One changed file, job to sealed output: with the workers still up (warm), and
        # after they have exited (cold: a worker process starts for the datum).
        for run in range(4):
            if run == 3:
                ctl.jobs.pool.close()
            t0 = time.perf_counter()
            with pfs.modify(parse_commit("inp@master")) as s:
                s.put_bytes(f"/f{run:07d}", b"changed %d\n" % run)
            while ctl.step():
                pass
            changes.append(time.perf_counter() - t0)
            job = pps.list_jobs("p")[0]
            assert job.processed == 1 and job.skipped == n - 1, job
    ctl.jobs.pool.close()
    pfs.close()
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datums", type=int, default=2000)
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--sample", type=int, default=0, help="bare spawns timed (0: as many as datums)")
    ap.add_argument("--runtimes", default="process,sandbox")
    ap.add_argument("--batching", action="store_true",
                    help="also run the job with datum_batching (a Python loop per slot)")
    ap.add_argument("--threads", action="store_true",
                    help="also run the job in the controller's threads (TUSK_WORKERS=0)")
    args = ap.parse_args()
    n, par = args.datums, args.parallelism
    sample = min(n, args.sample or n)
    result: dict = {"datums": n, "parallelism": par, "command": CMD, "bare_sampled": sample}
    runtimes = [r for r in args.runtimes.split(",") if r != "sandbox" or bwrap_usable()]
    for runtime in runtimes:
        ref = (bare_process(sample, par) if runtime == "process" else bare_bwrap(sample, par))
        ref *= n / sample
        changed: list[float] = []
        wall, worker_rss = tusk_job(n, runtime, par, changes=changed)
        result[runtime] = {
            "tusk_seconds": round(wall, 2), "bare_seconds": round(ref, 2),
            "ratio": round(wall / ref, 2), "tusk_ms_per_datum": round(wall / n * 1000, 2),
            "bare_ms_per_datum": round(ref / n * 1000, 2), "goal_ratio": 1.2,
            "worker_peak_rss_mib": round(worker_rss / 1024, 1),
            "one_changed_file_seconds_warm": [round(x, 3) for x in changed[:3]],
            "one_changed_file_seconds_cold_worker": round(changed[3], 3)}
        if args.batching:
            wall, _ = tusk_job(n, runtime, par, batching=True)
            result[runtime]["batching_datums_per_s"] = round(n / wall)
            result[runtime]["batching_goal_datums_per_s"] = 1000
        if args.threads:
            wall, _ = tusk_job(n, runtime, par, threads=True)
            result[runtime]["in_controller_threads_ms_per_datum"] = round(wall / n * 1000, 2)
    result["controller_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report("datum_tasks_overhead", result)


if __name__ == "__main__":
    main()
