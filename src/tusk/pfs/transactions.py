"""Transactions: batch commits and branch changes on several repos into one commit set.

``start transaction`` makes a transaction (its ID is also the commit set ID of every commit it
makes) and marks it active for the root (meta_info row ``active_transaction``). While it is
active the CLI sets ``PfsService.transaction`` for the commands a transaction covers:

* ``start commit repo@b`` creates the commit at once, with the transaction's ID, but *hidden*:
  no branch points at it yet, so nothing downstream sees it and nothing propagates. ``put
  file repo@b`` writes into that hidden commit, starting one if needed (such an implicit commit
  is finished when the transaction is). ``finish commit`` on a hidden commit finishes it right
  away (still invisible); on any other commit it is queued.
* ``create branch`` / ``delete branch`` are queued as operations (``transaction_ops``), each
  checked on arrival by replaying the whole queue in a metadata transaction that is rolled back.
* ``create repo`` is queued the same way (``repo_id`` 0; the name is in its arguments): the repo
  appears when the transaction finishes. ``delete repo`` and ``update repo`` are queued too, and happen then. Commits and branches of a repo the transaction itself
  creates must wait for that (Pachyderm's file writes are not transactional either).
* ``create pipeline`` / ``update pipeline`` are queued too (``PIPELINE_OP``), but PFS only keeps
  them: the pipeline layer checks them on arrival and applies them right after the PFS part of
  ``finish transaction``, with the transaction's ID as their commit set (``pps/txn_pipelines.py``).

``finish transaction`` applies everything in ONE metadata transaction: each hidden commit
becomes its branch's head by compare-and-set (an open one is re-parented if the branch moved
meanwhile; a finished one whose branch moved is a Conflict and nothing is applied), queued
operations run in order, implicit commits are finished, and then every moved branch propagates
downstream *together* in the transaction's commit set, so a pipeline reading two of them gets
exactly one job. As in pachctl, ``stop transaction`` only makes the transaction inactive (it
stays open and listed; ``resume transaction <id>`` makes it active again, ``finish transaction
<id>`` applies it), and ``delete transaction`` drops it with its hidden commits and queued
operations in one metadata transaction. Crash safety follows: every step is a single
metadata transaction, a crash leaves at most an open transaction that can be finished or
deleted, and data written for it before a delete is unreferenced and collected by gc.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, delete, func, select, update

from tusk.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound
from tusk.pfs.branches import Branches
from tusk.pfs.catalog import Catalog
from tusk.pfs.commit_rows import FINISHED, OPEN, USER, CommitRows, new_id
from tusk.pfs.model import CommitInfo, iso
from tusk.pfs.refs import CommitRef, RepoRef, parse_commit
from tusk.pfs.triggers import Trigger
from tusk.storage import schema as s
from tusk.storage.backend import Backend

ACTIVE_KEY = "active_transaction"
PIPELINE_OP = "create_pipeline"  # kept here, applied by the pipeline layer after finish


@dataclass(frozen=True)
class TransactionInfo:
    id: str
    state: str  # OPEN | FINISHED
    created_at: float
    finished_at: float | None
    active: bool
    ops: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "active": self.active,
                "created_at": iso(self.created_at), "finished_at": iso(self.finished_at),
                "ops": list(self.ops)}


class _DryRun(Exception):
    """Raised to roll back a replay that only checked the queue."""


class Transactions:
    """The transactions of one root (held by ``PfsService`` as ``transactions``)."""

    def __init__(self, b: Backend, catalog: Catalog, rows: CommitRows, branches: Branches) -> None:
        self.b = b
        self.catalog = catalog
        self.rows = rows
        self.branches = branches

    def active_transaction(self) -> str | None:
        """The root's active transaction, if it is still open."""
        with self.b.db.read() as conn:
            tid = _active(conn)
            if tid is None:
                return None
            row = conn.execute(select(s.transactions).where(s.transactions.c.id == tid)).first()
            return tid if row is not None and row.state == "open" else None

    def start_transaction(self) -> TransactionInfo:
        now = time.time()
        with self.b.db.tx() as conn:
            tid = _active(conn)
            if tid is not None:
                row = conn.execute(select(s.transactions).where(s.transactions.c.id == tid)).first()
                if row is not None and row.state == "open":
                    raise FailedPrecondition(
                        f"transaction {tid} is already active; finish it ('tusk finish transaction')"
                        " or stop it ('tusk stop transaction') first"
                    )
            tid = new_id()
            conn.execute(s.transactions.insert().values(id=tid, state="open", created_at=now,
                                                        finished_at=None))
            _set_active(conn, tid)
        return self.inspect_transaction(tid)

    def finish_transaction(self, txn_id: str | None = None, pipelines_follow: bool = False) -> TransactionInfo:
        """Apply a transaction atomically (see the module docstring). A transaction holding
        pipeline changes is finished by ``PpsService.finish_transaction``, which applies them
        after this (``pipelines_follow``)."""
        tid = self.transaction_id(txn_id)
        now = time.time()
        with self.b.db.tx() as conn:
            _open_txn(conn, tid)
            ops = _ops(conn, tid)
            if not pipelines_follow and any(op["kind"] == PIPELINE_OP for op in ops):
                raise FailedPrecondition(
                    f"transaction {tid} holds pipeline changes; finish it with the pipeline"
                    " service ('tusk finish transaction', PpsService.finish_transaction)")
            _apply(self, conn, tid, ops, now)
            conn.execute(update(s.transactions).where(s.transactions.c.id == tid).values(
                state="finished", finished_at=now))
            if _active(conn) == tid:
                _set_active(conn, None)
        self.branches.fire_due_triggers()
        return self.inspect_transaction(tid)

    def stop_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        """Stop adding to the active transaction, as pachctl's 'stop transaction' does: it is
        no longer active, but stays open with everything it holds, to be resumed ('resume
        transaction <id>'), finished ('finish transaction <id>') or deleted later."""
        with self.b.db.tx() as conn:
            active = _active(conn)
            if active is None or conn.execute(select(s.transactions.c.state).where(
                    s.transactions.c.id == active)).scalar() != "open":
                raise FailedPrecondition(
                    "no active transaction; start one with 'tusk start transaction'")
            if txn_id and txn_id != active:
                _open_txn(conn, txn_id)  # a clear "not found" / "already finished" first
                raise FailedPrecondition(
                    f"transaction {txn_id} is not the active one ({active} is); nothing to stop")
            _set_active(conn, None)
        return self.inspect_transaction(active)

    def delete_transaction(self, txn_id: str | None = None) -> str:
        """Drop an open transaction: its hidden commits and queued operations vanish."""
        tid = self.transaction_id(txn_id)
        with self.b.db.tx() as conn:
            _open_txn(conn, tid)
            op = s.transaction_ops
            pks = list(conn.execute(select(op.c.commit_pk).where(
                op.c.txn_id == tid, op.c.kind == "commit")).scalars())
            if pks:
                # Hidden commits are reachable from nothing, unless someone named one as an
                # explicit parent or head meanwhile; then dropping it would dangle that ref.
                kid = conn.execute(select(s.commits.c.commit_id).where(
                    s.commits.c.parent_id.in_(pks), s.commits.c.id.not_in(pks))).first()
                head = conn.execute(select(s.branches.c.name).where(s.branches.c.head_id.in_(pks))).first()
                if kid is not None or head is not None:
                    raise FailedPrecondition(
                        f"cannot stop transaction {tid}: its commit is already used by"
                        f" {'commit ' + kid[0] if kid is not None else 'branch ' + head[0]};"
                        " finish the transaction instead"
                    )
                self.rows.drop_rows(conn, set(pks))
            conn.execute(delete(op).where(op.c.txn_id == tid))
            conn.execute(delete(s.transactions).where(s.transactions.c.id == tid))
            if _active(conn) == tid:
                _set_active(conn, None)
        return tid

    def resume_transaction(self, txn_id: str) -> TransactionInfo:
        """Make an open transaction the active one again."""
        with self.b.db.tx() as conn:
            _open_txn(conn, txn_id)
            _set_active(conn, txn_id)
        return self.inspect_transaction(txn_id)

    def inspect_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        tid = self.transaction_id(txn_id)
        with self.b.db.read() as conn:
            row = conn.execute(select(s.transactions).where(s.transactions.c.id == tid)).first()
            if row is None:
                raise NotFound(f"transaction {tid} not found")
            return _info(conn, row, _active(conn))

    def list_transactions(self) -> list[TransactionInfo]:
        with self.b.db.read() as conn:
            active = _active(conn)
            rows = conn.execute(select(s.transactions).order_by(s.transactions.c.created_at.desc())).all()
            return [_info(conn, r, active) for r in rows]

    def transaction_id(self, txn_id: str | None) -> str:
        if txn_id:
            return txn_id
        with self.b.db.read() as conn:
            tid = _active(conn)
        if tid is None:
            raise FailedPrecondition("no active transaction; start one with 'tusk start transaction'")
        return tid

    def start_commit(self, tid: str, ref: RepoRef, branch: str, parent: CommitRef | None,
                     description: str) -> CommitInfo:
        """A hidden commit in the transaction: created now, made the branch head at finish."""
        now = time.time()
        with self.b.db.tx() as conn:
            _open_txn(conn, tid)
            repo = _repo_for(conn, self, tid, ref)
            _check_free(conn, self, tid, repo, ref, branch)
            expect = _writable_head(conn, self, repo, ref, branch)
            parent_pk = expect
            if parent is not None:
                prow = self.rows.resolve_commit(conn, parent)
                if prow.repo_id != repo.id:
                    raise InvalidArgument(f"parent {parent} is not a commit of repo {ref}")
                if prow.state == OPEN:
                    raise FailedPrecondition(
                        f"parent commit {ref}@{prow.commit_id} has not been finished; finish it first")
                parent_pk = prow.id
            pk = _hidden_commit(conn, self, tid, repo.id, branch, parent_pk, expect, description, now,
                                auto_finish=False)
            return self.rows.commit_info(conn, conn.execute(select(s.commits).where(s.commits.c.id == pk)).one())


    def finish_commit(self, tid: str, ref: CommitRef, description: str | None, error: str) -> CommitInfo:
        """Finish a hidden commit now (nobody sees it yet); queue the finish of any other."""
        with self.b.db.tx() as conn:
            _open_txn(conn, tid)
            row = _hidden_for(conn, self, tid, ref) or self.rows.resolve_commit(conn, ref)
            if row.state == FINISHED:
                raise FailedPrecondition(f"commit {ref.repo}@{row.commit_id} is already finished")
            if row.commit_id == tid:
                self.rows.finish_row(conn, row, description, error)
            else:
                _add_op(conn, tid, "finish", row.repo_id, row.branch, row.id, None,
                        {"description": description, "error": error})
            return self.rows.commit_info(conn, conn.execute(select(s.commits).where(s.commits.c.id == row.id)).one())


    def commit_ref_for_write(self, tid: str, ref: CommitRef) -> CommitRef:
        """Where a file write to ``ref`` goes inside the transaction: the transaction's hidden commit
        on that branch, started (and finished with the transaction) if there is none yet."""
        if ref.commit_id is not None or ref.ancestors or ref.index is not None:
            return ref  # an explicit commit: written as usual
        branch = ref.branch or "master"
        with self.b.db.tx() as conn:
            _open_txn(conn, tid)
            repo = _repo_for(conn, self, tid, ref.repo)
            existing = _hidden_for(conn, self, tid, ref)
            if existing is not None:
                return CommitRef(ref.repo, None, tid)
            br = self.catalog.branch_row(conn, repo.id, branch)
            if br is not None:
                head = conn.execute(select(s.commits).where(s.commits.c.id == br.head_id)).one()
                if head.state == OPEN:
                    return ref  # a commit started before the transaction: write into it, as always
            _check_free(conn, self, tid, repo, ref.repo, branch)
            expect = _writable_head(conn, self, repo, ref.repo, branch)
            _hidden_commit(conn, self, tid, repo.id, branch, expect, expect, "", time.time(),
                           auto_finish=True)
            return CommitRef(ref.repo, None, tid)


    def queue_create_repo(self, tid: str, ref: RepoRef, description: str) -> None:
        """Queue a create repo (``repo_id`` 0: it has none yet), checked against the repos and the
        queue so far."""
        _queue(self, tid, "create_repo", 0, None,
               {"project": ref.project, "name": ref.repo, "description": description})


    def queue_delete_repo(self, tid: str, ref: RepoRef, force: bool) -> None:
        """Queue a delete repo, after checking it against the queue so far."""
        self.queue_repo_op(tid, "delete_repo", ref, None, {"force": force})


    def queue_update_repo(self, tid: str, ref: RepoRef, description: str) -> None:
        """Queue a repo's new description, after checking it against the queue so far."""
        self.queue_repo_op(tid, "update_repo", ref, None, {"description": description})

    def queue_create_branch(self, tid: str, ref: RepoRef, name: str, head: CommitRef | None,
                            provenance: list[tuple[RepoRef, str]] | None, trigger: Trigger | None) -> None:
        """Queue a create branch, after checking it against the queue so far."""
        self.queue_repo_op(tid, "create_branch", ref, name, {
            "head": None if head is None else str(head),
            "provenance": None if provenance is None else [
                [r.project, r.repo, b] for r, b in provenance],
            "trigger": None if trigger is None else trigger.to_dict(),
        })

    def queue_delete_branch(self, tid: str, ref: RepoRef, name: str, force: bool) -> None:
        """Queue a delete branch, after checking it against the queue so far."""
        self.queue_repo_op(tid, "delete_branch", ref, name, {"force": force})


    def queue_pipeline_op(self, tid: str, args: dict[str, Any]) -> None:
        """Queue a create/update pipeline. PFS only keeps it: the pipeline layer checks it before
        queuing and applies it after ``finish_transaction`` (``pps/txn_pipelines.py``)."""
        _queue(self, tid, PIPELINE_OP, 0, None, args)


    def queued(self, tid: str, kind: str) -> list[dict[str, Any]]:
        """The arguments of an open transaction's queued operations of one kind, in order."""
        with self.b.db.read() as conn:
            _open_txn(conn, tid)
            return [json.loads(op["args"] or "{}") for op in _ops(conn, tid) if op["kind"] == kind]


    def repos_deleted(self, tid: str) -> set[RepoRef]:
        """The repos an open transaction's queued ``delete repo`` operations will delete."""
        with self.b.db.read() as conn:
            _open_txn(conn, tid)
            ids = [op["repo_id"] for op in _ops(conn, tid) if op["kind"] == "delete_repo"]
            rows = conn.execute(select(s.repos.c.project, s.repos.c.name).where(s.repos.c.id.in_(ids)))
            return {RepoRef(r.project, r.name) for r in rows}


    def queue_repo_op(self, tid: str, kind: str, ref: RepoRef, branch: str | None,
                      args: dict[str, Any]) -> None:
        """Queue an operation on an existing repo (or one of its branches), after checking it
        against the queue so far."""
        with self.b.db.read() as conn:
            _open_txn(conn, tid)
            repo_id = _repo_for(conn, self, tid, ref).id
        _queue(self, tid, kind, repo_id, branch, args)


