"""Branches: creating, re-wiring and deleting them, their provenance, and propagation.

A branch head is the only mutable ref; it moves by compare-and-set (``CommitRows.move_head``).
A branch with provenance gets its commits by propagation: when an upstream head moves, every
branch downstream of it gets one new open commit in the same commit set (one global ID), and
the triggers following the moved branches are evaluated (``triggers.py``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

from sqlalchemy import Connection, Row, delete, select

from tusk.errors import FailedPrecondition, InvalidArgument, NotFound
from tusk.pfs.catalog import Catalog
from tusk.pfs.commit_rows import AUTO, USER, CommitRows, new_id
from tusk.pfs.model import BranchInfo
from tusk.pfs.names import check_branch_name
from tusk.pfs.refs import CommitRef, RepoRef
from tusk.pfs.triggers import Trigger, fire_for_sources, set_trigger, trigger_of
from tusk.storage import schema as s
from tusk.storage.backend import Backend


class Branches:
    """The branches of one root (held by ``PfsService`` as ``branches``)."""

    def __init__(self, b: Backend, catalog: Catalog, rows: CommitRows) -> None:
        self.b = b
        self.catalog = catalog
        self.rows = rows

    def create_branch(
        self,
        ref: RepoRef,
        name: str,
        head: CommitRef | None = None,
        provenance: list[tuple[RepoRef, str]] | None = None,
        trigger: Trigger | None = None,
        set_id: str | None = None,
    ) -> BranchInfo:
        """Create a branch, or move / re-wire an existing one. ``set_id``: the commit set a new
        head commit joins (a pipeline created by a finished transaction)."""
        check_branch_name(name)
        if trigger is not None:
            trigger.validate()
        with self.b.db.tx() as conn:
            self.create_branch_in(conn, ref, name, head, provenance, trigger, time.time(),
                                   set_id=set_id)
        return self.inspect_branch(ref, name)

    def create_branch_in(
        self, conn: Connection, ref: RepoRef, name: str, head: CommitRef | None,
        provenance: list[tuple[RepoRef, str]] | None, trigger: Trigger | None, now: float,
        set_id: str | None = None, moved: list[int] | None = None,
    ) -> None:
        """``create_branch`` in the caller's transaction. When a transaction is being applied,
        ``moved`` collects the branches whose head moved (propagated later, once, in commit set
        ``set_id``) instead of propagating each move on its own."""
        repo = self.catalog.repo_row(conn, ref)
        branch = self.catalog.branch_row(conn, repo.id, name)
        ups: list[Row] = []
        for up_repo, up_branch in provenance or []:
            ur = self.catalog.repo_row(conn, up_repo)
            if ur.id == repo.id:
                raise InvalidArgument(
                    f"branch {ref}@{name} cannot have provenance in its own repo ({up_repo}@{up_branch})"
                )
            ub = self.catalog.branch_row(conn, ur.id, up_branch)
            if ub is None:
                raise NotFound(f"branch {up_repo}@{up_branch} not found; create it first")
            if branch is not None and branch.id in self._upstream_closure(conn, ub.id):
                raise InvalidArgument(f"provenance {up_repo}@{up_branch} would create a cycle")
            ups.append(ub)
        self._check_trigger(conn, ref, repo.id, name, branch, ups, provenance, trigger)
        head_row = self.rows.resolve_commit(conn, head) if head is not None else None
        if head_row is not None and head_row.repo_id != repo.id:
            raise InvalidArgument(f"--head {head} is not a commit of repo {ref}")
        if branch is None and head_row is None and trigger is not None:
            # A new triggered branch starts where its source is, so its conditions count what
            # arrives from now on (an unrelated empty head would make all history "new").
            source = self.catalog.branch_row(conn, repo.id, trigger.branch)
            if source is not None:
                head_row = conn.execute(select(s.commits).where(s.commits.c.id == source.head_id)).one()
        if branch is None:
            if head_row is None:
                head_pk = self.rows.new_commit(
                    conn, repo.id, name, None, AUTO if ups else USER,
                    self.rows.set_id_for(conn, repo.id, set_id), now, finished=not ups,
                )
            else:
                head_pk = head_row.id
            bid = conn.execute(
                s.branches.insert().values(
                    repo_id=repo.id, name=name, head_id=head_pk, created_at=now, updated_at=now
                )
            ).inserted_primary_key[0]
            self.set_provenance(conn, bid, ups)
            if head_row is None:
                self.record_commit_provenance(conn, bid, head_pk)
        else:
            bid = branch.id
            changed_prov = provenance is not None and {u.id for u in ups} != set(
                self.upstream_ids(conn, bid)
            )
            if provenance is not None:
                self.set_provenance(conn, bid, ups)
            if head_row is not None:
                self.rows.move_head(conn, bid, branch.head_id, head_row.id, now)
                if moved is not None:
                    moved.append(bid)
                else:
                    self.propagate(conn, bid, new_id(), now)
            elif changed_prov and ups:
                # New upstreams give the branch a new head commit on their heads (a pipeline
                # started or re-wired: its next job). That commit is a new head like any other,
                # so it propagates downstream too. (Provenance dropped makes no commit: nothing
                # would ever finish it.)
                cid = self.rows.set_id_for(conn, repo.id, set_id)
                pk = self.rows.new_commit(conn, repo.id, name, branch.head_id, AUTO, cid, now, finished=False)
                self.rows.move_head(conn, bid, branch.head_id, pk, now)
                self.record_commit_provenance(conn, bid, pk)
                if moved is not None:
                    moved.append(bid)
                else:
                    self.propagate(conn, bid, cid, now)
        if trigger is not None:
            set_trigger(conn, bid, repo.id, trigger, now)

    def _check_trigger(
        self, conn: Connection, ref: RepoRef, repo_id: int, name: str, branch: Row | None,
        ups: list[Row], provenance: list[tuple[RepoRef, str]] | None, trigger: Trigger | None,
    ) -> None:
        """A branch has provenance or a trigger, never both; triggers follow an existing branch
        of the same repo and never form a loop."""
        has_ups = bool(ups) if provenance is not None else (
            branch is not None and bool(self.upstream_ids(conn, branch.id)))
        if trigger is None:
            if ups and branch is not None and trigger_of(conn, branch.id) is not None:
                raise InvalidArgument(
                    f"branch {ref}@{name} has a trigger, so it cannot also have provenance"
                )
            return
        if has_ups:
            raise InvalidArgument(
                f"branch {ref}@{name} has provenance, so it cannot also have a trigger"
            )
        if trigger.branch == name:
            raise InvalidArgument(f"branch {ref}@{name} cannot trigger on itself")
        source = self.catalog.branch_row(conn, repo_id, trigger.branch)
        if source is None:
            raise NotFound(
                f"trigger branch {ref}@{trigger.branch} not found; create it first"
                f" ('tusk create branch {ref}@{trigger.branch}')"
            )
        seen = {name}
        step: Row | None = source
        while step is not None:
            if step.name in seen:
                raise InvalidArgument(
                    f"a trigger on {ref}@{name} following {trigger.branch} would form a loop"
                )
            seen.add(step.name)
            upstream = trigger_of(conn, step.id)
            step = None if upstream is None else self.catalog.branch_row(conn, repo_id, upstream.branch)

    def set_trigger_from_spec(self, ref: RepoRef, name: str, doc: dict) -> None:  # type: ignore[type-arg]
        """A pipeline input's ``trigger``: ``name`` follows ``trigger.branch``, which is created
        (empty) if the repo does not have it yet so the pipeline can be made before the data."""
        with self.b.db.tx() as conn:
            self.set_trigger_from_spec_in(conn, ref, name, doc, time.time())

    def set_trigger_from_spec_in(self, conn: Connection, ref: RepoRef, name: str,
                                  doc: dict, now: float) -> None:  # type: ignore[type-arg]
        """``set_trigger_from_spec`` in the caller's transaction (a pipeline being created)."""
        trigger = Trigger.from_spec(doc)
        trigger.validate()
        repo = self.catalog.repo_row(conn, ref)
        if self.catalog.branch_row(conn, repo.id, trigger.branch) is None:
            self.create_branch_in(conn, ref, trigger.branch, None, None, None, now)
        self.create_branch_in(conn, ref, name, None, None, trigger, now)

    def inspect_branch(self, ref: RepoRef, name: str) -> BranchInfo:
        with self.b.db.read() as conn:
            repo = self.catalog.repo_row(conn, ref)
            br = self.catalog.branch_row(conn, repo.id, name)
            if br is None:
                raise NotFound(f"branch {ref}@{name} not found")
            return self._branch_info(conn, ref, br)

    def list_branches(self, ref: RepoRef) -> list[BranchInfo]:
        with self.b.db.read() as conn:
            repo = self.catalog.repo_row(conn, ref)
            rows = conn.execute(
                select(s.branches).where(s.branches.c.repo_id == repo.id)
                .order_by(s.branches.c.updated_at.desc(), s.branches.c.name)
            ).all()
            return [self._branch_info(conn, ref, br) for br in rows]

    def delete_branch(self, ref: RepoRef, name: str, force: bool = False) -> None:
        check_branch_name(name)
        with self.b.db.tx() as conn:
            self.delete_branch_in(conn, ref, name, force)

    def delete_branch_in(self, conn: Connection, ref: RepoRef, name: str, force: bool) -> int:
        repo = self.catalog.repo_row(conn, ref)
        br = self.catalog.branch_row(conn, repo.id, name)
        if br is None:
            raise NotFound(f"branch {ref}@{name} not found")
        bp = s.branch_provenance
        downs = conn.execute(select(bp.c.branch_id).where(bp.c.upstream_id == br.id)).scalars().all()
        if downs and not force:
            down = self.catalog.branch_label(conn, downs[0])
            raise FailedPrecondition(
                f"branch {ref}@{name} is provenance of {down}; delete that first or use --force"
            )
        conn.execute(delete(bp).where((bp.c.branch_id == br.id) | (bp.c.upstream_id == br.id)))
        conn.execute(delete(s.branch_triggers).where(s.branch_triggers.c.branch_id == br.id))
        conn.execute(delete(s.branches).where(s.branches.c.id == br.id))
        return int(br.id)

    def branch_upstreams(self, conn: Connection, ref: RepoRef, name: str) -> set[tuple[RepoRef, str]]:
        """The (repo, branch) pairs branch ``ref@name`` has as provenance (none if it does not
        exist)."""
        br = self.catalog.find_branch(conn, ref, name)
        if br is None:
            return set()
        ups = self.upstream_ids(conn, br.id)
        if not ups:
            return set()
        rows = conn.execute(
            select(s.repos.c.project, s.repos.c.name, s.branches.c.name)
            .select_from(s.branches.join(s.repos, s.branches.c.repo_id == s.repos.c.id))
            .where(s.branches.c.id.in_(ups))).all()
        return {(RepoRef(p, r), b) for p, r, b in rows}

    def detach_provenance(self, conn: Connection, ref: RepoRef, name: str) -> None:
        """Drop branch ``ref@name``'s provenance without a new commit, in the caller's
        transaction (a stopped pipeline: its inputs no longer make output commits)."""
        br = self.catalog.find_branch(conn, ref, name)
        if br is not None:
            self.set_provenance(conn, br.id, [])

    def _branch_info(self, conn: Connection, ref: RepoRef, br: Row) -> BranchInfo:
        bp = s.branch_provenance
        ups = conn.execute(select(bp.c.upstream_id).where(bp.c.branch_id == br.id)).scalars().all()
        downs = conn.execute(select(bp.c.branch_id).where(bp.c.upstream_id == br.id)).scalars().all()
        head = conn.execute(select(s.commits.c.commit_id).where(s.commits.c.id == br.head_id)).scalar()
        trig = trigger_of(conn, br.id)
        return BranchInfo(
            ref.project, ref.repo, br.name, head or "",
            tuple(sorted(self.catalog.branch_label(conn, u) for u in ups)),
            tuple(sorted(self.catalog.branch_label(conn, d) for d in downs)),
            br.created_at, br.updated_at, None if trig is None else trig.to_dict(),
        )

    def upstream_ids(self, conn: Connection, branch_id: int) -> list[int]:
        bp = s.branch_provenance
        return list(conn.execute(select(bp.c.upstream_id).where(bp.c.branch_id == branch_id)).scalars())

    def _upstream_closure(self, conn: Connection, branch_id: int) -> set[int]:
        seen: set[int] = {branch_id}
        todo = [branch_id]
        while todo:
            for u in self.upstream_ids(conn, todo.pop()):
                if u not in seen:
                    seen.add(u)
                    todo.append(u)
        return seen

    def set_provenance(self, conn: Connection, branch_id: int, ups: list[Row]) -> None:
        bp = s.branch_provenance
        conn.execute(delete(bp).where(bp.c.branch_id == branch_id))
        if ups:
            conn.execute(bp.insert(), [{"branch_id": branch_id, "upstream_id": u.id} for u in ups])

    def record_commit_provenance(self, conn: Connection, branch_id: int, commit_pk: int) -> None:
        """A branch's new head points at the current heads of its provenance branches."""
        ups = self.upstream_ids(conn, branch_id)
        if not ups:
            return
        heads = conn.execute(select(s.branches.c.head_id).where(s.branches.c.id.in_(ups))).scalars().all()
        self.b.db.insert_ignore(
            conn, s.commit_provenance, [{"commit_pk": commit_pk, "upstream_pk": h} for h in heads]
        )

    def propagate(
        self, conn: Connection, branch_ids: int | Iterable[int], commit_id: str, now: float,
        _depth: int = 0,
    ) -> list[int]:
        """Give every branch downstream of ``branch_ids`` one new open commit in set
        ``commit_id``, then fire the triggers that follow the moved branches.

        Several sources at once (a transaction) give a branch downstream of more than one of
        them a single commit, on all their new heads: one job, not one per input.
        """
        sources = [branch_ids] if isinstance(branch_ids, int) else list(dict.fromkeys(branch_ids))
        bp = s.branch_provenance
        down: set[int] = set()
        todo = deque(sources)
        while todo:
            for d in conn.execute(select(bp.c.branch_id).where(bp.c.upstream_id == todo.popleft())).scalars():
                if d not in down:
                    down.add(d)
                    todo.append(d)
        # Topological order so each branch sees its upstreams' new heads.
        pending = {d: set(self.upstream_ids(conn, d)) & down for d in down}
        created: list[int] = []
        while pending:
            ready = sorted(d for d, ups in pending.items() if not ups)
            if not ready:  # cannot happen: cycles are refused at create branch
                raise FailedPrecondition("branch provenance has a cycle")
            for d in ready:
                del pending[d]
                for ups in pending.values():
                    ups.discard(d)
                br = conn.execute(select(s.branches).where(s.branches.c.id == d)).one()
                clash = conn.execute(
                    select(s.commits.c.id).where(s.commits.c.repo_id == br.repo_id, s.commits.c.commit_id == commit_id)
                ).first()
                if clash is not None:
                    continue  # another branch of this repo already holds this set's commit
                pk = self.rows.new_commit(conn, br.repo_id, br.name, br.head_id, AUTO, commit_id, now, finished=False)
                self.rows.move_head(conn, d, br.head_id, pk, now)
                self.record_commit_provenance(conn, d, pk)
                created.append(pk)
        fire_for_sources(self, conn, sources, now, _depth)
        return created

    def fire_triggers_on_finish(self, conn: Connection, commit_pk: int, now: float) -> None:
        """A commit was finished: evaluate the triggers following the branches it heads."""
        heads = conn.execute(select(s.branches.c.id).where(s.branches.c.head_id == commit_pk)).scalars().all()
        fire_for_sources(self, conn, list(heads), now)

    def fire_due_triggers(self, now: float | None = None) -> int:
        """Fire cron triggers whose tick has come (the controller calls this every step)."""
        from tusk.pfs.triggers import fire_due

        return fire_due(self, time.time() if now is None else now)

    def trigger_branch(self, ref: RepoRef, name: str, set_id: str | None = None) -> str:
        """A new open commit on a branch with provenance, as if its inputs had moved.

        Used when a pipeline changes (update, rerun, start): the output branch gets a commit on
        the current input heads, and the commit set propagates downstream as usual. ``set_id``
        names that commit set (a transaction's) instead of a new one.
        """
        with self.b.db.tx() as conn:
            return self.trigger_branch_in(conn, ref, name, set_id, time.time())

    def trigger_branch_in(self, conn: Connection, ref: RepoRef, name: str, set_id: str | None,
                           now: float) -> str:
        """``trigger_branch`` in the caller's transaction (a pipeline being updated)."""
        repo = self.catalog.repo_row(conn, ref)
        br = self.catalog.branch_row(conn, repo.id, name)
        if br is None:
            raise NotFound(f"branch {ref}@{name} not found")
        cid = self.rows.set_id_for(conn, repo.id, set_id)
        pk = self.rows.new_commit(conn, repo.id, name, br.head_id, AUTO, cid, now, finished=False)
        self.rows.move_head(conn, br.id, br.head_id, pk, now)
        self.record_commit_provenance(conn, br.id, pk)
        self.propagate(conn, br.id, cid, now)
        return cid
