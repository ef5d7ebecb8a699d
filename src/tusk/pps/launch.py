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

from tusk.storage import schema as s

if TYPE_CHECKING:
    from tusk.pfs.service import PfsService


def _lock_path(root: Path) -> Path:
    return root / "controller.lock"


def try_lock(root: Path) -> int | None:
    fd = os.open(_lock_path(root), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def has_cron_triggers(conn) -> bool:  # type: ignore[no-untyped-def]
    t = s.branch_triggers
    return conn.execute(select(t.c.branch_id).where(t.c.cron_spec != "").limit(1)).first() is not None


def ensure_running_if_needed(pfs: PfsService) -> None:
    """Start a background controller if there is anything it could do (pipelines or cron
    triggers) and none is running; what the CLI and the embedded SDK do after a change."""
    if os.environ.get("TUSK_NO_CONTROLLER"):
        return
    with pfs.b.db.read() as conn:
        if conn.execute(select(s.pipelines.c.id).limit(1)).first() is None and not has_cron_triggers(conn):
            return  # nothing a controller could do: no pipelines, no cron triggers
    ensure_running(pfs.b.root)


def ensure_running(root: Path) -> bool:
    """Start a background controller for ``root`` unless one holds the lock; True if started."""
    fd = try_lock(root)
    if fd is None:
        return False
    release(fd)
    env = {**os.environ, "TUSK_ROOT": str(root)}
    with open(root / "controller.log", "ab") as log:
        subprocess.Popen([sys.executable, "-m", "tusk.pps.controller"], stdout=log, stderr=log,
                         stdin=subprocess.DEVNULL, env=env, start_new_session=True, close_fds=True)
    return True
