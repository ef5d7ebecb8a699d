"""The sandbox runner: user code under bubblewrap, seeing Pachyderm's ``/pfs`` for real.

The sandbox root is a fresh tmpfs. Every top-level host directory except the kernel and
scratch ones (/proc, /dev, /sys, /tmp, /run) is bound read-only, so interpreters and libraries
anywhere on the host work unchanged. ``/pfs/<input>`` are read-only binds of the datum's
inputs, ``/pfs/out`` is the only writable host path, and ``/tmp`` is private. The process gets
its own PID, IPC and UTS namespaces and dies with its parent. The network is shared, as a
Pachyderm worker pod has one.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from tusk.runners.base import Invocation, Outcome, Workspace, which
from tusk.runners.process import run_logged

_SKIP = {"proc", "dev", "sys", "tmp", "run", "pfs", "lost+found", "mnt", "media"}


@functools.cache
def bwrap_usable() -> bool:
    """bwrap is installed and can create namespaces here (it cannot in some containers)."""
    exe = which("bwrap")
    if exe is None:
        return False
    try:
        r = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-pid", "true"],
                           capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@functools.cache
def _root_binds() -> tuple[str, ...]:
    args: list[str] = []
    for name in sorted(os.listdir("/")):
        if name in _SKIP:
            continue
        path = "/" + name
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return tuple(args)


@functools.cache
def _interpreter_binds() -> tuple[str, ...]:
    """Read-only binds for this Python's installation and import path when they live under a
    directory the sandbox replaces (a venv or an editable checkout in /tmp, say): user code
    that calls ``tusk`` or this interpreter (datum batching, spouts) must find them inside."""
    import sys

    import tusk

    wanted = [sys.prefix, sys.exec_prefix, sys.base_prefix, str(Path(tusk.__file__).parent.parent),
              *sys.path]
    paths: list[str] = []
    for entry in wanted:
        path = os.path.realpath(entry) if entry else ""
        if not path.startswith("/") or not os.path.isdir(path):
            continue
        if path.split("/")[1] not in _SKIP or path.split("/")[1] in ("proc", "dev", "sys"):
            continue  # already visible through the top-level binds
        paths.append(path)
    args: list[str] = []
    for path in sorted(set(paths)):
        if any(path.startswith(other + "/") for other in paths):
            continue  # inside a directory bound already
        args += ["--ro-bind", path, path]
    return tuple(args)


class SandboxRunner:
    name = "sandbox"

    def __init__(self) -> None:
        self.bwrap = which("bwrap") or "bwrap"

    def command(self, ws: Workspace, inv: Invocation) -> list[str]:
        args = [self.bwrap, *_root_binds(), "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                *_interpreter_binds(), "--dir", "/pfs"]
        for name in inv.inputs:
            src = ws.pfs / name
            if src.exists():
                args += ["--ro-bind", str(src), f"/pfs/{name}"]
        args += ["--bind", str(ws.out), "/pfs/out"]
        for inside, host in inv.binds.items():
            args += ["--ro-bind", host, inside]
        args += ["--unshare-user-try", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                 "--unshare-cgroup-try", "--die-with-parent", "--new-session",
                 "--chdir", inv.working_dir or "/pfs"]
        return [*args, "--", *inv.cmd]

    def run(self, ws: Workspace, inv: Invocation, log: Path) -> Outcome:
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": "/tmp",
               "LANG": os.environ.get("LANG", "C.UTF-8"), "TMPDIR": "/tmp", **inv.env}
        stdin = "".join(line + "\n" for line in inv.stdin)
        # On timeout or cancel run_logged kills bwrap's process group; the sandboxed process
        # then dies with it (--die-with-parent), and with it the whole PID namespace.
        outcome = run_logged(self.command(ws, inv), stdin, env, str(ws.root), inv, log)
        return outcome
