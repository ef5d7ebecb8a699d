"""A pipeline in its image against the same pipeline in the host sandbox, in one run.

Run: .venv/bin/python bench/bench_images.py [--datums 2000] [--parallelism 2] [--containers 20]

Each datum is one one-file input and ``sh -c 'cp $in /pfs/out/'``. The image is built on this
machine with its engine (FROM scratch with Debian's static busybox: no download). Measured in
one run: the job in the host sandbox (no ``transform.image``), the same job naming the image
(the ``image`` runtime: the image's root under bubblewrap, no container per datum), and, for
scale, ``--containers`` bare ``docker run --rm`` of the same command (what a container per
datum would cost; Pachyderm keeps its worker containers up instead). Goal: image ≤ 2x sandbox.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_tasks import CMD, one_file_datums
from common import fresh_dir, report

from tusk.images import engines

IMAGE = "tusk-bench/busybox:1"


def build_image(cli: str) -> None:
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy("/usr/bin/busybox", Path(ctx) / "busybox")
        (Path(ctx) / "Dockerfile").write_text(
            "FROM scratch\nCOPY busybox /bin/busybox\n"
            'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n')
        subprocess.run([cli, "build", "-q", "-t", IMAGE, ctx], check=True, capture_output=True,
                       env={**os.environ, "DOCKER_BUILDKIT": "0"})


def job(n: int, parallelism: int, image: str) -> float:
    """Seconds from create pipeline to the sealed output of ``n`` datums."""
    root = fresh_dir("images")
    os.environ.pop("TUSK_RUNNER", None)
    transform = {"cmd": CMD, **({"image": image} if image else {})}
    pfs, ctl, pps, spec = one_file_datums(root, n, transform, parallelism)
    pps.create_pipeline(spec)
    if image:  # the image is unpacked once, when the first job starts: time that apart
        t0 = time.perf_counter()
        from tusk.images.store import ImageStore

        store = ImageStore(root)
        store.ensure(store.resolve(image))
        print(f"image unpacked in {time.perf_counter() - t0:.2f}s", file=sys.stderr)
    t0 = time.perf_counter()
    while ctl.step():
        pass
    wall = time.perf_counter() - t0
    done = pps.list_jobs("p")[0]
    assert done.state == "SUCCESS" and done.processed == n, done
    ctl.jobs.pool.close()
    pfs.close()
    return wall


def containers(cli: str, n: int) -> float:
    """Seconds per ``docker run --rm`` of the datum's command (a container per datum)."""
    d = Path(tempfile.mkdtemp())
    (d / "in").mkdir()
    (d / "out").mkdir()
    (d / "in" / "x").write_text("1\n")
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run([cli, "run", "--rm", "--network=none", "-v", f"{d}/in:/pfs/inp:ro",
                        "-v", f"{d}/out:/pfs/out", IMAGE, "sh", "-c", "cp /pfs/inp/x /pfs/out/"],
                       check=True, capture_output=True)
    shutil.rmtree(d, ignore_errors=True)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datums", type=int, default=2000)
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--containers", type=int, default=20)
    args = ap.parse_args()
    found = engines.engines()
    if not found:
        sys.exit("no container engine answers (start dockerd, or install podman)")
    build_image(found[0])
    n, par = args.datums, args.parallelism
    sandbox = job(n, par, "")
    image = job(n, par, IMAGE)
    per_container = containers(found[0], args.containers) if args.containers else 0.0
    report("image_runtime", {
        "datums": n, "parallelism": par, "command": CMD,
        "sandbox_seconds": round(sandbox, 2), "image_seconds": round(image, 2),
        "ratio": round(image / sandbox, 2), "goal_ratio": 2.0,
        "sandbox_ms_per_datum": round(sandbox / n * 1000, 2),
        "image_ms_per_datum": round(image / n * 1000, 2),
        "docker_run_ms_per_container": round(per_container * 1000, 1),
        "container_per_datum_estimate_seconds": round(per_container * n / par, 1),
    })


if __name__ == "__main__":
    main()
