"""The PFS façade: the one object every surface (CLI, HTTP API, SDK) calls.

``PfsService`` gathers the catalog (projects, repos, branches), the commit lifecycle, file
operations and transactions, which live in their own modules as mixins sharing one ``Backend``.
"""

from __future__ import annotations

from pathlib import Path

from tusk.pfs.files import FilesMixin
from tusk.pfs.gc import FsckReport, GcStats, collect_garbage, fsck
from tusk.pfs.transactions import TransactionsMixin
from tusk.storage.backend import Backend, open_backend


class PfsService(TransactionsMixin, FilesMixin):
    def __init__(self, backend: Backend) -> None:
        self.b = backend

    @classmethod
    def open(cls, root: Path | None = None) -> PfsService:
        return cls(open_backend(root))

    def garbage_collect(self, wait: bool = True) -> GcStats:
        return collect_garbage(self.b, wait=wait)

    def fsck(self, verify_hashes: bool = True) -> FsckReport:
        return fsck(self.b, verify_hashes)

    def close(self) -> None:
        self.b.close()
