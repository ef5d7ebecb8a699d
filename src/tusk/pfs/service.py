"""The PFS façade: the one object every surface (CLI, HTTP API, SDK) and the pipeline layer call.

``PfsService`` holds its components and delegates to them; it does not inherit them:

* ``catalog``: projects, repos, and the lookups of names to rows (``catalog.py``);
* ``rows``: resolving refs to commit rows, making them, moving heads, their content
  (``commit_rows.py``);
* ``branches``: branches, provenance, propagation and triggers (``branches.py``);
* ``commits``: the commit lifecycle (``commits.py``);
* ``files``: write sessions and file reads (``files.py``, ``write_session.py``);
* ``transactions``: batching changes into one commit set (``transactions.py``);
* ``output``: the API the pipeline layer writes output commits through (``output.py``).

The façade decides one thing itself: while ``transaction`` is set (the CLI and the server set
it for the commands a transaction covers), changes are handed to the transaction instead of
being made at once. Components never look at it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import Connection, Row

from tusk.pfs import trees
from tusk.pfs.branches import Branches
from tusk.pfs.catalog import Catalog
from tusk.pfs.commit_rows import CommitRows
from tusk.pfs.commits import Commits
from tusk.pfs.files import Files
from tusk.pfs.fsck import fsck
from tusk.pfs.gc import FsckReport, GcStats, collect_garbage
from tusk.pfs.model import (
    BranchInfo,
    CommitInfo,
    CommitSetInfo,
    FileDiff,
    FileInfo,
    ProjectInfo,
    RepoInfo,
)
from tusk.pfs.names import DEFAULT_PROJECT, check_branch_name, check_repo_name
from tusk.pfs.output import Output
from tusk.pfs.refs import CommitRef, FileRef, RepoRef
from tusk.pfs.transactions import TransactionInfo, Transactions
from tusk.pfs.triggers import Trigger
from tusk.pfs.write_session import FileSession, check_writable
from tusk.storage.backend import Backend, open_backend


class PfsService:
    # The open transaction this service batches into; surfaces set it for the commands a
    # transaction covers, so other callers (pipelines, cron) never join one.
    transaction: str | None = None
    # Called on every poll of a wait (the CLI uses it to make sure a controller is alive).
    wait_hook: Callable[[], None] | None = None

    def __init__(self, backend: Backend) -> None:
        self.b = backend
        self.catalog = Catalog(backend)
        self.rows = CommitRows(backend, self.catalog)
        self.branches = Branches(backend, self.catalog, self.rows)
        self.commits = Commits(backend, self.catalog, self.rows, self.branches)
        self.files = Files(backend, self.catalog, self.rows, self.branches)
        self.transactions = Transactions(backend, self.catalog, self.rows, self.branches)
        self.output = Output(backend, self.rows.view, self.branches.fire_triggers_on_finish)

    @classmethod
    def open(cls, root: Path | None = None) -> PfsService:
        return cls(open_backend(root))

    # -- projects ---------------------------------------------------------------------------

    def create_project(self, name: str, description: str = "") -> ProjectInfo:
        return self.catalog.create_project(name, description)

    def list_projects(self) -> list[ProjectInfo]:
        return self.catalog.list_projects()

    def inspect_project(self, name: str) -> ProjectInfo:
        return self.catalog.inspect_project(name)

    def update_project(self, name: str, description: str) -> ProjectInfo:
        return self.catalog.update_project(name, description)

    def delete_project(self, name: str, force: bool = False) -> None:
        self.catalog.delete_project(name, force)

    # -- repos ------------------------------------------------------------------------------

    def create_repo(self, ref: RepoRef, description: str = "", update: bool = False) -> RepoInfo:
        """Create a repo (``update``: or change its description). Inside a transaction the
        new repo is queued and appears when the transaction finishes; the answer describes it
        as it will be then."""
        check_repo_name(ref.repo)  # a RepoRef can be built without the parser's checks
        if self.transaction is not None and not update:
            self.transactions.queue_create_repo(self.transaction, ref, description)
            return RepoInfo(ref.project, ref.repo, "user", description, time.time(), 0)
        return self.catalog.create_repo(ref, description, update)

    def update_repo(self, ref: RepoRef, description: str) -> RepoInfo:
        """Change a repo's description. Inside a transaction the change is queued and happens
        when the transaction finishes; the answer describes the repo as it will be then."""
        if self.transaction is not None:
            self.transactions.queue_update_repo(self.transaction, ref, description)
            return dataclasses.replace(self.catalog.inspect_repo(ref), description=description)
        return self.catalog.update_repo(ref, description)

    def inspect_repo(self, ref: RepoRef) -> RepoInfo:
        return self.catalog.inspect_repo(ref)

    def list_repos(self, project: str | None = DEFAULT_PROJECT) -> list[RepoInfo]:
        return self.catalog.list_repos(project)

    def delete_repo(self, ref: RepoRef, force: bool = False) -> None:
        """Delete a repo with its branches and commits. Inside a transaction the delete is
        queued and happens when the transaction finishes."""
        if self.transaction is not None:
            self.transactions.queue_delete_repo(self.transaction, ref, force)
            return
        self.catalog.delete_repo(ref, force)

    # -- branches ---------------------------------------------------------------------------

    def create_branch(
        self,
        ref: RepoRef,
        name: str,
        head: CommitRef | None = None,
        provenance: list[tuple[RepoRef, str]] | None = None,
        trigger: Trigger | None = None,
        set_id: str | None = None,
    ) -> BranchInfo | None:
        """Create a branch, or move / re-wire an existing one. Inside a transaction the change
        is queued (and checked against the queue) and None is returned. ``set_id``: the commit
        set a new head commit joins (a pipeline created by a finished transaction)."""
        check_branch_name(name)
        if trigger is not None:
            trigger.validate()
        if self.transaction is not None:
            self.transactions.queue_create_branch(self.transaction, ref, name, head, provenance, trigger)
            return None
        return self.branches.create_branch(ref, name, head, provenance, trigger, set_id)

    def inspect_branch(self, ref: RepoRef, name: str) -> BranchInfo:
        return self.branches.inspect_branch(ref, name)

    def list_branches(self, ref: RepoRef) -> list[BranchInfo]:
        return self.branches.list_branches(ref)

    def delete_branch(self, ref: RepoRef, name: str, force: bool = False) -> None:
        check_branch_name(name)
        if self.transaction is not None:
            self.transactions.queue_delete_branch(self.transaction, ref, name, force)
            return
        self.branches.delete_branch(ref, name, force)

    def trigger_branch(self, ref: RepoRef, name: str, set_id: str | None = None) -> str:
        """A new open commit on a branch with provenance, as if its inputs had moved.

        Used when a pipeline changes (update, rerun, start): the output branch gets a commit on
        the current input heads, and the commit set propagates downstream as usual. ``set_id``
        names that commit set (a transaction's) instead of a new one.
        """
        return self.branches.trigger_branch(ref, name, set_id)

    def set_trigger_from_spec(self, ref: RepoRef, name: str, doc: dict) -> None:  # type: ignore[type-arg]
        """A pipeline input's ``trigger``: ``name`` follows ``trigger.branch``."""
        self.branches.set_trigger_from_spec(ref, name, doc)

    def fire_due_triggers(self, now: float | None = None) -> int:
        """Fire cron triggers whose tick has come (the controller calls this every step)."""
        return self.branches.fire_due_triggers(now)

    # -- commits ----------------------------------------------------------------------------

    def start_commit(
        self, ref: RepoRef, branch: str, parent: CommitRef | None = None, description: str = ""
    ) -> CommitInfo:
        check_branch_name(branch)
        if self.transaction is not None:
            return self.transactions.start_commit(self.transaction, ref, branch, parent, description)
        return self.commits.start_commit(ref, branch, parent, description)

    def finish_commit(
        self, ref: CommitRef, description: str | None = None, error: str = "", force: bool = False
    ) -> CommitInfo:
        if self.transaction is not None:
            return self.transactions.finish_commit(self.transaction, ref, description, error)
        return self.commits.finish_commit(ref, description, error, force)

    def inspect_commit(self, ref: CommitRef, wait: bool = False, timeout: float | None = None) -> CommitInfo:
        return self.commits.inspect_commit(ref, wait, timeout, self.wait_hook)

    def list_commits(
        self, ref: CommitRef | RepoRef, number: int = 0, origin: str | None = None, all_origins: bool = False
    ) -> list[CommitInfo]:
        """Newest first: a branch's or commit's history, or every commit of a repo."""
        return self.commits.list_commits(ref, number, origin, all_origins)

    def inspect_commit_set(self, commit_id: str, wait: bool = False, timeout: float | None = None) -> CommitSetInfo:
        return self.commits.inspect_commit_set(commit_id, wait, timeout, self.wait_hook)

    def list_commit_sets(self, number: int = 0) -> list[CommitSetInfo]:
        return self.commits.list_commit_sets(number)

    def subscribe_commits(
        self, ref: RepoRef, branch: str | None = None, from_id: str | None = None,
        new_only: bool = False, state: str = "started", timeout: float | None = None,
    ) -> Iterator[CommitInfo]:
        """Yield commits of a repo (optionally one branch) as they start or finish, forever."""
        return self.commits.subscribe_commits(ref, branch, from_id, new_only, state, timeout)

    def delete_commit_set(self, commit_id: str) -> None:
        """Drop every commit of a set and its data; only allowed while none has children."""
        self.commits.delete_commit_set(commit_id)

    def squash_commit_set(self, commit_id: str) -> None:
        """Remove a set's commits from history, keeping their content in their children."""
        self.commits.squash_commit_set(commit_id)

    # -- files ------------------------------------------------------------------------------

    def modify(self, ref: CommitRef, description: str = "") -> FileSession:
        """A write session on a branch or an open commit (inside a transaction: on the
        transaction's commit on that branch)."""
        check_writable(ref)
        if self.transaction is not None:
            ref = self.transactions.commit_ref_for_write(self.transaction, ref)
        return self.files.modify(ref, description)

    def inspect_file(self, ref: FileRef) -> FileInfo:
        return self.files.inspect_file(ref)

    def list_file(self, ref: FileRef) -> list[FileInfo]:
        """Direct children of a directory (or the file itself), with type and size."""
        return self.files.list_file(ref)

    def walk_file(self, ref: FileRef) -> Iterator[FileInfo]:
        """Every file at or below a path, in path order."""
        return self.files.walk_file(ref)

    def glob_file(self, ref: CommitRef, pattern: str) -> list[FileInfo]:
        """Files and directories matching a glob pattern."""
        return self.files.glob_file(ref, pattern)

    def read_file(self, ref: FileRef, offset: int = 0) -> Iterator[bytes]:
        """A file's bytes as a stream of chunks."""
        return self.files.read_file(ref, offset)

    def diff_file(self, new: FileRef, old: FileRef | None = None) -> list[FileDiff]:
        """Added, removed and changed files between two refs (old defaults to the parent)."""
        return self.files.diff_file(new, old)

    # -- transactions -----------------------------------------------------------------------

    def active_transaction(self) -> str | None:
        """The root's active transaction, if it is still open."""
        return self.transactions.active_transaction()

    def start_transaction(self) -> TransactionInfo:
        return self.transactions.start_transaction()

    def finish_transaction(self, txn_id: str | None = None, pipelines_follow: bool = False) -> TransactionInfo:
        """Apply a transaction atomically. A transaction holding pipeline changes is finished
        by ``PpsService.finish_transaction``, which applies them after this
        (``pipelines_follow``)."""
        return self.transactions.finish_transaction(txn_id, pipelines_follow)

    def stop_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        """Stop adding to the active transaction; it stays open, to be resumed, finished or
        deleted later."""
        return self.transactions.stop_transaction(txn_id)

    def delete_transaction(self, txn_id: str | None = None) -> str:
        """Drop an open transaction: its hidden commits and queued operations vanish."""
        return self.transactions.delete_transaction(txn_id)

    def resume_transaction(self, txn_id: str) -> TransactionInfo:
        """Make an open transaction the active one again."""
        return self.transactions.resume_transaction(txn_id)

    def inspect_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        return self.transactions.inspect_transaction(txn_id)

    def list_transactions(self) -> list[TransactionInfo]:
        return self.transactions.list_transactions()

    def transaction_id(self, txn_id: str | None) -> str:
        """``txn_id``, or the active transaction's ID (FailedPrecondition if there is none)."""
        return self.transactions.transaction_id(txn_id)

    def queue_pipeline_op(self, args: dict) -> None:  # type: ignore[type-arg]
        """Queue a create/update pipeline in the current transaction (the pipeline layer
        checks it first and applies it after the transaction's PFS part)."""
        assert self.transaction is not None, "only inside a transaction"
        self.transactions.queue_pipeline_op(self.transaction, args)

    def queued_ops(self, txn_id: str, kind: str) -> list[dict]:  # type: ignore[type-arg]
        """The arguments of an open transaction's queued operations of one kind, in order."""
        return self.transactions.queued(txn_id, kind)

    def repos_deleted_by(self, txn_id: str) -> set[RepoRef]:
        """The repos an open transaction's queued ``delete repo`` operations will delete."""
        return self.transactions.repos_deleted(txn_id)

    # -- what the pipeline layer reads and does inside its own metadata transactions --------

    def resolve_commit(self, conn: Connection, ref: CommitRef) -> Row:
        return self.rows.resolve_commit(conn, ref)

    def commit_info(self, conn: Connection, row: Row) -> CommitInfo:
        return self.rows.commit_info(conn, row)

    def view(self, conn: Connection, row: Row) -> trees.Tree:
        """A commit's content (for open commits: base plus staged changes)."""
        return self.rows.view(conn, row)

    def commit_by_pk(self, conn: Connection, commit_pk: int) -> Row:
        return self.rows.commit_by_pk(conn, commit_pk)

    def parent_of(self, conn: Connection, row: Row) -> Row | None:
        return self.rows.parent_of(conn, row)

    def repo_of(self, conn: Connection, row: Row) -> Row:
        return self.rows.repo_of(conn, row)

    def newest_finished(self, conn: Connection, ref: CommitRef) -> Row | None:
        """``ref``'s commit, or its nearest finished ancestor while it is open."""
        return self.rows.newest_finished(conn, ref)

    def find_repo(self, conn: Connection, ref: RepoRef) -> Row | None:
        return self.catalog.find_repo(conn, ref)

    def find_branch(self, conn: Connection, ref: RepoRef, name: str) -> Row | None:
        return self.catalog.find_branch(conn, ref, name)

    def create_repo_in(self, conn: Connection, ref: RepoRef, description: str, now: float) -> None:
        self.catalog.create_repo_in(conn, ref, description, now)

    def check_repo_deletable(self, conn: Connection, ref: RepoRef) -> None:
        self.catalog.check_repo_deletable(conn, ref)

    def branch_upstreams(self, conn: Connection, ref: RepoRef, name: str) -> set[tuple[RepoRef, str]]:
        return self.branches.branch_upstreams(conn, ref, name)

    def detach_provenance(self, conn: Connection, ref: RepoRef, name: str) -> None:
        self.branches.detach_provenance(conn, ref, name)

    def create_branch_in(
        self, conn: Connection, ref: RepoRef, name: str, head: CommitRef | None,
        provenance: list[tuple[RepoRef, str]] | None, trigger: Trigger | None, now: float,
        set_id: str | None = None,
    ) -> None:
        self.branches.create_branch_in(conn, ref, name, head, provenance, trigger, now, set_id=set_id)

    def trigger_branch_in(self, conn: Connection, ref: RepoRef, name: str, set_id: str | None,
                          now: float) -> str:
        return self.branches.trigger_branch_in(conn, ref, name, set_id, now)

    def set_trigger_from_spec_in(self, conn: Connection, ref: RepoRef, name: str,
                                 doc: dict, now: float) -> None:  # type: ignore[type-arg]
        self.branches.set_trigger_from_spec_in(conn, ref, name, doc, now)

    # -- maintenance ------------------------------------------------------------------------

    def garbage_collect(self, wait: bool = True, grace: float | None = None,
                        timeout: float | None = None) -> GcStats:
        """Free unreferenced data. ``wait``: wait for writers (at most ``timeout`` seconds);
        ``grace``: seconds an unowned orphan is kept (default ``TUSK_GC_GRACE`` or an hour)."""
        return collect_garbage(self.b, orphan_grace=grace, wait=wait, timeout=timeout)

    def fsck(self, verify_hashes: bool = True) -> FsckReport:
        return fsck(self.b, verify_hashes)

    def close(self) -> None:
        self.b.close()
