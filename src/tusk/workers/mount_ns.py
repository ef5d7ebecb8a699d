"""A worker's own ``/pfs``: one private mount namespace per worker, made once.

The ``process`` runtime shows a datum its workspace at a real ``/pfs``. Made per datum, that
is a mount namespace and a bind mount, which costs programs started in front of the user's
command (``unshare``, a shell, ``mount``). A worker runs every datum in the same workspace,
so it can make the namespace once for itself instead: its main thread leaves the host's mount
namespace and binds its workspace's ``pfs`` directory on ``/pfs``, and every process it starts
from then on sees it there. The runtime notices (``/pfs`` *is* the workspace) and starts the
command as it is.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000  # unshare(2)
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000  # mount(2)


def show_at_pfs(pfs_dir: Path) -> bool:
    """Show ``pfs_dir`` at ``/pfs`` to the calling thread and the processes it starts; False
    (and nothing changed for anyone else) where this system does not allow it. Call it from
    the thread that starts the datums, before it starts any other thread."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not os.path.isdir("/pfs"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        return False
    # Private first: the bind must not propagate back to the host's namespace.
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False
    return libc.mount(str(pfs_dir).encode(), b"/pfs", None, MS_BIND, None) == 0


def shows(pfs_dir: Path) -> bool:
    """Whether ``/pfs`` is ``pfs_dir`` for this thread (``show_at_pfs`` was done)."""
    try:
        return os.path.samefile("/pfs", pfs_dir)
    except OSError:
        return False