# -- internals ----------------------------------------------------------------------------------


def _queue(t: Transactions, tid: str, kind: str, repo_id: int, branch: str | None,
           args: dict[str, Any]) -> None:
    """Add an operation to the queue once replaying the whole queue with it succeeds (in a
    metadata transaction that is rolled back), so a bad one is refused on arrival."""
    op = {"kind": kind, "repo_id": repo_id, "branch": branch, "commit_pk": None,
          "expect_pk": None, "args": json.dumps(args)}
    try:
        with t.b.db.tx() as conn:
            _open_txn(conn, tid)
            _apply(t, conn, tid, [*_ops(conn, tid), op], time.time(), dry=True)
            raise _DryRun
    except _DryRun:
        pass
    with t.b.db.tx() as conn:
        _open_txn(conn, tid)
        _add_op(conn, tid, kind, repo_id, branch, None, None, args)


def _repo_for(conn: Connection, t: Transactions, tid: str, ref: RepoRef) -> Row:
    """The repo's row; a repo this transaction is still to create gets a clear refusal."""
    try:
        return t.catalog.repo_row(conn, ref)
    except NotFound:
        for op in _ops(conn, tid):
            args = json.loads(op["args"] or "{}")
            creates = op["kind"] == "create_repo" or (op["kind"] == PIPELINE_OP and not args.get("update"))
            if creates and (args["project"], args["name"]) == (ref.project, ref.repo):
                raise FailedPrecondition(
                    f"repo {ref} is created when transaction {tid} finishes; finish it"
                    " ('tusk finish transaction'), then commit to the repo") from None
        raise


