"""Host programs shown inside an image's view, relocated under ``/.tusk`` so that nothing of
the image is shadowed: ``setpriv`` (to drop root), tusk's datum-batching client, and for a
spout the whole ``tusk`` command (a spout writes into its repo with ``tusk put file``).

Each is started through the host's own loader with ``--library-path`` pointing at the host
libraries it links (``ldd``), all bound read-only under ``/.tusk/host/lib``: it needs nothing of
the image's libraries, and what it executes (the user's command) runs on the image's own.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tusk.workers.user_env import own_temp_dir

HOST = "/.tusk/host"
LIB = f"{HOST}/lib"
PY = "/.tusk/py"  # the host interpreter's installation, for the batching client
PKG = "/.tusk/lib"  # holds the ``tusk`` package (its batching module is standard library only)
BIN = "/.tusk/bin"  # holds the ``tusk`` client script
SITE = "/.tusk/site"  # tusk's installed dependencies, for the whole command (spouts)
ROOT = "/.tusk/root"  # where a spout sees the tusk root it writes into

Binds = tuple[tuple[str, str], ...]  # (host path, path in the view)


def _ldd(path: str) -> list[str]:
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        words = line.split()
        p = words[2] if "=>" in words and len(words) > 2 else (words[0] if words else "")
        if p.startswith("/"):
            found.append(p)
    return found


def _libraries(paths: list[str]) -> tuple[Binds, str | None]:
    """Binds for the libraries ``paths`` link, and the loader's path in the view."""
    binds: dict[str, str] = {}
    loader = None
    for p in paths:
        for lib in _ldd(p):
            name = os.path.basename(lib)
            binds.setdefault(f"{LIB}/{name}", os.path.realpath(lib))
            if name.startswith(("ld-linux", "ld64")):
                loader = f"{LIB}/{name}"
    return tuple((host, inside) for inside, host in binds.items()), loader


@functools.cache
def setpriv() -> tuple[Binds, list[str]] | None:
    """(binds, argv prefix) that run the host's ``setpriv`` in the view; None without one."""
    exe = shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if exe is None:
        return None
    libs, loader = _libraries([exe])
    if loader is None:
        return None
    return ((os.path.realpath(exe), f"{HOST}/setpriv"), *libs), \
        [loader, "--library-path", LIB, f"{HOST}/setpriv"]


@functools.cache
def batching_client() -> Binds | None:
    """Binds that give the view ``tusk next datum`` (and ``import tusk`` for Python code): the
    host interpreter's installation, the ``tusk`` package and a client script. None where the
    interpreter cannot be relocated (it is not inside its own installation)."""
    return _python_tool("-m tusk.batching", full=False)


@functools.cache
def tusk_command() -> Binds | None:
    """Binds that give the view the whole ``tusk`` command, with tusk's dependencies."""
    return _python_tool("-c 'from tusk.cli.main import main; main()'", full=True)


def _python_tool(run: str, full: bool) -> Binds | None:
    import tusk

    base = os.path.realpath(sys.base_prefix)
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    if not exe.startswith(base + "/"):
        return None
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    dynload = Path(base) / "lib" / version / "lib-dynload"
    modules = [str(p) for p in dynload.glob("*.so")] if dynload.is_dir() else []
    sites: list[str] = []
    if full:  # tusk's own dependencies: the site directories it was imported with
        sites = [p for p in dict.fromkeys(os.path.realpath(x) for x in sys.path)
                 if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]
        modules += [str(so) for site in sites for so in Path(site).rglob("*.so*") if so.is_file()]
    libs, loader = _libraries([exe, *modules])
    if loader is None:
        return None
    inside_exe = PY + exe[len(base):]
    path = ":".join([PKG, *(f"{SITE}{i}" for i in range(len(sites)))])
    script = (f"#!/bin/sh\n# tusk, shown in an image by the tusk that runs it\n"
              f"export PYTHONHOME={PY} PYTHONPATH={path}\n"
              f'exec {loader} --library-path {LIB}:{PY}/lib {inside_exe} {run} "$@"\n')
    shim = _shim_dir(script)
    return ((base, PY), (str(Path(tusk.__file__).resolve().parent), f"{PKG}/tusk"),
            (str(shim), BIN), *((site, f"{SITE}{i}") for i, site in enumerate(sites)), *libs)


def _shim_dir(script: str) -> Path:
    """A directory holding only the ``tusk`` client script (one per user and script text)."""
    shim = own_temp_dir("tusk-image-shim", script)
    target = shim / "tusk"
    if not target.exists() or target.read_text() != script:
        tmp = shim / f".tusk.{os.getpid()}"
        tmp.write_text(script)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    return shim
