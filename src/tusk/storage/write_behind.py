"""Write-behind: pack writes on a thread of their own, so copying chunk bytes into the page
cache overlaps cutting and hashing the next chunks.

A large put spends about as long in ``write`` (copying 1 GiB into the page cache: ~0.5 s here)
as in FastCDC plus blake3. ``write`` releases the GIL, so a second thread can do it while the
caller cuts and hashes. That took the CPU part of a 1 GiB put from ~1.17 s to ~0.87 s
(docs/benchmarks.md).

Writes run strictly in the order they were queued, by one thread, so the offsets the caller
records when it queues a write are the offsets the bytes land at. The caller must keep each
queued buffer alive and unchanged until ``drain`` returns. ``ContentWriter`` does this only for
the read-only mmap of a file it is putting. A failed write is raised by the next ``submit`` or
``drain``.
"""

from __future__ import annotations

import queue
import threading
from typing import BinaryIO

# Writes that may wait in the queue: bounded, so a slow disk makes the caller wait, not memory
# grow (the buffers are views of a mapped file, but the mapping's pages stay resident).
DEPTH = 32


class WriteBehind:
    """One writer thread; ``submit(file, buffer)`` queues a write, ``drain`` waits for all."""

    def __init__(self) -> None:
        self._q: queue.Queue[tuple[BinaryIO, memoryview] | None] = queue.Queue(maxsize=DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tusk-write-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                if self._error is None:  # after a failure, later writes are moot: skip them
                    f, view = item
                    while view:
                        n = f.write(view)
                        view = view[n:]
            except BaseException as e:  # noqa: BLE001 (handed to the caller's thread by _check)
                self._error = e
            finally:
                self._q.task_done()

    def _check(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, f: BinaryIO, data: memoryview) -> None:
        self._check()
        self._q.put((f, data))

    def drain(self) -> None:
        """Wait until every queued write is done; raise the first that failed."""
        self._q.join()
        self._check()

    def close(self) -> None:
        """Finish the queued writes and stop the thread (errors are dropped: used on abort too)."""
        self._q.put(None)
        self._thread.join()