def _active(conn: Connection) -> str | None:
    m = s.meta_info
    return conn.execute(select(m.c.value).where(m.c.key == ACTIVE_KEY)).scalar() or None


def _set_active(conn: Connection, tid: str | None) -> None:
    m = s.meta_info
    conn.execute(delete(m).where(m.c.key == ACTIVE_KEY))
    if tid is not None:
        conn.execute(m.insert().values(key=ACTIVE_KEY, value=tid))


def _open_txn(conn: Connection, tid: str) -> Row:
    row = conn.execute(select(s.transactions).where(s.transactions.c.id == tid)).first()
    if row is None:
        raise NotFound(f"transaction {tid} not found; 'tusk list transaction' shows the open ones")
    if row.state != "open":
        raise FailedPrecondition(f"transaction {tid} is already finished")
    return row


def _ops(conn: Connection, tid: str) -> list[dict[str, Any]]:
    op = s.transaction_ops
    rows = conn.execute(select(op).where(op.c.txn_id == tid).order_by(op.c.seq)).all()
    return [dict(r._mapping) for r in rows]


def _add_op(conn: Connection, tid: str, kind: str, repo_id: int, branch: str | None,
            commit_pk: int | None, expect_pk: int | None, args: dict[str, Any]) -> None:
    op = s.transaction_ops
    seq = (conn.execute(select(func.max(op.c.seq)).where(op.c.txn_id == tid)).scalar() or 0) + 1
    conn.execute(op.insert().values(txn_id=tid, seq=seq, kind=kind, repo_id=repo_id, branch=branch,
                                    commit_pk=commit_pk, expect_pk=expect_pk, args=json.dumps(args)))


