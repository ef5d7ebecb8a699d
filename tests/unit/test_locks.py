"""Root locks die with the process that took them (storage/locks.py), and gc's wait for
writers is bounded when asked."""

from __future__ import annotations

import os
import time

import pytest

from tusk.errors import Busy
from tusk.pfs.service import PfsService


def test_gc_waits_for_a_writer_at_most_its_timeout(svc: PfsService) -> None:
    with svc.b.data_lock():
        t0 = time.monotonic()
        with pytest.raises(Busy, match="another tusk process is writing data"):
            svc.garbage_collect(timeout=0.3)
        assert 0.25 < time.monotonic() - t0 < 5
    svc.garbage_collect(timeout=0.3)  # free again


def test_a_child_forked_while_a_lock_is_held_does_not_hold_it(svc: PfsService) -> None:
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    with svc.b.data_lock():
        pid = os.fork()
        if pid == 0:  # the child lives on after the parent lets go, as a stray worker would
            os.close(w)
            os.write(ready_w, b"r")  # running: the fork hooks are done
            os.read(r, 1)
            os._exit(0)
    assert os.read(ready_r, 1) == b"r"
    os.close(ready_r)
    os.close(ready_w)
    try:
        svc.garbage_collect(wait=False)  # exclusive: only the parent's copy ever held it
    finally:
        os.close(r)
        os.write(w, b"x")
        os.close(w)
        os.waitpid(pid, 0)
