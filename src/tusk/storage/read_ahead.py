"""Read-ahead: a thread that pulls a file into the page cache a bounded distance ahead of the
code consuming it, so a put never waits on the disk for its source bytes.

A large put cuts its source from a read-only mapping. Touching a page that is not cached
faults, and the fault reads the next few MiB synchronously: the cutting thread stops for every
disk read. On this machine's virtio disk, reads and writes also share one device, so a read that
trickles in between pack writes costs more than the same bytes read in large steps. A thread
asking for the next steps ahead of time (``POSIX_FADV_WILLNEED``) turns the faults into hits; on
a cold 1 GiB source, in the disk's slow minutes, reading ahead took a put from ~330 to ~400 MB/s
(docs/benchmarks.md).

The lead is bounded (``LEAD``) so that a file larger than memory does not evict its own
not-yet-cut pages. Read-ahead is only a hint: any error stops it and the consumer then reads
the pages itself.
"""

from __future__ import annotations

import os
import threading

LEAD = 256 << 20  # how far ahead of the consumer the thread may read
STEP = 8 << 20  # one read call


class ReadAhead:
    """Read ``fd`` ahead of the position given to ``advance``; ``close`` stops the thread.

    The caller keeps ``fd`` open until ``close`` returns.
    """

    def __init__(self, fd: int, lead: int = LEAD) -> None:
        self._fd = fd
        self._size = os.fstat(fd).st_size
        self._lead = lead
        self._consumed = 0
        self._stopped = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tusk-read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        offset = 0
        try:
            while True:
                with self._cv:
                    while not self._stopped and offset - self._consumed >= self._lead:
                        self._cv.wait()
                    if self._stopped:
                        return
                if offset >= self._size:
                    return
                # WILLNEED starts the reads into the page cache and copies nothing: a preadv
                # into a scratch buffer did the same job for ~1 CPU-s more per GiB.
                os.posix_fadvise(self._fd, offset, min(STEP, self._size - offset), os.POSIX_FADV_WILLNEED)
                offset += STEP
        except OSError:
            return  # a hint only: the consumer's own reads will meet (and report) the problem

    def advance(self, position: int) -> None:
        """The consumer has used the file up to ``position``."""
        with self._cv:
            self._consumed = position
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        self._thread.join()