def _hidden_for(conn: Connection, t: Transactions, tid: str, ref: CommitRef) -> Row | None:
    """The transaction's commit on a plain ``repo@branch`` ref, if it has one."""
    if ref.commit_id is not None or ref.ancestors or ref.index is not None:
        return None
    repo = t.catalog.repo_row(conn, ref.repo)
    c = s.commits
    row = conn.execute(select(c).where(c.c.repo_id == repo.id, c.c.commit_id == tid)).first()
    if row is None or row.branch != (ref.branch or "master"):
        return None
    return row


def _check_free(conn: Connection, t: Transactions, tid: str, repo: Row, ref: RepoRef, branch: str) -> None:
    """One commit set holds at most one commit per repo (they share the ID)."""
    c = s.commits
    row = conn.execute(select(c).where(c.c.repo_id == repo.id, c.c.commit_id == tid)).first()
    if row is None:
        return
    if row.branch == branch:
        raise FailedPrecondition(
            f"transaction {tid} already has a commit on {ref}@{branch}; write into it or finish it"
        )
    raise FailedPrecondition(
        f"transaction {tid} already has a commit in repo {ref} (on {row.branch}); a commit set"
        " holds one commit per repo"
    )


def _writable_head(conn: Connection, t: Transactions, repo: Row, ref: RepoRef, branch: str) -> int | None:
    """The branch head a user commit would build on (None: new branch), with start commit's rules."""
    br = t.catalog.branch_row(conn, repo.id, branch)
    if br is None:
        return None
    if t.branches.upstream_ids(conn, br.id):
        raise FailedPrecondition(
            f"cannot start a commit on {ref}@{branch}: it has provenance, so its commits are made"
            " by propagation"
        )
    head = conn.execute(select(s.commits).where(s.commits.c.id == br.head_id)).one()
    if head.state == OPEN:
        raise FailedPrecondition(
            f"{ref}@{branch} already has an open commit ({head.commit_id}); finish it first"
        )
    return int(br.head_id)


