"""Read-ahead: a thread that asks for the byte ranges a reader will need next, a bounded
distance ahead of it, so the reader finds them in the page cache instead of waiting on the disk.

Two readers use it:

* a large put, which cuts its source from a read-only mapping. Touching a page that is not
  cached faults, and the fault reads the next few MiB synchronously: the cutting thread stops
  for every disk read;
* ``get file``, which copies chunk slices out of packs with ``sendfile``: each call reads its
  slice synchronously before it can copy it.

Asking ahead (``POSIX_FADV_WILLNEED``: the kernel starts the reads and returns, copying
nothing) keeps the disk busy while the reader works. On a cold 1 GiB file it took a put from
~330 to ~400 MB/s in the disk's slow minutes, and a get from ~820 to ~1,020 MB/s
(docs/benchmarks.md). A ``preadv`` into a scratch buffer did the same for a put but cost ~1 CPU-s
more per GiB.

The lead is bounded (``LEAD``) so that a file larger than memory does not evict its own unread
pages. Read-ahead is only a hint: any error stops it, and the reader then reads the pages itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator

LEAD = 256 << 20  # how many bytes ahead of the reader the thread may ask for
STEP = 8 << 20  # one request, when a whole file is read ahead

Range = tuple[int, int, int]  # (fd, offset, length)


def file_steps(fd: int) -> Iterator[Range]:
    """The whole of ``fd`` in ``STEP`` pieces."""
    size = os.fstat(fd).st_size
    for offset in range(0, size, STEP):
        yield fd, offset, min(STEP, size - offset)


class ReadAhead:
    """Ask for ``ranges`` in order, at most ``lead`` bytes beyond what the reader reported with
    ``advance``; ``close`` stops the thread.

    ``ranges`` is consumed by the thread; the caller keeps their fds open until ``close`` returns.
    """

    def __init__(self, ranges: Iterable[Range], lead: int = LEAD) -> None:
        self._ranges = ranges
        self._lead = lead
        self._consumed = 0
        self._stopped = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tusk-read-ahead", daemon=True)
        self._thread.start()

    @classmethod
    def of_file(cls, fd: int, lead: int = LEAD) -> ReadAhead:
        return cls(file_steps(fd), lead)

    def _run(self) -> None:
        asked = 0
        try:
            for fd, offset, length in self._ranges:
                with self._cv:
                    while not self._stopped and asked - self._consumed >= self._lead:
                        self._cv.wait()
                    if self._stopped:
                        return
                os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
                asked += length
        except OSError:
            return  # a hint only: the reader's own reads will meet (and report) the problem

    def advance(self, consumed: int) -> None:
        """The reader has used ``consumed`` bytes of the ranges so far."""
        with self._cv:
            self._consumed = consumed
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        self._thread.join()
