"""Put and get one 1 GiB file; `cp` and `dd` of the same file in the same run are references.

Run: .venv/bin/python bench/bench_large_file.py [--mib 1024] [--runs 3]
Goals: put >= 0.5 GB/s, get >= 1 GB/s. Also reports how much a re-put of identical data adds
to the store (goal < 1%). Caches are dropped before each timed step when running as root.

References: `cp` + `sync`, and `dd bs=4M conv=fdatasync` (a copy made durable, which is what a
put must do before it commits). A third, the *ceiling*, writes the same number of bytes from
memory and fdatasyncs them: no source to read, no CPU work. No durable put of a cold source can
beat it on this disk, so it says whether a miss is tusk's or the disk's. Each round's put is
also reported as a ratio to that round's `cp`, which pairs two measurements taken seconds
apart and so cancels most of the disk's minute-to-minute drift.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import cli_env, drop_caches, fresh_dir, report, summarize

from tusk.pfs.refs import parse_commit, parse_file, parse_repo
from tusk.pfs.service import PfsService


def store_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in (root / "objects" / "packs").rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    size = args.mib << 20
    work = fresh_dir("large")
    src = work / "big.bin"
    with open(src, "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(args.mib))
    # A second file of fresh bytes for the CLI put, so it measures storing data, not dedup.
    src2 = work / "big2.bin"
    with open(src2, "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(args.mib))
    tusk = str(Path(sys.executable).parent / "tusk")
    puts, cli_puts, gets, cli_gets, cps, dds, ceilings, growth = [], [], [], [], [], [], [], []
    block = os.urandom(64 << 20)
    for run in range(args.runs):
        drop_caches()
        dst = work / f"ceiling{run}.bin"
        t0 = time.perf_counter()
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for _ in range(size // len(block)):
            os.write(fd, block)
        os.write(fd, block[: size % len(block)])
        os.fdatasync(fd)
        os.close(fd)
        ceilings.append(size / (time.perf_counter() - t0))
        dst.unlink()

        drop_caches()
        t0 = time.perf_counter()
        subprocess.run(["cp", str(src), str(work / f"copy{run}.bin")], check=True)
        subprocess.run(["sync"], check=True)
        cps.append(size / (time.perf_counter() - t0))
        (work / f"copy{run}.bin").unlink()

        drop_caches()
        dst = work / f"dd{run}.bin"
        t0 = time.perf_counter()
        subprocess.run(["dd", f"if={src}", f"of={dst}", "bs=4M", "conv=fdatasync"], check=True,
                       capture_output=True)
        dds.append(size / (time.perf_counter() - t0))
        dst.unlink()

        root = fresh_dir("large-root")
        svc = PfsService.open(root)
        svc.create_repo(parse_repo("data"))
        drop_caches()
        t0 = time.perf_counter()
        with svc.modify(parse_commit("data@master")) as s:
            s.put_path("/big.bin", src)
        puts.append(size / (time.perf_counter() - t0))

        before = store_bytes(root)
        with svc.modify(parse_commit("data@master")) as s:
            s.put_path("/again.bin", src)
        growth.append((store_bytes(root) - before) / before)

        out = work / "out.bin"
        drop_caches()
        t0 = time.perf_counter()
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        info = svc.inspect_file(parse_file("data@master:/big.bin"))
        svc.b.reader().copy_to_fd(info.chunks, fd)
        os.close(fd)
        gets.append(size / (time.perf_counter() - t0))
        assert out.stat().st_size == size
        out.unlink()
        svc.close()

        env = cli_env(root)
        drop_caches()
        # Warm the interpreter's imports so the CLI numbers measure data movement, not a cold
        # start reading a few hundred .pyc files after the cache drop.
        subprocess.run([tusk, "list", "repo"], env=env, check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run([tusk, "put", "file", "data@master:/cli.bin", "-f", str(src2)], env=env, check=True)
        cli_puts.append(size / (time.perf_counter() - t0))
        drop_caches()
        subprocess.run([tusk, "list", "repo"], env=env, check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run([tusk, "get", "file", "data@master:/big.bin", "-o", str(out)], env=env, check=True)
        cli_gets.append(size / (time.perf_counter() - t0))
        out.unlink()
    mb = lambda xs: summarize([x / 1e6 for x in xs])
    report("large_file_1gib", {
        "bytes": size,
        "cp_plus_sync_MBps": mb(cps),
        "dd_fdatasync_MBps": mb(dds),
        "ceiling_write_from_memory_MBps": mb(ceilings),
        "tusk_put_api_MBps": mb(puts),
        "tusk_put_api_vs_cp_same_round": summarize([p / c for p, c in zip(puts, cps, strict=True)]),
        "tusk_put_cli_MBps": mb(cli_puts),
        "tusk_get_api_MBps": mb(gets),
        "tusk_get_cli_MBps": mb(cli_gets),
        "reput_identical_store_growth_fraction": summarize(growth),
        "goals": {"put_MBps": 500, "get_MBps": 1000, "reput_growth": 0.01},
    })


if __name__ == "__main__":
    main()
