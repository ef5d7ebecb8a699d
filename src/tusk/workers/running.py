"""Running user code as a child process: one datum attempt logged and bounded, or a long-lived
process held at a gate.

``run_logged`` is how every runtime runs a datum: it records stdout and stderr line by line in
the datum log and stops the process group on timeout, cancel or a crossed bound.
``start_gated`` is how every runtime starts a service or spout: the command waits behind a tiny
shell until its supervisor has recorded it, so nothing unrecorded ever runs.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tusk.pps.logs import DatumLog
from tusk.workers.base import Invocation, Outcome, Workspace
from tusk.workers.limits import Confinement

_TICK = 0.1  # how often the waiting loop checks timeout, cancel and exit (cancel latency)
_CHUNK = 65536
_ORPHAN_GRACE = 0.5  # how long to keep reading pipes held open after the process exited
GATE_CLOSED = 111  # the exit code of a gated process whose gate closed before it opened


def start_gated(cmd: list[str], env: dict[str, str], cwd: str, ws: Workspace, stdin: list[str],
                out: IO[bytes], hold: int) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a session of its own once a line arrives on the pipe ``hold``.

    A small ``/bin/sh`` reads that line, then execs the command with its stdin from a file in
    the workspace (the lines of ``stdin``); if the pipe closes first it exits ``GATE_CLOSED``
    and runs nothing. A missing command then shows as exit code 127 in ``out``.
    """
    stdin_path = ws.root / "stdin"
    stdin_path.write_text("".join(line + "\n" for line in stdin))
    gated = ["/bin/sh", "-c", f'read -r _ || exit {GATE_CLOSED}; exec "$@" <"$0"', str(stdin_path),
             *cmd]
    return subprocess.Popen(gated, stdin=hold, stdout=out, stderr=subprocess.STDOUT, env=env,
                            cwd=cwd, start_new_session=True, close_fds=True)


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
