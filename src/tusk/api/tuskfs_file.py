"""The file objects of ``tusk://`` and its batched writes.

A ``TuskFile`` read is pinned to the commit it opened on and fetches only the ranges asked
for. A write is spooled locally (in memory up to ``SPOOL_MEMORY``, then on disk) and put in one
write session when the file is closed: one commit on its branch. If the ``with`` block or the
caller's writer raises, nothing lands. ``TuskTransaction`` (``with fs.transaction:``) lands
every file and change made inside it together, one commit per branch.
"""

from __future__ import annotations

import io
import sys
import tempfile
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from fsspec.spec import AbstractBufferedFile
from fsspec.transaction import Transaction

from tusk.pfs.refs import CommitRef, FileRef

if TYPE_CHECKING:
    from tusk.api.tuskfs import TuskFileSystem, _Target

# A file being written stays in memory up to this size, then spills to a temporary file.
SPOOL_MEMORY = 16 << 20


class Op(NamedTuple):
    """One queued change: what it writes to, the URL for its errors, and the session call."""

    ref: CommitRef
    url: str
    apply: Callable[[Any], None]


class TuskTransaction(Transaction):
    """``with fs.transaction:``: every write inside lands together, one commit per branch.

    fsspec's own transaction commits each deferred file on its own; here the files and the
    other changes made meanwhile (``pipe``, ``rm``, ``put`` ...) go into one write session per
    branch, and nothing lands if the block raises.
    """

    def complete(self, commit: bool = True) -> None:
        fs = self.fs
        files = list(self.files)
        self.files.clear()
        try:
            if commit:
                for f in files:
                    if not f.closed:
                        f.close()
                ops = fs._txn_ops + [f._op() for f in files if f._spool is not None]
                fs._land(ops)
        finally:
            fs._txn_ops = []
            for f in files:
                f.discard()
            fs._intrans = False
            fs._transaction = None
            self.fs = None




class TuskFile(AbstractBufferedFile):
    """A file of ``tusk://``: reads pinned to one commit, writes spooled and put on close."""

    def __init__(self, fs: TuskFileSystem, path: str, mode: str = "rb", block_size: Any = None,
                 autocommit: bool = True, cache_type: str = "readahead",
                 cache_options: dict[str, Any] | None = None, *, src: FileRef | None = None,
                 details: dict[str, Any] | None = None, target: _Target | None = None,
                 **kwargs: Any) -> None:
        self.src = src
        self.target = target
        self._spool: Any = None
        # The exception being handled when the file was opened, if any: close() lands the file
        # unless a *new* exception is propagating (see _failing).
        self._exc_at_open = sys.exc_info()[1]
        kwargs.pop("size", None)  # reopen() after unpickling passes it; details has it
        super().__init__(fs, path, mode, block_size, autocommit, cache_type, cache_options,
                         size=details["size"] if details is not None else None, **kwargs)
        if details is not None:
            self._details = details

    # -- reads ----------------------------------------------------------------------------

    def _fetch_range(self, start: int, end: int) -> bytes:
        assert self.src is not None
        return self.fs._read_range(self.src, start, min(end, self.size), self.full_name)

    # -- writes ---------------------------------------------------------------------------

    def _initiate_upload(self) -> None:
        # Closed by discard(), after the write lands or is dropped: it outlives this call.
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, mode="w+b")  # noqa: SIM115

    def _upload_chunk(self, final: bool = False) -> bool:
        self._spool.write(self.buffer.getbuffer())
        if final and self.autocommit:
            self.commit()
        # else (fs.transaction, or autocommit=False): the transaction or f.commit() lands it
        return True

    def _op(self) -> Op:
        assert self.target is not None and self.target.commit is not None
        spool, path, append = self._spool, self.target.path, self.mode == "ab"

        def put(session: Any) -> None:
            spool.seek(0)
            session.put_stream(path, spool, append)

        return Op(self.target.commit, self.full_name, put)

    def commit(self) -> None:
        """Land the written bytes as one commit (or into the open commit named)."""
        try:
            self.fs._land([self._op()])
        finally:
            self.discard()

    def discard(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def _failing(self) -> bool:
        """Whether close() runs because an exception is propagating (a ``with`` block, or
        pandas' handles, closing on error), rather than on the normal path."""
        current = sys.exc_info()[1]
        return current is not None and current is not self._exc_at_open

    def close(self) -> None:
        if self.mode != "rb" and not self.closed and self._failing():
            self._abandon()
            return
        super().close()

    def _abandon(self) -> None:
        """Close without landing anything."""
        self.discard()
        self.buffer = io.BytesIO()
        self.forced = True
        self.closed = True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None and self.mode != "rb" and not self.closed:
            self._abandon()
            return
        self.close()