def _hidden_commit(conn: Connection, t: Transactions, tid: str, repo_id: int, branch: str,
                   parent_pk: int | None, expect: int | None, description: str, now: float,
                   auto_finish: bool) -> int:
    pk = t.rows.new_commit(conn, repo_id, branch, parent_pk, USER, tid, now, finished=False,
                         description=description)
    _add_op(conn, tid, "commit", repo_id, branch, pk, expect, {"auto_finish": auto_finish})
    return pk


def _repo_ref(conn: Connection, repo_id: int) -> RepoRef:
    r = conn.execute(select(s.repos).where(s.repos.c.id == repo_id)).one()
    return RepoRef(r.project, r.name)


def _apply(t: Transactions, conn: Connection, tid: str, ops: list[dict[str, Any]], now: float,
           dry: bool = False) -> None:
    """Apply a transaction's operations in ``conn`` (``dry``: only as far as checking needs)."""
    c = s.commits
    moved: list[int] = []
    for op in ops:
        args = json.loads(op["args"] or "{}")
        kind = op["kind"]
        if kind == "create_repo":
            ref = RepoRef(args["project"], args["name"])
            t.catalog.project_row(conn, ref.project)
            if t.catalog.find_repo(conn, ref) is not None:
                raise (AlreadyExists(f"repo {ref} already exists") if dry else Conflict(
                    f"repo {ref} was created while transaction {tid} was open; stop the"
                    " transaction ('tusk stop transaction') and start again"))
            t.catalog.insert_repo(conn, ref, args.get("description", ""), now)
        elif kind == "delete_repo":
            repo = conn.execute(select(s.repos).where(s.repos.c.id == op["repo_id"])).first()
            if repo is None:
                continue  # deleted meanwhile by someone else: nothing left to do
            t.catalog.check_no_outside_subvenance(conn, repo, bool(args.get("force")))
            gone = set(conn.execute(select(s.branches.c.id).where(
                s.branches.c.repo_id == repo.id)).scalars())
            t.catalog.delete_repo_rows(conn, repo.id)
            moved = [m for m in moved if m not in gone]
        elif kind == "update_repo":
            repo = conn.execute(select(s.repos).where(s.repos.c.id == op["repo_id"])).first()
            if repo is None:
                raise (FailedPrecondition("this transaction deletes that repo before it would"
                                          " change its description") if dry else Conflict(
                    f"a repo this transaction describes was deleted while transaction {tid} was"
                    " open; stop it ('tusk stop transaction') and start again"))
            conn.execute(update(s.repos).where(s.repos.c.id == repo.id).values(
                description=args.get("description", "")))
        elif kind == "commit":
            moved.append(_place_commit(conn, t, tid, op, now))
        elif kind == "finish":
            row = conn.execute(select(c).where(c.c.id == op["commit_pk"])).first()
            if row is not None and row.state == OPEN and not dry:
                t.rows.finish_row(conn, row, args.get("description"), args.get("error") or "")
        elif kind == "create_branch":
            ref = _repo_ref(conn, op["repo_id"])
            head = None if args.get("head") is None else parse_commit(args["head"], ref.project)
            prov = None if args.get("provenance") is None else [
                (RepoRef(p, r), b) for p, r, b in args["provenance"]]
            trig = None if args.get("trigger") is None else Trigger(**args["trigger"])
            t.branches.create_branch_in(conn, ref, op["branch"], head, prov, trig, now, set_id=tid,
                                  moved=moved)
        elif kind == "delete_branch":
            gone = t.branches.delete_branch_in(conn, _repo_ref(conn, op["repo_id"]), op["branch"],
                                         bool(args.get("force")))
            moved = [m for m in moved if m != gone]
    if dry:
        return
    for op in ops:  # implicit commits (file writes) end with the transaction, like a put file's
        if op["kind"] == "commit" and json.loads(op["args"] or "{}").get("auto_finish"):
            row = conn.execute(select(c).where(c.c.id == op["commit_pk"])).one()
            if row.state == OPEN:
                t.rows.finish_row(conn, row, None, "")
    t.branches.propagate(conn, moved, tid, now)


