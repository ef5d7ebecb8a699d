"""The process runner: user code as a plain subprocess, with no isolation.

Used where bubblewrap is missing (macOS, minimal containers) or when ``TUSK_RUNNER=process``.
On Linux, where ``unshare`` may make a private mount namespace (as root, or with user
namespaces and an existing ``/pfs`` directory), the datum's workspace is mounted at a real
``/pfs``. Elsewhere every ``/pfs`` prefix in the command, stdin and environment is rewritten to
the workspace; code that builds ``/pfs`` paths at run time from other strings will not see them
there, which is the documented limit of this runner.

Also here: ``run_logged``, which every runner uses to run a command, log its output and stop
it on timeout, cancel or a crossed bound.
"""

from __future__ import annotations

import functools
import os
import re
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tusk.pps.logs import DatumLog
from tusk.workers.base import Invocation, Outcome, Workspace
from tusk.workers.limits import Confinement, limits_for
from tusk.workers.user_env import session_env, tusk_shim, user_path

_TICK = 0.1  # how often the waiting loop checks timeout, cancel and exit (cancel latency)
_CHUNK = 65536
_ORPHAN_GRACE = 0.5  # how long to keep reading pipes held open after the process exited

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


class ProcessRunner:
    """No isolation: the user's code runs as tusk's user, with the user's environment.

    Where a private mount namespace is possible, ``/pfs`` is real (``_private_pfs``); elsewhere
    ``/pfs`` in the command, stdin and environment is rewritten to the workspace. Either way
    the limits of ``tusk.workers.limits`` apply from just after the process starts.
    """

    name = "process"

    def run(self, ws: Workspace, inv: Invocation, log: Path) -> Outcome:
        ws.tmp.mkdir(parents=True, exist_ok=True)
        ws.out.mkdir(parents=True, exist_ok=True)
        prefix = _private_pfs()
        pfs = "/pfs" if prefix is not None else str(ws.pfs)
        cmd = [_rewrite(c, pfs) for c in inv.cmd]
        stdin = "".join(_rewrite(line, pfs) + "\n" for line in inv.stdin)
        env = {"HOME": os.environ.get("HOME", str(ws.tmp)), **session_env(),
               "PATH": user_path(tusk_shim()),
               **{k: _rewrite(v, pfs) for k, v in inv.env.items()}, "TMPDIR": str(ws.tmp)}
        cwd = _rewrite(inv.working_dir, pfs) if inv.working_dir else pfs
        if prefix is not None:
            missing = _missing(cmd[0], env["PATH"], _rewrite(cwd, str(ws.pfs)), str(ws.pfs))
            if missing:
                sink = inv.log_sink if inv.log_sink is not None else DatumLog(log, inv.attempt)
                sink.note(missing)
                if inv.log_sink is None:
                    sink.close()
                return Outcome(returncode=127, error=missing)
            # The shell of the prefix changes into the working directory after the mount.
            cmd = [*prefix[:-1], 'mount --bind "$0" /pfs && cd "$1" && shift && exec "$@"',
                   str(ws.pfs), cwd, *cmd]
            cwd = str(ws.root)
        confine = Confinement(inv.limits or limits_for(None),
                              {str(ws.out): "/pfs/out", str(ws.tmp): "/tmp"})
        return run_logged(cmd, stdin, env, cwd, inv, log, confine=confine,
                          on_start=lambda proc: confine.attach(proc.pid))


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


