"""The PFS façade: the one object every surface (CLI, HTTP API, SDK) calls.

``PfsService`` gathers the catalog (projects, repos, branches), the commit lifecycle, file
operations and transactions, which live in their own modules as mixins sharing one ``Backend``.
"""

from __future__ import annotations

from pathlib import Path

from tusk.pfs.files import FilesMixin
from tusk.pfs.fsck import fsck
from tusk.pfs.gc import FsckReport, GcStats, collect_garbage
from tusk.pfs.output import Output
from tusk.pfs.transactions import TransactionsMixin
from tusk.storage.backend import Backend, open_backend


class PfsService(TransactionsMixin, FilesMixin):
    def __init__(self, backend: Backend) -> None:
        self.b = backend
        self.output = Output(backend, self.view, self._fire_triggers_on_finish)

    @classmethod
    def open(cls, root: Path | None = None) -> PfsService:
        return cls(open_backend(root))

    def garbage_collect(self, wait: bool = True, grace: float | None = None,
                        timeout: float | None = None) -> GcStats:
        """Free unreferenced data. ``wait``: wait for writers (at most ``timeout`` seconds);
        ``grace``: seconds an unowned orphan is kept (default ``TUSK_GC_GRACE`` or an hour)."""
        return collect_garbage(self.b, orphan_grace=grace, wait=wait, timeout=timeout)

    def fsck(self, verify_hashes: bool = True) -> FsckReport:
        return fsck(self.b, verify_hashes)

    def close(self) -> None:
        self.b.close()
