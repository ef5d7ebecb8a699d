"""Make a Python image's root file system from this machine's own interpreter: no download.

    python3 scripts/python_rootfs.py DEST [--python /usr/bin/python3] [--pip pillow==13.0.0 ...]

DEST gets the interpreter, its standard library (without its test suites and GUI modules),
the shared libraries they and the pip-installed packages link (as ``ldd`` finds them, at the
same paths), and the packages themselves in the interpreter's site directory. ``FROM scratch``
plus ``COPY rootfs/ /`` then makes an image whose ``python3`` runs, which is how the demo
builds the opencv pipelines' image without pulling a base image from a registry.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SKIP = {"test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__phello__"}


def probe(python: str) -> dict:
    code = ("import json, site, sys, sysconfig; print(json.dumps({'exe': sys.executable,"
            " 'stdlib': sysconfig.get_paths()['stdlib'], 'platstdlib': sysconfig.get_paths()['platstdlib'],"
            " 'site': site.getsitepackages()[0], 'version': '%d.%d' % sys.version_info[:2]}))")
    return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                     check=True).stdout)


def libs_of(path: Path) -> set[str]:
    r = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
    found = set()
    for line in r.stdout.splitlines():
        words = line.split()
        p = words[2] if "=>" in words and len(words) > 2 else (words[0] if words else "")
        if p.startswith("/"):
            found.add(p)
    return found


def copy_file(src: str, dest_root: Path) -> None:
    target = dest_root / src.lstrip("/")
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(src), target)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dest", type=Path)
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--pip", nargs="*", default=[], help="requirements to install into it")
    args = ap.parse_args()
    info = probe(args.python)
    dest: Path = args.dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    exe = os.path.realpath(info["exe"])
    copy_file(exe, dest)
    bindir = dest / "usr" / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    if not (bindir / "python3").exists():
        os.symlink(exe, bindir / "python3")
    stdlib = Path(info["stdlib"])
    shutil.copytree(stdlib, dest / str(stdlib).lstrip("/"), symlinks=True,
                    ignore=lambda d, names: [n for n in names if n in SKIP or n == "site-packages"
                                             or n == "dist-packages"])
    site_dir = dest / info["site"].lstrip("/")
    site_dir.mkdir(parents=True, exist_ok=True)
    if args.pip:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--no-compile", "--target", str(site_dir), "--python-version", info["version"],
                        "--only-binary=:all:", *args.pip], check=True)
    needed = libs_of(Path(exe))
    for so in dest.rglob("*.so*"):
        if so.is_file() and not so.is_symlink():
            needed |= libs_of(so)
    for lib in sorted(needed):
        if not lib.startswith(str(dest)):
            copy_file(lib, dest)
    etc = dest / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    print(f"{dest}: python {info['version']} with {', '.join(args.pip) or 'no packages'}"
          f" ({sum(f.stat().st_size for f in dest.rglob('*') if f.is_file()) >> 20} MiB)")


if __name__ == "__main__":
    main()
