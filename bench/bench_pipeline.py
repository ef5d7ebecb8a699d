"""Pipeline benchmarks: per-datum overhead, and a job where 1 file of a big input changed.

Run: .venv/bin/python bench/bench_pipeline.py overhead [--datums 10000]
     .venv/bin/python bench/bench_pipeline.py incremental [--files 100000]
Goals: per-datum overhead <= 2x a bare bubblewrap spawn of the same command; the job after a
one-file change of a 100,000-datum input done in < 2 s (planning + skipping + one run).
Jobs run in-process (Controller.step), so the numbers exclude CLI start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import fresh_dir, report, summarize

from tusk.pfs.refs import parse_commit, parse_repo
from tusk.pfs.service import PfsService
from tusk.pps.controller import Controller
from tusk.pps.service import PpsService
from tusk.pps.spec import parse_spec
from tusk.workers.runtimes.process import ProcessRuntime
from tusk.workers.runtimes.sandbox import SandboxRuntime, bwrap_usable


def setup(n: int, runner_name: str, parallelism: int, cmd: list[str]):  # type: ignore[no-untyped-def]
    root = fresh_dir(f"pipe-{runner_name}-{parallelism}")
    pfs = PfsService.open(root)
    pfs.create_repo(parse_repo("inp"))
    with pfs.modify(parse_commit("inp@master")) as s:
        for i in range(n):
            s.put_bytes(f"/f{i:07d}", b"%d\n" % i)
    runner = SandboxRuntime() if runner_name == "sandbox" else ProcessRuntime()
    ctl = Controller(pfs, runner, verbose=False)
    pps = PpsService(pfs)
    spec = parse_spec({"pipeline": {"name": "p"}, "transform": {"cmd": cmd},
                       "parallelism_spec": {"constant": parallelism},
                       "input": {"pfs": {"repo": "inp", "glob": "/*"}}})
    return pfs, pps, ctl, spec


def run_until_idle(ctl: Controller) -> None:
    while ctl.step():
        pass


def bare(cmd: list[str], n: int, workers: int) -> float:
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: subprocess.run(cmd, check=True), range(n)))
    return (time.perf_counter() - t0) / n


def overhead(args: argparse.Namespace) -> None:
    runners = ["process"] + (["sandbox"] if bwrap_usable() else [])
    cmd = ["true"]
    result: dict = {"datums": args.datums, "command": cmd}
    sample = min(args.datums, 2000)
    for workers in (1, 2):
        result[f"bare_spawn_ms_p{workers}"] = bare(cmd, sample, workers) * 1000
        if bwrap_usable():
            bw = SandboxRuntime()
            from tusk.workers.base import Invocation, Workspace

            ws = Workspace(fresh_dir("bare-bwrap"))
            ws.out.mkdir(parents=True)
            argv = bw.command(ws, Invocation(cmd))
            result[f"bare_bwrap_ms_p{workers}"] = bare(argv, sample, workers) * 1000
    for runner in runners:
        for par in (1, 2):
            pfs, pps, ctl, spec = setup(args.datums, runner, par, cmd)
            t0 = time.perf_counter()
            pps.create_pipeline(spec)
            run_until_idle(ctl)
            wall = time.perf_counter() - t0
            job = pps.list_jobs("p")[0]
            assert job.state == "SUCCESS" and job.processed == args.datums, job
            result[f"{runner}_p{par}_ms_per_datum"] = wall / args.datums * 1000
            pfs.close()
    report("per_datum_overhead", result)


def incremental(args: argparse.Namespace) -> None:
    pfs, pps, ctl, spec = setup(args.files, "process", 2, ["true"])
    t0 = time.perf_counter()
    pps.create_pipeline(spec)
    run_until_idle(ctl)
    first = time.perf_counter() - t0
    times = []
    for run in range(args.runs):
        t0 = time.perf_counter()
        with pfs.modify(parse_commit("inp@master")) as s:
            s.put_bytes(f"/f{run:07d}", os.urandom(16))
        run_until_idle(ctl)
        times.append(time.perf_counter() - t0)
        job = pps.list_jobs("p")[0]
        assert job.processed == 1 and job.skipped == args.files - 1, job
    report("one_changed_file_job", {
        "files": args.files, "first_job_seconds": first,
        "changed_job_seconds": summarize(times), "goal_seconds": 2.0,
        "note": "commit of the change + planning + skip + one datum, in-process",
    })


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--datums", type=int, default=10_000)
    i = sub.add_parser("incremental")
    i.add_argument("--files", type=int, default=100_000)
    i.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    overhead(args) if args.what == "overhead" else incremental(args)
    _ = json


if __name__ == "__main__":
    main()
