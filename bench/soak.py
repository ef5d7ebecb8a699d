"""Soak the crash fault suite by hand: hundreds of kill -9 trials instead of CI's few.

Run: .venv/bin/python bench/soak.py [--trials N] [--rounds R] [--seed S] [-k EXPR]

Each round runs ``tests/fault`` (the crash tests; ``-k`` narrows them) with
``TUSK_FAULT_TRIALS=N`` and its own seed, so every round kills at different moments. Every
checked trial is logged (``TUSK_FAULT_LOG``); at the end the soak prints, per test, how many
trials were checked and how many of them really killed the command, and the seed of any
failing round, which replays it: ``TUSK_FAULT_SEED=S TUSK_FAULT_TRIALS=N pytest tests/fault``.
Record the numbers in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=25, help="kill points per test per round")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("-k", dest="expr", default="crash or killed",
                    help="pytest -k expression (default: the crash tests)")
    ap.add_argument("-n", dest="workers", default="2", help="pytest-xdist workers")
    args = ap.parse_args()

    log = Path(tempfile.mkdtemp(prefix="tusk-soak-")) / "trials.jsonl"
    failed_seeds: list[int] = []
    t0 = time.monotonic()
    for r in range(args.rounds):
        seed = args.seed + r
        env = dict(os.environ, TUSK_FAULT_TRIALS=str(args.trials), TUSK_FAULT_SEED=str(seed),
                   TUSK_FAULT_LOG=str(log))
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", args.workers,
               "-k", args.expr, str(ROOT / "tests" / "fault")]
        print(f"round {r + 1}/{args.rounds}: seed {seed}", flush=True)
        if subprocess.run(cmd, env=env, cwd=ROOT, check=False).returncode != 0:
            failed_seeds.append(seed)

    checked: collections.Counter[str] = collections.Counter()
    killed: collections.Counter[str] = collections.Counter()
    if log.exists():
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            name = rec["test"].split("::")[-1]
            checked[name] += 1
            killed[name] += bool(rec["killed"])
    print(f"\n{'test':<60} {'checked':>8} {'killed':>7}")
    for name in sorted(checked):
        print(f"{name:<60} {checked[name]:>8} {killed[name]:>7}")
    print(f"{'total':<60} {sum(checked.values()):>8} {sum(killed.values()):>7}")
    print(f"{args.rounds} round(s) in {time.monotonic() - t0:.0f}s; failing seeds: {failed_seeds or 'none'}")
    print(f"trial log: {log}")
    return 1 if failed_seeds else 0


if __name__ == "__main__":
    raise SystemExit(main())
