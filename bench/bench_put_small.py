"""Put 100,000 files of 1 KiB in one commit; git add + commit of the same files as reference.

Run: .venv/bin/python bench/bench_put_small.py [--files N] [--runs R]
Goal: >= 50,000 files/s for tusk (git manages ~7,000/s on this machine).

Each round runs the API put, the CLI put and git once, one after the other, so a burst of load
from something else on the machine hits all three rather than one of them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import cli_env, fresh_dir, report, summarize

from tusk.pfs.refs import parse_commit, parse_repo
from tusk.pfs.service import PfsService
from tusk.pfs.sources import walk_local


def make_tree(n: int) -> Path:
    src = fresh_dir("small-src")
    per_dir = 1000
    for d in range(0, n, per_dir):
        dp = src / f"d{d // per_dir:03d}"
        dp.mkdir()
        for i in range(min(per_dir, n - d)):
            (dp / f"f{i:04d}").write_bytes(os.urandom(1024))
    return src


def run_tusk(src: Path, cli: bool) -> float:
    root = fresh_dir("small-root")
    env = cli_env(root)
    tusk = str(Path(sys.executable).parent / "tusk")
    if cli:
        # Also warms the bytecode cache and the imports the put needs.
        subprocess.run([tusk, "create", "repo", "data"], env=env, check=True)
        subprocess.run([tusk, "list", "repo"], env=env, check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run([tusk, "put", "file", "data@master:/", "-r", "-f", str(src)], env=env, check=True)
        return time.perf_counter() - t0
    svc = PfsService.open(root)
    svc.create_repo(parse_repo("data"))
    t0 = time.perf_counter()
    with svc.modify(parse_commit("data@master")) as s:
        s.put_many(walk_local(src, "/"), normalized=True)
    elapsed = time.perf_counter() - t0
    assert svc.inspect_commit(parse_commit("data@master")).file_count == count_files(src)
    svc.close()
    return elapsed


def count_files(src: Path) -> int:
    return sum(len(f) for _, _, f in os.walk(src))


def run_git(src: Path) -> float:
    repo = fresh_dir("small-git")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["cp", "-rl", f"{src}/.", str(repo)], check=True)
    t0 = time.perf_counter()
    # No automatic gc: after a commit of 100k loose objects git starts a detached repack, which
    # is not part of its timed add + commit but ran on into the next round's tusk puts.
    quiet = ["-c", "gc.auto=0", "-c", "maintenance.auto=false"]
    subprocess.run(["git", "-C", str(repo), *quiet, "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), *quiet, "-c", "user.name=b", "-c", "user.email=b@b",
                    "commit", "-qm", "bench"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-git", action="store_true")
    args = ap.parse_args()
    src = make_tree(args.files)
    api: list[float] = []
    cli: list[float] = []
    git: list[float] = []
    for _ in range(args.runs):
        api.append(run_tusk(src, cli=False))
        cli.append(run_tusk(src, cli=True))
        if not args.no_git:
            git.append(run_git(src))
    n = args.files
    result = {
        "files": n,
        "tusk_api_files_per_s": summarize([n / t for t in api]),
        "tusk_cli_files_per_s": summarize([n / t for t in cli]),
        "goal_files_per_s": 50_000,
    }
    if git:
        result["git_files_per_s"] = summarize([n / t for t in git])
    report("put_100k_small_files", result)


if __name__ == "__main__":
    main()
