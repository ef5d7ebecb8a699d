"""Helpers of the fault suite: processes, kill points and the checks every trial ends with.

A *trial* runs a real ``tusk`` command, SIGKILLs it at a random moment, and then checks what a
user relies on (``check_after_kill``): ``tusk fsck`` is clean, every acknowledged commit (its
command exited 0 before the kill) reads back byte for byte, and after ``tusk gc --grace 0``
nothing is left in scratch and no pack is unindexed.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

# Each crash test's number of kill points; bench/soak.py sets hundreds.
TRIALS = int(os.environ.get("TUSK_FAULT_TRIALS", "2"))
# A fixed seed per run, printed in failures, so a failing trial can be replayed.
SEED = int(os.environ.get("TUSK_FAULT_SEED", str(int(time.time()))))


def rng(name: str) -> random.Random:
    return random.Random(f"{SEED}:{name}")


# -- processes -------------------------------------------------------------------------------


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    parent_of: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        parent_of[int(d.name)] = int(fields[1])
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        kids = {p for p, pp in parent_of.items() if pp in frontier and p not in out}
        out |= kids
        frontier = kids
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"  # a zombie is dead


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait until none of ``pids`` runs; the survivors when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    left = {p for p in pids if alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if alive(p)}
    return left


def start(tusk: Any, *args: str) -> subprocess.Popen:
    return subprocess.Popen([tusk.exe, *map(str, args)], env=tusk.env, cwd=tusk.cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def kill_after(proc: subprocess.Popen, delay: float) -> bool:
    """SIGKILL ``proc`` after ``delay`` seconds unless it exits first; True if it exited 0
    by itself (its work is then acknowledged)."""
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return False
    finally:
        for pipe in (proc.stdout, proc.stderr):  # never wait on pipes a survivor may hold
            if pipe is not None:
                pipe.close()
    return proc.returncode == 0


# -- data ------------------------------------------------------------------------------------


def make_files(base: Path, n: int, size: int, seed: str) -> dict[str, str]:
    """``n`` files of about ``size`` bytes under ``base``; {relative path: sha256}."""
    r = random.Random(seed)
    out: dict[str, str] = {}
    for i in range(n):
        rel = f"d{i % 13}/f{i:05d}"
        data = r.randbytes(r.randint(size // 2, size * 3 // 2))
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        out[rel] = hashlib.sha256(data).hexdigest()
    return out


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_back(tusk: Any, ref: str, dest: Path) -> dict[str, str]:
    """``get file -r ref`` into ``dest``; {relative path: sha256}."""
    tusk.ok("get", "file", "-r", "-o", str(dest), ref, timeout=120)
    found = digests(dest) if dest.exists() else {}
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    return found


# -- the checks after a kill -------------------------------------------------------------------


def scratch_dir(tusk: Any) -> Path:
    return Path(tusk.root) / "objects" / "tmp"


def fsck_clean(tusk: Any, note: str = "") -> dict[str, Any]:
    r = tusk("fsck", "--raw", timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, \
        f"fsck found problems {note} (seed {SEED}): {r.stdout} {r.stderr}"
    import json

    return json.loads(r.stdout)


def unindexed_packs(tusk: Any) -> list[str]:
    """Pack files under objects/packs that no row of the chunk index's pack table names
    (read straight from the root's SQLite file, read-only: cheaper than another fsck)."""
    import sqlite3

    root = Path(tusk.root)
    con = sqlite3.connect(f"file:{root / 'meta.db'}?mode=ro", uri=True)
    try:
        known = {k for (k,) in con.execute("SELECT key FROM packs")}
    finally:
        con.close()
    packs = root / "objects"
    return [k for k in (p.relative_to(packs).as_posix() for p in (packs / "packs").rglob("*")
                        if p.is_file()) if k not in known]


def gc_leaves_nothing(tusk: Any, note: str = "") -> None:
    """``tusk gc --grace 0`` finishes in bounded time and leaves no scratch, no orphan pack."""
    t0 = time.monotonic()
    r = tusk("gc", "--grace", "0", "--timeout", "30", "--raw", timeout=90)
    assert r.returncode == 0, f"gc failed {note} (seed {SEED}): {r.stderr}"
    assert time.monotonic() - t0 < 60
    left = sorted(os.listdir(scratch_dir(tusk))) if scratch_dir(tusk).exists() else []
    assert left == [], f"scratch left after gc {note} (seed {SEED}): {left[:5]}"
    orphans = unindexed_packs(tusk)
    assert orphans == [], f"unindexed packs left after gc {note} (seed {SEED}): {orphans[:5]}"


def check_after_kill(tusk: Any, acked: dict[str, tuple[str, dict[str, str]]], work: Path,
                     note: str = "", killed: bool | None = None) -> None:
    """fsck clean; each acknowledged commit ``{commit id: (ref to read, {path: sha256})}``
    reads back exactly; gc then leaves nothing behind. ``killed`` (whether this trial's
    command was really killed, None for a final check) goes to ``TUSK_FAULT_LOG``."""
    fsck_clean(tusk, note)
    for cid, (ref, want) in acked.items():
        got = read_back(tusk, ref, work / f"check-{cid[:8]}")
        assert got == want, f"acknowledged commit {cid} reads back wrong {note} (seed {SEED})"
    gc_leaves_nothing(tusk, note)
    log_trial(killed, note)


def log_trial(killed: bool | None, note: str) -> None:
    """One JSON line per checked trial in ``TUSK_FAULT_LOG`` (bench/soak.py counts them)."""
    path = os.environ.get("TUSK_FAULT_LOG")
    if not path or killed is None:
        return
    import json

    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
    with open(path, "a") as f:
        f.write(json.dumps({"test": test, "killed": killed, "seed": SEED, "note": note}) + "\n")
