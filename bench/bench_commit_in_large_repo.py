"""A commit that changes 1 file in a repo of 1,000,000 files.

Run: .venv/bin/python bench/bench_commit_in_large_repo.py [--files 1000000] [--runs 10]
Goal: <= 50 ms for the commit (in-process API). The CLI number adds interpreter start-up.
Also reports how many bytes of tree nodes the commit wrote (should be one range + the root).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import fresh_dir, report, summarize
from sqlalchemy import func, select

from tusk.pfs.refs import parse_commit, parse_repo
from tusk.pfs.service import PfsService
from tusk.storage import schema


def node_bytes(svc: PfsService) -> int:
    with svc.b.db.read() as conn:
        return conn.execute(select(func.coalesce(func.sum(func.length(schema.tree_nodes.c.data)), 0))).scalar()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    root = fresh_dir("bigrepo")
    svc = PfsService.open(root)
    svc.create_repo(parse_repo("data"))
    t0 = time.perf_counter()
    with svc.modify(parse_commit("data@master")) as s:
        for i in range(args.files):
            s.put_bytes(f"/d{i // 1000:04d}/f{i % 1000:04d}.txt", b"%d\n" % i)
    build = time.perf_counter() - t0
    times, written = [], []
    for run in range(args.runs):
        before = node_bytes(svc)
        t0 = time.perf_counter()
        with svc.modify(parse_commit("data@master")) as s:
            s.put_bytes(f"/d{(run * 37) % 1000:04d}/f{run:04d}.txt", os.urandom(64))
        times.append(time.perf_counter() - t0)
        written.append(node_bytes(svc) - before)
    info = svc.inspect_commit(parse_commit("data@master"))
    assert info.file_count == args.files
    svc.close()
    tusk = str(Path(sys.executable).parent / "tusk")
    env = {**os.environ, "TUSK_ROOT": str(root)}
    payload = root / "one.txt"
    payload.write_bytes(b"changed\n")
    cli = []
    for run in range(max(3, args.runs // 2)):
        t0 = time.perf_counter()
        subprocess.run([tusk, "put", "file", f"data@master:/d0001/f{run:04d}.txt", "-f", str(payload)],
                       env=env, check=True)
        cli.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    subprocess.run([tusk, "--version"], env=env, check=True, capture_output=True)
    startup = time.perf_counter() - t0
    report("commit_1_change_in_1m_files", {
        "files": args.files,
        "build_seconds": build,
        "commit_api_ms": summarize([t * 1000 for t in times]),
        "commit_cli_ms": summarize([t * 1000 for t in cli]),
        "cli_bare_startup_ms": startup * 1000,
        "tree_bytes_written_per_commit": statistics.median(written),
        "goal_ms": 50,
    })


if __name__ == "__main__":
    main()