def _place_commit(conn: Connection, t: Transactions, tid: str, op: dict[str, Any], now: float) -> int:
    """Make a hidden commit its branch's head (compare-and-set); returns the branch id."""
    c = s.commits
    row = conn.execute(select(c).where(c.c.id == op["commit_pk"])).first()
    ref = _repo_ref(conn, op["repo_id"])
    label = f"{ref}@{op['branch']}"
    if row is None:
        raise Conflict(f"commit {ref}@{tid} of this transaction was deleted; stop the transaction")
    br = t.catalog.branch_row(conn, op["repo_id"], op["branch"])
    if br is None:
        if op["expect_pk"] is not None:
            raise Conflict(f"branch {label} was deleted while transaction {tid} was open; stop it"
                           " ('tusk stop transaction') and start again")
        return int(conn.execute(s.branches.insert().values(
            repo_id=op["repo_id"], name=op["branch"], head_id=row.id, created_at=now,
            updated_at=now)).inserted_primary_key[0])
    if br.head_id != op["expect_pk"]:
        # The branch moved since the commit was started. An open commit holds only staged
        # changes, so it can sit on the new head as if started now; a finished one was built
        # on the old head and would silently drop what landed meanwhile.
        head = conn.execute(select(c).where(c.c.id == br.head_id)).one()
        if row.state != OPEN or row.parent_id != op["expect_pk"] or head.state != FINISHED:
            raise Conflict(f"branch {label} moved while transaction {tid} was open; stop it"
                           " ('tusk stop transaction') and start again")
        conn.execute(update(c).where(c.c.id == row.id).values(parent_id=br.head_id))
    t.rows.move_head(conn, br.id, br.head_id, row.id, now)
    return int(br.id)


