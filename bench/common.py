"""Shared helpers for the benchmarks: fresh roots, timing, dropping caches, reporting."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

BENCH_DIR = Path(os.environ.get("TUSK_BENCH_DIR", "/tmp/tusk-bench"))


def fresh_dir(name: str) -> Path:
    """A new directory (never reuse deleted areas: inode allocation slows after mass deletes)."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=BENCH_DIR))


def cli_env(root: Path) -> dict[str, str]:
    """The environment for timed ``tusk`` CLI runs against ``root``.

    Bytecode is cached (in a prefix under BENCH_DIR, not in the source tree) even where the
    caller's environment says PYTHONDONTWRITEBYTECODE: otherwise every CLI start compiles all
    of tusk again (~0.7 s here), which an installed tusk never does.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TUSK_ROOT"] = str(root)
    env["PYTHONPYCACHEPREFIX"] = str(BENCH_DIR / "pycache")
    return env


def drop_caches() -> None:
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass


@contextmanager
def timer() -> object:
    t = {"start": time.perf_counter()}
    yield t
    t["seconds"] = time.perf_counter() - t["start"]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def report(name: str, result: dict) -> None:
    # The load average says how noisy the run was: other work shares this machine's 2 vCPUs.
    result = {**result, "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps({"bench": name, **result}, indent=2))
    out = BENCH_DIR / "results.jsonl"
    with open(out, "a") as f:
        f.write(json.dumps({"bench": name, "at": time.time(), **result}) + "\n")


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
