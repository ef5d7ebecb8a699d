"""The process runtime: user code as a plain subprocess, with no isolation.

Used where bubblewrap is missing (macOS, minimal containers), when a pipeline asks for it
(``"tusk": {"runtime": "process"}``) or when ``TUSK_RUNNER=process``. On Linux, where ``unshare``
may make a private mount namespace (as root, or with user namespaces and an existing ``/pfs``
directory), the datum's workspace is mounted at a real ``/pfs``. Elsewhere every ``/pfs`` prefix
in the command, stdin and environment is rewritten to the workspace; code that builds ``/pfs``
paths at run time from other strings will not see them there, which is the documented limit of
this runtime. Its code sees the whole host, so inputs are copies (never links into the cache),
and it can write into the tusk root, which spouts need.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO

from tusk.pps.logs import DatumLog
from tusk.workers.base import Capabilities, Invocation, Outcome, Workspace
from tusk.workers.limits import Confinement, limits_for
from tusk.workers.mount_ns import shows
from tusk.workers.running import run_logged, start_gated
from tusk.workers.user_env import session_env, tusk_shim, user_path

# "/pfs" as a whole path component at the start of a path ("/pfs", "/pfs/x", "'/pfs/x'"), not
# "/data/pfs" or "/pfsx". One pass, so the replacement (which itself ends in "/pfs") is never
# rewritten again.
_PFS = re.compile(r"(?<![\w.~/-])/pfs(?![\w.~-])")


def _rewrite(text: str, pfs: str) -> str:
    return _PFS.sub(lambda _m: pfs, text) if "/pfs" in text else text


@functools.cache
def _private_pfs() -> list[str] | None:
    """A command prefix that shows the workspace at a real ``/pfs`` in a private mount
    namespace, or None where this system cannot (no ``unshare``, no ``/pfs`` mount point and
    no right to make one, no permission for mount namespaces).

    The prefix runs ``unshare`` and a shell that bind-mounts its first argument on ``/pfs``:
    code that builds ``/pfs/out/...`` paths itself, which no rewriting can reach, then works.
    """
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return None
    if not os.path.isdir("/pfs"):
        try:
            os.mkdir("/pfs", 0o755)  # an empty mount point, made once (as root)
        except OSError:
            return None
    ns = ["--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        ns = ["--user", "--map-current-user", *ns]
    prefix = [unshare, *ns, "--", "/bin/sh", "-c", 'mount --bind "$0" /pfs && exec "$@"']
    try:
        probe = subprocess.run([*prefix, "/", "true"], capture_output=True, timeout=10,
                               check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return prefix if probe.returncode == 0 else None


class ProcessRuntime:
    """No isolation: the user's code runs as tusk's user, with the user's environment.

    Where a private mount namespace is possible, ``/pfs`` is real (``_private_pfs``); elsewhere
    ``/pfs`` in the command, stdin and environment is rewritten to the workspace. Either way
    the limits of ``tusk.workers.limits`` apply from just after the process starts.
    ``private_pfs=False`` never makes the namespace (always rewrites).
    """

    name = "process"

    def __init__(self, private_pfs: bool | None = None) -> None:
        self._private = private_pfs

    def _prefix(self) -> list[str] | None:
        return None if self._private is False else _private_pfs()

    @property
    def capabilities(self) -> Capabilities:
        # A process can leave its process group (setsid) and outlive a stop: no kills_tree.
        return Capabilities(links_inputs=False, real_pfs=self._prefix() is not None,
                            kills_tree=False, honours_image=False, isolated=False,
                            reaches_root=True)

    def in_view(self, ws: Workspace, text: str) -> str:
        return text if self._prefix() is not None else _rewrite(text, str(ws.pfs))

    def _view(self, ws: Workspace, inv: Invocation,
              ) -> tuple[list[str], list[str], dict[str, str], str, str]:
        """The command, stdin lines, environment and working directory that show ``inv`` its
        ``/pfs``, and why the command cannot run ("" if it can)."""
        ws.tmp.mkdir(parents=True, exist_ok=True)
        ws.out.mkdir(parents=True, exist_ok=True)
        prefix = self._prefix()
        pfs = "/pfs" if prefix is not None else str(ws.pfs)
        cmd = [_rewrite(c, pfs) for c in inv.cmd]
        stdin = [_rewrite(line, pfs) for line in inv.stdin]
        env = {"HOME": os.environ.get("HOME", str(ws.tmp)), **session_env(),
               "PATH": user_path(tusk_shim()),
               **{k: _rewrite(v, pfs) for k, v in inv.env.items()}, "TMPDIR": str(ws.tmp)}
        cwd = _rewrite(inv.working_dir, pfs) if inv.working_dir else pfs
        if prefix is None:
            return cmd, stdin, env, cwd, ""
        missing = _missing(cmd[0], env["PATH"], _rewrite(cwd, str(ws.pfs)), str(ws.pfs))
        if shows(ws.pfs):
            # A worker that made /pfs its workspace for good (mount_ns): nothing to add.
            return cmd, stdin, env, cwd, missing
        # The shell of the prefix changes into the working directory after the mount.
        cmd = [*prefix[:-1], 'mount --bind "$0" /pfs && cd "$1" && shift && exec "$@"',
               str(ws.pfs), cwd, *cmd]
        return cmd, stdin, env, str(ws.root), missing

    def run(self, ws: Workspace, inv: Invocation, log: Path) -> Outcome:
        cmd, stdin, env, cwd, missing = self._view(ws, inv)
        if inv.secret_files and not missing:
            missing = (f"transform.secrets mount_path {next(iter(inv.secret_files))}: the process"
                       " runtime has no file system of its own to show secrets in; use env_var,"
                       " or the sandbox or image runtime")
        if missing:
            sink = inv.log_sink if inv.log_sink is not None else DatumLog(log, inv.attempt)
            sink.note(missing)
            if inv.log_sink is None:
                sink.close()
            return Outcome(returncode=127, error=missing)
        confine = Confinement(inv.limits or limits_for(None),
                              {str(ws.out): "/pfs/out", str(ws.tmp): "/tmp"})
        return run_logged(cmd, "".join(line + "\n" for line in stdin), env, cwd, inv, log,
                          confine=confine, on_start=lambda proc: confine.attach(proc.pid))

    def start(self, ws: Workspace, inv: Invocation, out: IO[bytes], hold: int,
              ) -> subprocess.Popen[bytes]:
        # A command that cannot run says so in ``out`` (exit code 127), as a datum's would.
        cmd, stdin, env, cwd, _missing_why = self._view(ws, inv)
        return start_gated(cmd, env, cwd, ws, stdin, out, hold)


ProcessRunner = ProcessRuntime  # the name before runtimes declared capabilities


def _missing(exe: str, path: str, cwd: str, pfs: str) -> str:
    """Why ``exe`` cannot be run, said as when it is started directly; "" if it can."""
    if "/" in exe:
        host = _rewrite(exe, pfs) if exe.startswith("/pfs") else exe
        if os.access(os.path.join(cwd, host), os.X_OK):
            return ""
        why = "Permission denied" if os.path.exists(os.path.join(cwd, host)) \
            else "No such file or directory"
        return f"cannot run {exe!r}: {why}"
    return "" if shutil.which(exe, path=path) else f"cannot run {exe!r}: No such file or directory"
