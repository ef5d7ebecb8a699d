"""The process runner: user code as a plain subprocess, without a mount namespace.

Used where bubblewrap is missing (macOS, minimal containers). ``/pfs`` cannot be created, so
every ``/pfs`` prefix in the command, stdin and environment is rewritten to the datum's scratch
``pfs`` directory. Code that builds ``/pfs`` paths at run time from other strings will not see
them; that is the documented limit of this runner.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import time
from pathlib import Path

from tusk.pps.logs import DatumLog
from tusk.runners.base import Invocation, Outcome, Workspace

_TICK = 0.1  # how often the waiting loop checks timeout, cancel and exit (cancel latency)
_CHUNK = 65536
_ORPHAN_GRACE = 0.5  # how long to keep reading pipes held open after the process exited

# "/pfs" as a whole path component at the start of a path ("/pfs", "/pfs/x", "'/pfs/x'"), not
# "/data/pfs" or "/pfsx". One pass, so the replacement (which itself ends in "/pfs") is never
# rewritten again.
_PFS = re.compile(r"(?<![\w.~/-])/pfs(?![\w.~-])")


def _rewrite(text: str, pfs: str) -> str:
    return _PFS.sub(lambda _m: pfs, text) if "/pfs" in text else text


class ProcessRunner:
    name = "process"

    def run(self, ws: Workspace, inv: Invocation, log: Path) -> Outcome:
        pfs = str(ws.pfs)
        cmd = [_rewrite(c, pfs) for c in inv.cmd]
        stdin = "".join(_rewrite(line, pfs) + "\n" for line in inv.stdin)
        env = {**os.environ, **{k: _rewrite(v, pfs) for k, v in inv.env.items()}}
        ws.tmp.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(ws.tmp)
        cwd = _rewrite(inv.working_dir, pfs) if inv.working_dir else pfs
        return run_logged(cmd, stdin, env, cwd, inv, log)


def run_logged(
    cmd: list[str], stdin: str, env: dict[str, str], cwd: str, inv: Invocation, log: Path
) -> Outcome:
    """Run a command, recording its stdout and stderr line by line in the datum log ``log``.

    Its process group is killed when ``inv.timeout`` passes or ``inv.cancel`` is set. Both
    pipes and stdin are served by this thread (a selector), so a datum costs no extra thread or
    process, and the process's exit is noticed within one tick.
    """
    out = inv.log_sink if inv.log_sink is not None else DatumLog(log, inv.attempt)
    try:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env, cwd=cwd,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
            msg = f"cannot run {cmd[0]!r}: {e.strerror or e}"
            out.note(msg)
            return Outcome(returncode=127, error=msg)
        try:
            outcome = _pump(proc, stdin.encode(), out, inv)
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        outcome.stderr_tail = list(out.stderr_tail)
        return outcome
    finally:
        out.close()


def _pump(proc: subprocess.Popen, data: bytes, out: DatumLog,  # type: ignore[type-arg]
          inv: Invocation) -> Outcome:
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
