"""Projects, repos and branches, and how refs resolve to commit rows.

The catalog owns the metadata side of PFS: naming, existence, provenance between branches and
the propagation of a new commit to every branch downstream of it (one global ID for the whole
commit set). All writes happen inside ``Database.tx()``; a branch head moves only by
compare-and-set (``_move_head``).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import deque
from collections.abc import Iterable

from sqlalchemy import Connection, Row, delete, func, select, update

from tusk.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound
from tusk.pfs.model import BranchInfo, CommitInfo, ProjectInfo, RepoInfo
from tusk.pfs.names import (
    DEFAULT_PROJECT,
    check_branch_name,
    check_project_name,
    check_repo_name,
)
from tusk.pfs.refs import CommitRef, RepoRef
from tusk.pfs.triggers import Trigger, fire_for_sources, set_trigger, trigger_of
from tusk.storage import schema as s
from tusk.storage.backend import Backend

USER, AUTO = "USER", "AUTO"
OPEN, FINISHED = "open", "finished"


def new_id() -> str:
    """A fresh global ID: 32 lowercase hex characters, as Pachyderm's."""
    return uuid.uuid4().hex


class CatalogMixin:
    b: Backend
    # The open transaction this service batches into (``transactions.py``); surfaces set it
    # for the commands a transaction covers, so other callers (pipelines, cron) never join one.
    transaction: str | None = None

    # -- projects ---------------------------------------------------------------------------

    def create_project(self, name: str, description: str = "") -> ProjectInfo:
        check_project_name(name)
        with self.b.db.tx() as conn:
            if conn.execute(select(s.projects.c.name).where(s.projects.c.name == name)).first():
                raise AlreadyExists(f"project {name!r} already exists")
            now = time.time()
            conn.execute(s.projects.insert().values(name=name, description=description, created_at=now))
        return ProjectInfo(name, description, now)

    def list_projects(self) -> list[ProjectInfo]:
        with self.b.db.read() as conn:
            rows = conn.execute(select(s.projects).order_by(s.projects.c.name)).all()
        return [ProjectInfo(r.name, r.description, r.created_at) for r in rows]

    def inspect_project(self, name: str) -> ProjectInfo:
        with self.b.db.read() as conn:
            r = self._project_row(conn, name)
        return ProjectInfo(r.name, r.description, r.created_at)

    def update_project(self, name: str, description: str) -> ProjectInfo:
        with self.b.db.tx() as conn:
            self._project_row(conn, name)
            conn.execute(update(s.projects).where(s.projects.c.name == name).values(description=description))
        return self.inspect_project(name)

    def delete_project(self, name: str, force: bool = False) -> None:
        if name == DEFAULT_PROJECT:
            raise FailedPrecondition("the 'default' project cannot be deleted")
        with self.b.db.tx() as conn:
            self._project_row(conn, name)
            repos = conn.execute(select(s.repos).where(s.repos.c.project == name)).all()
            if repos and not force:
                raise FailedPrecondition(
                    f"project {name!r} still has {len(repos)} repo(s); delete them or use --force"
                )
            for r in repos:
                self._check_no_outside_subvenance(conn, r, force=True, within_project=name)
                self._delete_repo_rows(conn, r.id)
            conn.execute(delete(s.projects).where(s.projects.c.name == name))

    def _project_row(self, conn: Connection, name: str) -> Row:
        r = conn.execute(select(s.projects).where(s.projects.c.name == name)).first()
        if r is None:
            raise NotFound(f"project {name!r} not found; create it with 'tusk create project {name}'")
        return r

    # -- repos ------------------------------------------------------------------------------

    def create_repo(self, ref: RepoRef, description: str = "", update: bool = False) -> RepoInfo:
        """Create a repo (``update``: or change its description). Inside a transaction the
        new repo is queued and appears when the transaction finishes; the answer describes it
        as it will be then."""
        check_repo_name(ref.repo)  # a RepoRef can be built without the parser's checks
        if self.transaction is not None and not update:
            from tusk.pfs import transactions

            transactions.queue_create_repo(self, ref, description)
            return RepoInfo(ref.project, ref.repo, "user", description, time.time(), 0)
        with self.b.db.tx() as conn:
            self._project_row(conn, ref.project)
            existing = self.find_repo(conn, ref)
            if existing is not None:
                if not update:
                    raise AlreadyExists(f"repo {ref} already exists")
                conn.execute(update_repo_stmt(existing.id, description))
            else:
                self._insert_repo(conn, ref, description, time.time())
        return self.inspect_repo(ref)

    def create_repo_in(self, conn: Connection, ref: RepoRef, description: str, now: float) -> None:
        """A new repo in the caller's transaction (a pipeline's output repo, a cron repo); its
        project must exist."""
        check_repo_name(ref.repo)
        self._project_row(conn, ref.project)
        if self.find_repo(conn, ref) is not None:
            raise AlreadyExists(f"repo {ref} already exists")
        self._insert_repo(conn, ref, description, now)

    def check_repo_deletable(self, conn: Connection, ref: RepoRef) -> None:
        """Refuse (FailedPrecondition) if deleting repo ``ref`` would leave a branch of another
        repo with provenance in it; nothing to check if it does not exist."""
        repo = self.find_repo(conn, ref)
        if repo is not None:
            self._check_no_outside_subvenance(conn, repo, False)

    def _insert_repo(self, conn: Connection, ref: RepoRef, description: str, now: float) -> None:
        conn.execute(s.repos.insert().values(project=ref.project, name=ref.repo, type="user",
                                             description=description, created_at=now))

    def update_repo(self, ref: RepoRef, description: str) -> RepoInfo:
        """Change a repo's description. Inside a transaction the change is queued and happens
        when the transaction finishes; the answer describes the repo as it will be then."""
        if self.transaction is not None:
            from tusk.pfs import transactions

            transactions.queue_update_repo(self, ref, description)
            return dataclasses.replace(self.inspect_repo(ref), description=description)
        with self.b.db.tx() as conn:
            r = self._repo_row(conn, ref)
            conn.execute(update_repo_stmt(r.id, description))
        return self.inspect_repo(ref)

    def inspect_repo(self, ref: RepoRef) -> RepoInfo:
        with self.b.db.read() as conn:
            return self._repo_info(conn, self._repo_row(conn, ref))

    def list_repos(self, project: str | None = DEFAULT_PROJECT) -> list[RepoInfo]:
        with self.b.db.read() as conn:
            q = select(s.repos).order_by(s.repos.c.created_at.desc(), s.repos.c.id.desc())
            if project is not None:
                self._project_row(conn, project)
                q = q.where(s.repos.c.project == project)
            return [self._repo_info(conn, r) for r in conn.execute(q).all()]

    def delete_repo(self, ref: RepoRef, force: bool = False) -> None:
        """Delete a repo with its branches and commits. Inside a transaction the delete is
        queued and happens when the transaction finishes."""
        if self.transaction is not None:
            from tusk.pfs import transactions

            transactions.queue_delete_repo(self, ref, force)
            return
        with self.b.db.tx() as conn:
            r = self._repo_row(conn, ref)
            self._check_no_outside_subvenance(conn, r, force)
            self._delete_repo_rows(conn, r.id)

    def _check_no_outside_subvenance(
        self, conn: Connection, repo: Row, force: bool, within_project: str | None = None
    ) -> None:
        bp, br, rp = s.branch_provenance, s.branches.alias("down"), s.repos
        up = s.branches.alias("up")
        rows = conn.execute(
            select(rp.c.project, rp.c.name, br.c.name)
            .select_from(bp.join(up, bp.c.upstream_id == up.c.id).join(br, bp.c.branch_id == br.c.id)
                         .join(rp, br.c.repo_id == rp.c.id))
            .where(up.c.repo_id == repo.id, br.c.repo_id != repo.id)
        ).all()
        if within_project is not None:
            rows = [x for x in rows if x[0] != within_project]
        if rows and not force:
            proj, name, branch = rows[0]
            down = name if proj == DEFAULT_PROJECT else f"{proj}/{name}"
            raise FailedPrecondition(
                f"repo {repo.name} is provenance of {down}@{branch}; delete that first or use --force"
            )

    def _delete_repo_rows(self, conn: Connection, repo_id: int) -> None:
        branch_ids = select(s.branches.c.id).where(s.branches.c.repo_id == repo_id)
        commit_pks = select(s.commits.c.id).where(s.commits.c.repo_id == repo_id)
        bp, cp = s.branch_provenance, s.commit_provenance
        conn.execute(delete(bp).where(bp.c.branch_id.in_(branch_ids) | bp.c.upstream_id.in_(branch_ids)))
        conn.execute(delete(cp).where(cp.c.commit_pk.in_(commit_pks) | cp.c.upstream_pk.in_(commit_pks)))
        conn.execute(delete(s.staging).where(s.staging.c.commit_pk.in_(commit_pks)))
        conn.execute(delete(s.output_listings).where(s.output_listings.c.commit_pk.in_(commit_pks)))
        conn.execute(delete(s.branch_triggers).where(s.branch_triggers.c.repo_id == repo_id))
        # Queued transaction work on a repo that is gone has nothing left to apply to.
        conn.execute(delete(s.transaction_ops).where(s.transaction_ops.c.repo_id == repo_id))
        conn.execute(delete(s.branches).where(s.branches.c.repo_id == repo_id))
        conn.execute(delete(s.commits).where(s.commits.c.repo_id == repo_id))
        conn.execute(delete(s.repos).where(s.repos.c.id == repo_id))

    def find_repo(self, conn: Connection, ref: RepoRef) -> Row | None:
        return conn.execute(
            select(s.repos).where(
                s.repos.c.project == ref.project, s.repos.c.name == ref.repo, s.repos.c.type == "user"
            )
        ).first()

    def _repo_row(self, conn: Connection, ref: RepoRef) -> Row:
        r = self.find_repo(conn, ref)
        if r is None:
            if ref.project != DEFAULT_PROJECT:
                self._project_row(conn, ref.project)
            raise NotFound(f"repo {ref} not found; create it with 'tusk create repo {ref}'")
        return r

    def _repo_info(self, conn: Connection, r: Row) -> RepoInfo:
        names = conn.execute(
            select(s.branches.c.name).where(s.branches.c.repo_id == r.id).order_by(s.branches.c.name)
        ).scalars().all()
        size = conn.execute(
            select(s.commits.c.size_bytes)
            .select_from(s.branches.join(s.commits, s.branches.c.head_id == s.commits.c.id))
            .where(s.branches.c.repo_id == r.id, s.branches.c.name == "master")
        ).scalar()
        return RepoInfo(r.project, r.name, r.type, r.description, r.created_at, size or 0, tuple(names))

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
            from tusk.pfs import transactions

            transactions.queue_repo_op(self, "create_branch", ref, name, {
                "head": None if head is None else str(head),
                "provenance": None if provenance is None else [
                    [r.project, r.repo, b] for r, b in provenance],
                "trigger": None if trigger is None else trigger.to_dict(),
            })
            return None
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
        repo = self._repo_row(conn, ref)
        branch = self._branch_row(conn, repo.id, name)
        ups: list[Row] = []
        for up_repo, up_branch in provenance or []:
            ur = self._repo_row(conn, up_repo)
            if ur.id == repo.id:
                raise InvalidArgument(
                    f"branch {ref}@{name} cannot have provenance in its own repo ({up_repo}@{up_branch})"
                )
            ub = self._branch_row(conn, ur.id, up_branch)
            if ub is None:
                raise NotFound(f"branch {up_repo}@{up_branch} not found; create it first")
            if branch is not None and branch.id in self._upstream_closure(conn, ub.id):
                raise InvalidArgument(f"provenance {up_repo}@{up_branch} would create a cycle")
            ups.append(ub)
        self._check_trigger(conn, ref, repo.id, name, branch, ups, provenance, trigger)
        head_row = self.resolve_commit(conn, head) if head is not None else None
        if head_row is not None and head_row.repo_id != repo.id:
            raise InvalidArgument(f"--head {head} is not a commit of repo {ref}")
        if branch is None and head_row is None and trigger is not None:
            # A new triggered branch starts where its source is, so its conditions count what
            # arrives from now on (an unrelated empty head would make all history "new").
            source = self._branch_row(conn, repo.id, trigger.branch)
            if source is not None:
                head_row = conn.execute(select(s.commits).where(s.commits.c.id == source.head_id)).one()
        if branch is None:
            if head_row is None:
                head_pk = self._new_commit(
                    conn, repo.id, name, None, AUTO if ups else USER,
                    self._set_id_for(conn, repo.id, set_id), now, finished=not ups,
                )
            else:
                head_pk = head_row.id
            bid = conn.execute(
                s.branches.insert().values(
                    repo_id=repo.id, name=name, head_id=head_pk, created_at=now, updated_at=now
                )
            ).inserted_primary_key[0]
            self._set_provenance(conn, bid, ups)
            if head_row is None:
                self._record_commit_provenance(conn, bid, head_pk)
        else:
            bid = branch.id
            changed_prov = provenance is not None and {u.id for u in ups} != set(
                self._upstream_ids(conn, bid)
            )
            if provenance is not None:
                self._set_provenance(conn, bid, ups)
            if head_row is not None:
                self._move_head(conn, bid, branch.head_id, head_row.id, now)
                if moved is not None:
                    moved.append(bid)
                else:
                    self._propagate(conn, bid, new_id(), now)
            elif changed_prov and ups:
                # New upstreams give the branch a new head commit on their heads (a pipeline
                # started or re-wired: its next job). That commit is a new head like any other,
                # so it propagates downstream too. (Provenance dropped makes no commit: nothing
                # would ever finish it.)
                cid = self._set_id_for(conn, repo.id, set_id)
                pk = self._new_commit(conn, repo.id, name, branch.head_id, AUTO, cid, now, finished=False)
                self._move_head(conn, bid, branch.head_id, pk, now)
                self._record_commit_provenance(conn, bid, pk)
                if moved is not None:
                    moved.append(bid)
                else:
                    self._propagate(conn, bid, cid, now)
        if trigger is not None:
            set_trigger(conn, bid, repo.id, trigger, now)

    def _set_id_for(self, conn: Connection, repo_id: int, set_id: str | None) -> str:
        """The commit ID for a new commit in ``set_id``: a repo holds one commit per set, so
        when the set already has one here the new commit starts a set of its own."""
        if set_id is None or conn.execute(select(s.commits.c.id).where(
                s.commits.c.repo_id == repo_id, s.commits.c.commit_id == set_id)).first():
            return new_id()
        return set_id

    def _check_trigger(
        self, conn: Connection, ref: RepoRef, repo_id: int, name: str, branch: Row | None,
        ups: list[Row], provenance: list[tuple[RepoRef, str]] | None, trigger: Trigger | None,
    ) -> None:
        """A branch has provenance or a trigger, never both; triggers follow an existing branch
        of the same repo and never form a loop."""
        has_ups = bool(ups) if provenance is not None else (
            branch is not None and bool(self._upstream_ids(conn, branch.id)))
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
        source = self._branch_row(conn, repo_id, trigger.branch)
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
            step = None if upstream is None else self._branch_row(conn, repo_id, upstream.branch)

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
        repo = self._repo_row(conn, ref)
        if self._branch_row(conn, repo.id, trigger.branch) is None:
            self.create_branch_in(conn, ref, trigger.branch, None, None, None, now)
        self.create_branch_in(conn, ref, name, None, None, trigger, now)

    def inspect_branch(self, ref: RepoRef, name: str) -> BranchInfo:
        with self.b.db.read() as conn:
            repo = self._repo_row(conn, ref)
            br = self._branch_row(conn, repo.id, name)
            if br is None:
                raise NotFound(f"branch {ref}@{name} not found")
            return self._branch_info(conn, ref, br)

    def list_branches(self, ref: RepoRef) -> list[BranchInfo]:
        with self.b.db.read() as conn:
            repo = self._repo_row(conn, ref)
            rows = conn.execute(
                select(s.branches).where(s.branches.c.repo_id == repo.id)
                .order_by(s.branches.c.updated_at.desc(), s.branches.c.name)
            ).all()
            return [self._branch_info(conn, ref, br) for br in rows]

    def delete_branch(self, ref: RepoRef, name: str, force: bool = False) -> None:
        check_branch_name(name)
        if self.transaction is not None:
            from tusk.pfs import transactions

            transactions.queue_repo_op(self, "delete_branch", ref, name, {"force": force})
            return
        with self.b.db.tx() as conn:
            self._delete_branch_in(conn, ref, name, force)

    def _delete_branch_in(self, conn: Connection, ref: RepoRef, name: str, force: bool) -> int:
        repo = self._repo_row(conn, ref)
        br = self._branch_row(conn, repo.id, name)
        if br is None:
            raise NotFound(f"branch {ref}@{name} not found")
        bp = s.branch_provenance
        downs = conn.execute(select(bp.c.branch_id).where(bp.c.upstream_id == br.id)).scalars().all()
        if downs and not force:
            down = self._branch_label(conn, downs[0])
            raise FailedPrecondition(
                f"branch {ref}@{name} is provenance of {down}; delete that first or use --force"
            )
        conn.execute(delete(bp).where((bp.c.branch_id == br.id) | (bp.c.upstream_id == br.id)))
        conn.execute(delete(s.branch_triggers).where(s.branch_triggers.c.branch_id == br.id))
        conn.execute(delete(s.branches).where(s.branches.c.id == br.id))
        return int(br.id)

    def find_branch(self, conn: Connection, ref: RepoRef, name: str) -> Row | None:
        """Branch ``ref@name``'s row, or None if the repo or the branch does not exist."""
        repo = self.find_repo(conn, ref)
        return None if repo is None else self._branch_row(conn, repo.id, name)

    def branch_upstreams(self, conn: Connection, ref: RepoRef, name: str) -> set[tuple[RepoRef, str]]:
        """The (repo, branch) pairs branch ``ref@name`` has as provenance (none if it does not
        exist)."""
        br = self.find_branch(conn, ref, name)
        if br is None:
            return set()
        ups = self._upstream_ids(conn, br.id)
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
        br = self.find_branch(conn, ref, name)
        if br is not None:
            self._set_provenance(conn, br.id, [])

    def _branch_row(self, conn: Connection, repo_id: int, name: str) -> Row | None:
        return conn.execute(
            select(s.branches).where(s.branches.c.repo_id == repo_id, s.branches.c.name == name)
        ).first()

    def _branch_label(self, conn: Connection, branch_id: int) -> str:
        row = conn.execute(
            select(s.repos.c.project, s.repos.c.name, s.branches.c.name)
            .select_from(s.branches.join(s.repos, s.branches.c.repo_id == s.repos.c.id))
            .where(s.branches.c.id == branch_id)
        ).one()
        return f"{RepoRef(row[0], row[1])}@{row[2]}"

    def _branch_info(self, conn: Connection, ref: RepoRef, br: Row) -> BranchInfo:
        bp = s.branch_provenance
        ups = conn.execute(select(bp.c.upstream_id).where(bp.c.branch_id == br.id)).scalars().all()
        downs = conn.execute(select(bp.c.branch_id).where(bp.c.upstream_id == br.id)).scalars().all()
        head = conn.execute(select(s.commits.c.commit_id).where(s.commits.c.id == br.head_id)).scalar()
        trig = trigger_of(conn, br.id)
        return BranchInfo(
            ref.project, ref.repo, br.name, head or "",
            tuple(sorted(self._branch_label(conn, u) for u in ups)),
            tuple(sorted(self._branch_label(conn, d) for d in downs)),
            br.created_at, br.updated_at, None if trig is None else trig.to_dict(),
        )

    def _upstream_ids(self, conn: Connection, branch_id: int) -> list[int]:
        bp = s.branch_provenance
        return list(conn.execute(select(bp.c.upstream_id).where(bp.c.branch_id == branch_id)).scalars())

    def _upstream_closure(self, conn: Connection, branch_id: int) -> set[int]:
        seen: set[int] = {branch_id}
        todo = [branch_id]
        while todo:
            for u in self._upstream_ids(conn, todo.pop()):
                if u not in seen:
                    seen.add(u)
                    todo.append(u)
        return seen

    def _set_provenance(self, conn: Connection, branch_id: int, ups: list[Row]) -> None:
        bp = s.branch_provenance
        conn.execute(delete(bp).where(bp.c.branch_id == branch_id))
        if ups:
            conn.execute(bp.insert(), [{"branch_id": branch_id, "upstream_id": u.id} for u in ups])

    def _record_commit_provenance(self, conn: Connection, branch_id: int, commit_pk: int) -> None:
        """A branch's new head points at the current heads of its provenance branches."""
        ups = self._upstream_ids(conn, branch_id)
        if not ups:
            return
        heads = conn.execute(select(s.branches.c.head_id).where(s.branches.c.id.in_(ups))).scalars().all()
        self.b.db.insert_ignore(
            conn, s.commit_provenance, [{"commit_pk": commit_pk, "upstream_pk": h} for h in heads]
        )

    def _move_head(self, conn: Connection, branch_id: int, expect: int, new: int, now: float) -> None:
        """Compare-and-set a branch head; losing the race is a Conflict, never a lost update."""
        res = conn.execute(
            update(s.branches)
            .where(s.branches.c.id == branch_id, s.branches.c.head_id == expect)
            .values(head_id=new, updated_at=now)
        )
        if res.rowcount != 1:
            raise Conflict("the branch moved while this change was being written; run it again")

    def _new_commit(
        self, conn: Connection, repo_id: int, branch: str | None, parent: int | None, origin: str,
        commit_id: str, now: float, *, finished: bool, description: str = "",
        tree: bytes | None = None, size: int = 0, count: int = 0,
    ) -> int:
        if tree is None and finished and parent is not None:
            p = conn.execute(select(s.commits).where(s.commits.c.id == parent)).one()
            tree, size, count = p.tree, p.size_bytes, p.file_count
        return conn.execute(
            s.commits.insert().values(
                repo_id=repo_id, commit_id=commit_id, branch=branch, parent_id=parent, origin=origin,
                description=description, state=FINISHED if finished else OPEN, error="",
                started_at=now, finished_at=now if finished else None, tree=tree,
                size_bytes=size, file_count=count,
            )
        ).inserted_primary_key[0]

    def _propagate(
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
        pending = {d: set(self._upstream_ids(conn, d)) & down for d in down}
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
                pk = self._new_commit(conn, br.repo_id, br.name, br.head_id, AUTO, commit_id, now, finished=False)
                self._move_head(conn, d, br.head_id, pk, now)
                self._record_commit_provenance(conn, d, pk)
                created.append(pk)
        fire_for_sources(self, conn, sources, now, _depth)
        return created

    def _fire_triggers_on_finish(self, conn: Connection, commit_pk: int, now: float) -> None:
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
        repo = self._repo_row(conn, ref)
        br = self._branch_row(conn, repo.id, name)
        if br is None:
            raise NotFound(f"branch {ref}@{name} not found")
        cid = self._set_id_for(conn, repo.id, set_id)
        pk = self._new_commit(conn, repo.id, name, br.head_id, AUTO, cid, now, finished=False)
        self._move_head(conn, br.id, br.head_id, pk, now)
        self._record_commit_provenance(conn, br.id, pk)
        self._propagate(conn, br.id, cid, now)
        return cid

    # -- commit resolution ------------------------------------------------------------------

    def resolve_commit(self, conn: Connection, ref: CommitRef) -> Row:
        repo = self._repo_row(conn, ref.repo)
        c = s.commits
        if ref.commit_id is not None:
            row = conn.execute(select(c).where(c.c.repo_id == repo.id, c.c.commit_id == ref.commit_id)).first()
            if row is None:
                raise NotFound(f"commit {ref.repo}@{ref.commit_id} not found")
        else:
            br = self._branch_row(conn, repo.id, ref.branch or "master")
            if br is None:
                raise NotFound(f"branch {ref.repo}@{ref.branch or 'master'} not found")
            row = conn.execute(select(c).where(c.c.id == br.head_id)).one()
        if ref.index is not None:
            chain = [row]
            while chain[-1].parent_id is not None:
                chain.append(conn.execute(select(c).where(c.c.id == chain[-1].parent_id)).one())
            chain.reverse()
            if not 1 <= ref.index <= len(chain):
                raise NotFound(f"{ref} does not exist: the branch has {len(chain)} commit(s), numbered from 1")
            row = chain[ref.index - 1]
        for step in range(ref.ancestors):
            if row.parent_id is None:
                raise NotFound(f"{ref} does not exist: history ends after {step} parent(s)")
            row = conn.execute(select(c).where(c.c.id == row.parent_id)).one()
        return row

    def commit_info(self, conn: Connection, row: Row) -> CommitInfo:
        c = s.commits
        repo = conn.execute(select(s.repos).where(s.repos.c.id == row.repo_id)).one()
        parent = None
        if row.parent_id is not None:
            parent = conn.execute(select(c.c.commit_id).where(c.c.id == row.parent_id)).scalar()
        cp = s.commit_provenance
        prov = conn.execute(
            select(s.repos.c.project, s.repos.c.name, c.c.branch, c.c.commit_id)
            .select_from(cp.join(c, cp.c.upstream_pk == c.c.id).join(s.repos, c.c.repo_id == s.repos.c.id))
            .where(cp.c.commit_pk == row.id)
        ).all()
        children = conn.execute(
            select(c.c.commit_id).where(c.c.parent_id == row.id).order_by(c.c.id)
        ).scalars().all()
        return CommitInfo(
            repo.project, repo.name, row.commit_id, row.branch, parent, row.origin, row.description,
            "FINISHED" if row.state == FINISHED else "STARTED", row.error, row.started_at,
            row.finished_at, row.size_bytes, row.file_count,
            tuple(sorted(f"{RepoRef(p, n)}@{b}={i}" for p, n, b, i in prov)), tuple(children),
        )

    def count_commits(self, conn: Connection, repo_id: int) -> int:
        return conn.execute(select(func.count()).where(s.commits.c.repo_id == repo_id)).scalar() or 0


def update_repo_stmt(repo_id: int, description: str):  # type: ignore[no-untyped-def]
    return update(s.repos).where(s.repos.c.id == repo_id).values(description=description)
