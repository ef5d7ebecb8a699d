"""Stream one large file up to and down from a real `tusk serve`, and report peak memory.

Run: .venv/bin/python bench/bench_serve_stream.py [--gib 5]
Goal (issue 5): a 5 GiB file goes through without the server or the client holding it in
memory: both peak RSS stay under a few hundred MB. The data is generated as it is sent (no
source file on disk), hashed on the way up and again on the way down, so the bytes are checked.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

import blake3

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "e2e"))
from common import cleanup, cli_env, fresh_dir, report
from server_helpers import free_port, vm_hwm_kb, wait_until_up

import tusk

PIECE = 1 << 20


class Generated:
    """A readable stream of ``size`` pseudo-random bytes (seeded: no dedup, reproducible)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.rng = random.Random(7)
        self.hash = blake3.blake3()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.rng.randbytes(n)
        self.left -= n
        self.hash.update(data)
        return data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=5.0)
    args = ap.parse_args()
    size = int(args.gib * (1 << 30))
    work = fresh_dir("serve-stream")
    root = work / "root"
    port, token = free_port(), secrets.token_hex(8)
    url = f"http://127.0.0.1:{port}"
    log = work / "serve.log"
    env = cli_env(root)
    with open(log, "wb") as out:
        server = subprocess.Popen([str(Path(sys.executable).parent / "tusk"), "serve", "--address",
                                   f"127.0.0.1:{port}", "--auth-token", token],
                                  stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_up(url, server, log)
        client = tusk.Client(url, auth_token=token)
        client.pfs.create_repo("big")
        src = Generated(size)
        t0 = time.perf_counter()
        client.pfs.put_file("big@master:/big.bin", src)
        up = time.perf_counter() - t0
        down_hash = blake3.blake3()
        t0 = time.perf_counter()
        got = 0
        for piece in client.pfs.read_file("big@master:/big.bin"):
            down_hash.update(piece)
            got += len(piece)
        down = time.perf_counter() - t0
        assert got == size and down_hash.digest() == src.hash.digest(), "bytes differ"
        server_peak = vm_hwm_kb(server.pid) / 1024
        client_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        report("serve_stream", {
            "size_gib": args.gib,
            "upload_MBps": round(size / up / 1e6),
            "download_MBps": round(size / down / 1e6),
            "server_peak_rss_MB": round(server_peak),
            "client_peak_rss_MB": round(client_peak),
            "cpus": os.cpu_count(),
        })
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        cleanup(work)


if __name__ == "__main__":
    main()
