"""Root-wide locks held by one process (flock on a file in the root) that die with it.

An flock belongs to the *open file description*, and a forked child shares its parent's. A
child forked while its parent holds a lock (a bulk put's workers are) would go on holding it
after the parent died, and whatever waits for the lock (``tusk gc`` waits for the data lock)
would wait for that child. So every lock taken here is registered, and a forked child closes
its copies at once (``os.register_at_fork``): closing a copy releases nothing for the parent,
which still holds its own descriptor, and only the process that took a lock holds it.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tusk.errors import Busy

POLL = 0.05

_held: set[int] = set()
_guard = threading.Lock()


def _drop_inherited() -> None:
    # Runs in the child right after fork, where only the forking thread exists.
    for fd in list(_held):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited)


@contextmanager
def held_flock(path: Path, exclusive: bool, wait: bool = True, timeout: float | None = None,
               busy: str = "the lock is held by another process") -> Iterator[None]:
    """Hold an flock on ``path`` (created if missing) for the ``with`` block.

    ``wait`` false: fail at once with Busy(``busy``) if it is taken; otherwise wait, for at
    most ``timeout`` seconds when given.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    with _guard:
        _held.add(fd)
    try:
        kind = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if wait and timeout is None:
            fcntl.flock(fd, kind)
        else:
            deadline = time.monotonic() + (timeout or 0.0)
            while True:
                try:
                    fcntl.flock(fd, kind | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not wait or time.monotonic() >= deadline:
                        raise Busy(busy) from None
                    time.sleep(POLL)
        yield
    finally:
        with _guard:
            _held.discard(fd)
        os.close(fd)