def run_logged(
    cmd: list[str], stdin: str, env: dict[str, str], cwd: str, inv: Invocation, log: Path,
    *, confine: Confinement | None = None, on_start: Callable[[Any], None] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> Outcome:
    """Run a command, recording its stdout and stderr line by line in the datum log ``log``.

    Its process group is killed when ``inv.timeout`` passes, ``inv.cancel`` is set or
    ``confine`` finds a bound crossed. Both pipes and stdin are served by this thread (a
    selector), so a datum costs no extra thread or process, and the process's exit is noticed
    within one tick. ``on_start`` runs once the process exists (the sandbox opens its gate
    there); ``pass_fds`` are kept open in the child for it.
    """
    out = inv.log_sink if inv.log_sink is not None else DatumLog(log, inv.attempt)
    try:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env, cwd=cwd,
                start_new_session=True, pass_fds=pass_fds,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
            msg = f"cannot run {cmd[0]!r}: {e.strerror or e}"
            out.note(msg)
            return Outcome(returncode=127, error=msg)
        try:
            if on_start is not None:
                on_start(proc)
            outcome = _pump(proc, stdin.encode(), out, inv, confine)
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        outcome.stderr_tail = list(out.stderr_tail)
        if confine is not None and not outcome.limit and not outcome.cancelled \
                and not outcome.timed_out:
            # Measured once more at the end: a datum that filled /tmp between two checks and
            # exited 0 still broke its bound.
            outcome.limit = confine.check(final=True) or (
                confine.verdict(outcome.returncode, outcome.stderr_tail)
                if outcome.returncode != 0 else "")
        if outcome.limit:
            out.note(f"datum stopped: {outcome.limit}")
        return outcome
    finally:
        out.close()
        if confine is not None:
            confine.close()


def _pump(proc: subprocess.Popen, data: bytes, out: DatumLog,  # type: ignore[type-arg]
          inv: Invocation, confine: Confinement | None = None) -> Outcome:
    """Feed stdin and log output until the process is done, timed out or cancelled."""
    sel = selectors.DefaultSelector()
    readers = 0
    for pipe, stream in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
        if pipe is not None:
            sel.register(pipe, selectors.EVENT_READ, stream)
            readers += 1
    pending = memoryview(data)
    if proc.stdin is not None:
        os.set_blocking(proc.stdin.fileno(), False)  # a full pipe must not block the tick
        sel.register(proc.stdin, selectors.EVENT_WRITE, "stdin")
    deadline = None if inv.timeout is None else time.monotonic() + inv.timeout
    exited_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if inv.cancel is not None and inv.cancel.is_set():
                _stop(proc, sel, out)
                out.note("datum cancelled")
                return Outcome(returncode=proc.returncode, cancelled=True)
            over = confine.check() if confine is not None else ""
            if over:
                _stop(proc, sel, out)
                return Outcome(returncode=proc.returncode, limit=over)
            if deadline is not None and now >= deadline:
                _stop(proc, sel, out)
                out.note(f"datum timed out after {inv.timeout:g}s")
                return Outcome(returncode=proc.returncode, timed_out=True)
            if proc.poll() is not None:
                if readers == 0:
                    break
                # Output the process wrote before exiting is already in the pipes; only a
                # background child still holding them open makes us wait, and not for long.
                exited_at = exited_at if exited_at is not None else now
                if now - exited_at > _ORPHAN_GRACE:
                    break
            wait = _TICK if deadline is None else max(0.0, min(_TICK, deadline - now))
            if not sel.get_map():
                try:
                    proc.wait(wait)
                except subprocess.TimeoutExpired:
                    pass
                continue
            for key, _ in sel.select(wait):
                if key.data == "stdin":
                    pending = _feed(key, pending, sel)
                    continue
                chunk = os.read(key.fd, _CHUNK)
                if chunk:
                    out.feed(key.data, chunk)
                else:  # EOF
                    sel.unregister(key.fileobj)
                    readers -= 1
        return Outcome(returncode=proc.wait())
    finally:
        for key in list(sel.get_map().values()):
            sel.unregister(key.fileobj)
        sel.close()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _feed(key: selectors.SelectorKey, pending: memoryview,
          sel: selectors.BaseSelector) -> memoryview:
    """Write what the stdin pipe takes now; close it when all is written or the reader left."""
    try:
        n = os.write(key.fd, pending[:_CHUNK])
        pending = pending[n:]
    except BlockingIOError:
        return pending
    except (BrokenPipeError, OSError):
        pending = pending[:0]  # the process closed stdin: like communicate(), not an error
    if not pending:
        sel.unregister(key.fileobj)
        key.fileobj.close()  # type: ignore[union-attr]
    return pending


def _stop(proc: subprocess.Popen, sel: selectors.BaseSelector,  # type: ignore[type-arg]
          out: DatumLog) -> None:
    """Kill the process group, then log what was still in the pipes (bounded: a surviving
    grandchild outside the group must not keep us here)."""
    _kill_group(proc)
    proc.wait()
    end = time.monotonic() + _ORPHAN_GRACE
    while time.monotonic() < end:
        ready = [k for k, _ in sel.select(0) if k.data != "stdin"]
        if not ready:
            return
        for key in ready:
            chunk = os.read(key.fd, _CHUNK)
            if chunk:
                out.feed(key.data, chunk)
            else:
                sel.unregister(key.fileobj)


def _kill_group(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