def _info(conn: Connection, row: Row, active: str | None) -> TransactionInfo:
    ops: list[dict[str, Any]] = []
    c = s.commits
    for op in _ops(conn, row.id):
        args = json.loads(op["args"] or "{}")
        repo = conn.execute(select(s.repos).where(s.repos.c.id == op["repo_id"])).first()
        name = "?" if repo is None else str(RepoRef(repo.project, repo.name))
        if op["kind"] in ("create_repo", PIPELINE_OP):
            name = str(RepoRef(args["project"], args["name"]))
        item: dict[str, Any] = {"op": op["kind"], "repo": name, "branch": op["branch"]}
        if op["commit_pk"] is not None:
            crow = conn.execute(select(c.c.commit_id, c.c.state).where(c.c.id == op["commit_pk"])).first()
            if crow is not None:
                item["commit"] = crow.commit_id
                item["commit_state"] = "FINISHED" if crow.state == FINISHED else "STARTED"
        if op["kind"] == "commit":
            item["op"] = "put_file" if args.get("auto_finish") else "start_commit"
        elif op["kind"] == "finish":
            item["op"] = "finish_commit"
        elif op["kind"] == "create_repo":
            item["description"] = args.get("description") or None
            item = {k: v for k, v in item.items() if v is not None}
        elif op["kind"] == PIPELINE_OP:  # the repo is the pipeline's output repo
            item = {"op": "update_pipeline" if args.get("update") else "create_pipeline", "repo": name}
            if args.get("reprocess"):
                item["reprocess"] = True
        else:
            item.update({k: v for k, v in args.items() if v not in (None, False)})
        ops.append(item)
    return TransactionInfo(row.id, row.state.upper(), row.created_at, row.finished_at,
                           row.id == active and row.state == "open", tuple(ops))


def describe_op(op: dict[str, Any]) -> str:
    """One line for 'inspect transaction'."""
    text = f"{op['op'].replace('_', ' ')} {op['repo']}" + (f"@{op['branch']}" if op.get("branch") else "")
    if "commit" in op:
        text += f" ({op['commit']}, {op['commit_state']})"
    extras = [f"{k}={v}" for k, v in op.items()
              if k not in ("op", "repo", "branch", "commit", "commit_state")]
    return text + (f" [{', '.join(extras)}]" if extras else "")
