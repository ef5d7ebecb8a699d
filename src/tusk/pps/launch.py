"""Starting the controller: the one-controller-per-root lock, and launching a background
controller when a change gives it something to do.

This is the part of the controller the CLI and the embedded SDK call after every change, so it
imports nothing heavy (no job runner, no spec parser): ``tusk put file`` on a root without
pipelines pays one cheap query for it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from tusk.pfs.triggers import has_cron_triggers
from tusk.storage import schema as s

if TYPE_CHECKING:
    from tusk.pfs.service import PfsService


def _lock_path(root: Path) -> Path:
    return root / "controller.lock"


def _try_flock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def try_lock(root: Path) -> int | None:
    """The controller lock (one controller per root), or None if a controller holds it."""
    return _try_flock(_lock_path(root))


# -- 'tusk serve' taking over from a background controller ---------------------------------------
#
# A server holds ``serve.lock`` for as long as it runs (one server per root). When a background
# controller holds the controller lock, the server leaves a ``controller.handover`` marker; the
# background controller sees it between jobs, releases the lock and exits, and the server's
# controller takes the lock. A marker whose server is gone (``serve.lock`` free) is stale: the
# controller removes it and goes on.

def _serve_lock_path(root: Path) -> Path:
    return root / "serve.lock"


def _handover_path(root: Path) -> Path:
    return root / "controller.handover"


def try_serve_lock(root: Path) -> int | None:
    """The server lock (one 'tusk serve' per root), or None if a server holds it."""
    return _try_flock(_serve_lock_path(root))


def request_handover(root: Path) -> None:
    """Ask the background controller to exit at its next chance (the caller holds serve.lock)."""
    _handover_path(root).touch()


def end_handover(root: Path) -> None:
    try:
        _handover_path(root).unlink()
    except FileNotFoundError:
        pass


def handover_requested(root: Path) -> bool:
    """Whether a running server asks for the controller lock. One ``stat`` in the usual case
    (no marker), so a controller can ask between every two steps."""
    if not _handover_path(root).exists():
        return False
    fd = try_serve_lock(root)
    if fd is None:
        return True  # the server that asked is there
    try:
        end_handover(root)  # left by a server that died before taking over
    finally:
        release(fd)
    return False


def release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def ensure_running_if_needed(pfs: PfsService) -> None:
    """Start a background controller if there is anything it could do (pipelines or cron
    triggers) and none is running; what the CLI and the embedded SDK do after a change."""
    if os.environ.get("TUSK_NO_CONTROLLER"):
        return
    with pfs.b.db.read() as conn:
        if conn.execute(select(s.pipelines.c.id).limit(1)).first() is None and not has_cron_triggers(conn):
            return  # nothing a controller could do: no pipelines, no cron triggers
    ensure_running(pfs.b.root)


UNFINISHED_JOBS = ("CREATED", "STARTING", "RUNNING", "EGRESSING")


def ensure_running_if_in_flight(pfs: PfsService) -> None:
    """Start a background controller if a job is unfinished and no controller runs (one
    that was killed is replaced by the next command, even a read); one lock probe when a
    controller runs, plus one query when none does."""
    if os.environ.get("TUSK_NO_CONTROLLER"):
        return
    root = pfs.b.root
    if handover_requested(root):
        return
    fd = try_lock(root)
    if fd is None:
        return  # a controller is running
    release(fd)
    with pfs.b.db.read() as conn:
        if conn.execute(select(s.jobs.c.id).where(s.jobs.c.state.in_(UNFINISHED_JOBS))
                        .limit(1)).first() is None:
            return
    ensure_running(root)


def ensure_running(root: Path) -> bool:
    """Start a background controller for ``root`` unless one holds the lock; True if started."""
    if handover_requested(root):
        return False  # a server is taking over: its controller does the work
    fd = try_lock(root)
    if fd is None:
        return False
    release(fd)
    env = {**os.environ, "TUSK_ROOT": str(root)}
    with open(root / "controller.log", "ab") as log:
        subprocess.Popen([sys.executable, "-m", "tusk.pps.controller"], stdout=log, stderr=log,
                         stdin=subprocess.DEVNULL, env=env, start_new_session=True, close_fds=True)
    return True
