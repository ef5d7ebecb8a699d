"""The commit lifecycle: start, finish, inspect, list, wait, subscribe, delete and squash.

A commit is *open* while it accepts changes (staged in the metadata store) and *finished*
once its tree is built; after that it never changes. An open commit's content is its base
(the parent's content, skipping errored ancestors) plus its staged changes (``CommitRows``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from sqlalchemy import Connection, Row, func, select, update

from tusk.errors import FailedPrecondition, InvalidArgument, NotFound
from tusk.pfs.branches import Branches
from tusk.pfs.catalog import Catalog
from tusk.pfs.commit_rows import AUTO, FINISHED, OPEN, USER, CommitRows, new_id
from tusk.pfs.model import CommitInfo, CommitSetInfo
from tusk.pfs.names import check_branch_name
from tusk.pfs.refs import CommitRef, RepoRef
from tusk.storage import schema as s
from tusk.storage.backend import Backend

POLL = 0.05
POLL_MAX = 0.5


def _sleep(delay: float, deadline: float | None, what: str, hook: Callable[[], None] | None) -> float:
    """One poll of a wait: call ``hook`` (the CLI makes sure a controller is alive), give up
    past ``deadline``, sleep; the next delay."""
    if hook is not None:
        hook()
    if deadline is not None and time.monotonic() > deadline:
        raise FailedPrecondition(f"timed out waiting for {what} to finish")
    time.sleep(delay)
    return min(delay * 1.5, POLL_MAX)


class Commits:
    """The commit lifecycle of one root (held by ``PfsService`` as ``commits``)."""

    def __init__(self, b: Backend, catalog: Catalog, rows: CommitRows, branches: Branches) -> None:
        self.b = b
        self.catalog = catalog
        self.rows = rows
        self.branches = branches

    # -- start / finish ---------------------------------------------------------------------

    def start_commit(
        self, ref: RepoRef, branch: str, parent: CommitRef | None = None, description: str = ""
    ) -> CommitInfo:
        check_branch_name(branch)
        now = time.time()
        with self.b.db.tx() as conn:
            repo = self.catalog.repo_row(conn, ref)
            br = self.catalog.branch_row(conn, repo.id, branch)
            if br is not None and self.branches.upstream_ids(conn, br.id):
                raise FailedPrecondition(
                    f"cannot start a commit on {ref}@{branch}: it has provenance, so its commits"
                    " are made by propagation"
                )
            parent_pk = br.head_id if br is not None else None
            if br is not None:
                head = conn.execute(select(s.commits).where(s.commits.c.id == br.head_id)).one()
                if head.state == OPEN:
                    raise FailedPrecondition(
                        f"{ref}@{branch} already has an open commit ({head.commit_id}); finish it"
                        f" first ('tusk finish commit {ref}@{branch}') or write into it"
                    )
            if parent is not None:
                prow = self.rows.resolve_commit(conn, parent)
                if prow.repo_id != repo.id:
                    raise InvalidArgument(f"parent {parent} is not a commit of repo {ref}")
                parent_pk = prow.id
            if parent_pk is not None:
                prow = conn.execute(select(s.commits).where(s.commits.c.id == parent_pk)).one()
                if prow.state == OPEN:
                    raise FailedPrecondition(
                        f"parent commit {ref}@{prow.commit_id} has not been finished; finish it"
                        f" first ('tusk finish commit {ref}@{branch}') or write into it"
                    )
            cid = new_id()
            pk = self.rows.new_commit(conn, repo.id, branch, parent_pk, USER, cid, now,
                                  finished=False, description=description)
            if br is None:
                conn.execute(s.branches.insert().values(
                    repo_id=repo.id, name=branch, head_id=pk, created_at=now, updated_at=now))
            else:
                self.rows.move_head(conn, br.id, br.head_id, pk, now)
                self.branches.propagate(conn, br.id, cid, now)
            return self.rows.commit_info(conn, conn.execute(select(s.commits).where(s.commits.c.id == pk)).one())

    def finish_commit(
        self, ref: CommitRef, description: str | None = None, error: str = "", force: bool = False
    ) -> CommitInfo:
        with self.b.db.tx() as conn:
            row = self.rows.resolve_commit(conn, ref)
            if row.state == FINISHED:
                raise FailedPrecondition(f"commit {ref.repo}@{row.commit_id} is already finished")
            self.rows.finish_row(conn, row, description, error)
            # Size and commit-count triggers following this branch decide now, in this tx.
            self.branches.fire_triggers_on_finish(conn, row.id, time.time())
            info = self.rows.commit_info(conn, self.rows.commit_by_pk(conn, row.id))
        self.branches.fire_due_triggers()
        return info

    # -- inspect / list / wait --------------------------------------------------------------

    def inspect_commit(self, ref: CommitRef, wait: bool = False, timeout: float | None = None,
                       hook: Callable[[], None] | None = None) -> CommitInfo:
        """A commit; with ``wait``, once it is finished (``hook`` is called on every poll)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL
        while True:
            with self.b.db.read() as conn:
                info = self.rows.commit_info(conn, self.rows.resolve_commit(conn, ref))
            if not wait or info.finished:
                return info
            # Later waits must pin the commit, not the branch (whose head may move on).
            ref = CommitRef(ref.repo, None, info.id)
            delay = _sleep(delay, deadline, f"commit {ref}", hook)

    def list_commits(
        self, ref: CommitRef | RepoRef, number: int = 0, origin: str | None = None, all_origins: bool = False
    ) -> list[CommitInfo]:
        """Newest first: a branch's or commit's history, or every commit of a repo."""
        out: list[CommitInfo] = []
        with self.b.db.read() as conn:
            c = s.commits
            if isinstance(ref, CommitRef):
                rows: Iterator[Row] = self.rows.ancestry(conn, self.rows.resolve_commit(conn, ref))
            else:
                repo = self.catalog.repo_row(conn, ref)
                rows = iter(conn.execute(select(c).where(c.c.repo_id == repo.id).order_by(c.c.id.desc())).all())
            for row in rows:
                if origin is not None and row.origin != origin:
                    continue
                out.append(self.rows.commit_info(conn, row))
                if number and len(out) >= number:
                    break
        return out

    def inspect_commit_set(self, commit_id: str, wait: bool = False, timeout: float | None = None,
                           hook: Callable[[], None] | None = None) -> CommitSetInfo:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL
        while True:
            with self.b.db.read() as conn:
                rows = conn.execute(
                    select(s.commits).where(s.commits.c.commit_id == commit_id).order_by(s.commits.c.id)
                ).all()
                if not rows:
                    raise NotFound(f"commit set {commit_id} not found")
                infos = tuple(self.rows.commit_info(conn, r) for r in rows)
            cs = CommitSetInfo(commit_id, infos, min(r.started_at for r in rows))
            if not wait or cs.finished:
                return cs
            delay = _sleep(delay, deadline, f"commit set {commit_id}", hook)

    def list_commit_sets(self, number: int = 0) -> list[CommitSetInfo]:
        c = s.commits
        with self.b.db.read() as conn:
            q = select(c.c.commit_id, func.min(c.c.id).label("first")).group_by(c.c.commit_id).order_by(
                func.min(c.c.id).desc()
            )
            if number:
                q = q.limit(number)
            ids = [r[0] for r in conn.execute(q).all()]
        return [self.inspect_commit_set(i) for i in ids]

    def subscribe_commits(
        self, ref: RepoRef, branch: str | None = None, from_id: str | None = None,
        new_only: bool = False, state: str = "started", timeout: float | None = None,
    ) -> Iterator[CommitInfo]:
        """Yield commits of a repo (optionally one branch) as they start or finish, forever."""
        c = s.commits
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.b.db.read() as conn:
            repo = self.catalog.repo_row(conn, ref)
            floor = 0
            if from_id is not None:
                floor = self.rows.resolve_commit(conn, CommitRef(ref, None, from_id)).id
            elif new_only:
                floor = conn.execute(select(func.max(c.c.id)).where(c.c.repo_id == repo.id)).scalar() or 0
        seen: set[int] = set()
        while True:
            with self.b.db.read() as conn:
                q = select(c).where(c.c.repo_id == repo.id, c.c.id > floor).order_by(c.c.id)
                if branch is not None:
                    q = q.where(c.c.branch == branch)
                for row in conn.execute(q).all():
                    if row.id in seen or (state == "finished" and row.state != FINISHED):
                        continue
                    seen.add(row.id)
                    yield self.rows.commit_info(conn, row)
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(POLL)

    # -- delete / squash --------------------------------------------------------------------

    def delete_commit_set(self, commit_id: str) -> None:
        """Drop every commit of a set and its data; only allowed while none has children."""
        now = time.time()
        with self.b.db.tx() as conn:
            rows = self._set_rows(conn, commit_id)
            pks = {r.id for r in rows}
            for r in rows:
                kids = conn.execute(select(s.commits.c.commit_id).where(s.commits.c.parent_id == r.id)).scalars().all()
                if kids:
                    raise FailedPrecondition(
                        f"cannot delete commit set {commit_id}: its commit in {self.rows.repo_label(conn, r)}"
                        f" has child commit {kids[0]}; squash instead, or delete the newer sets first"
                    )
                self._check_no_outside_dependents(conn, r, pks, commit_id)
            for r in rows:
                for br in conn.execute(select(s.branches).where(s.branches.c.head_id == r.id)).all():
                    if r.parent_id is not None:
                        new_head = r.parent_id
                    else:
                        new_head = self.rows.new_commit(conn, r.repo_id, br.name, None, AUTO, new_id(), now, finished=True)
                    self.rows.move_head(conn, br.id, r.id, new_head, now)
            self.rows.drop_rows(conn, pks, squashed=False)

    def squash_commit_set(self, commit_id: str) -> None:
        """Remove a set's commits from history, keeping their content in their children."""
        with self.b.db.tx() as conn:
            rows = self._set_rows(conn, commit_id)
            pks = {r.id for r in rows}
            for r in rows:
                if r.state == OPEN:
                    raise FailedPrecondition(f"cannot squash commit set {commit_id}: it is not finished")
                kids = conn.execute(select(s.commits).where(s.commits.c.parent_id == r.id)).all()
                if not kids:
                    raise FailedPrecondition(
                        f"cannot squash commit set {commit_id}: its commit in {self.rows.repo_label(conn, r)}"
                        " has no children, so its data would be lost; use 'tusk delete commit' to drop it"
                    )
                # An open child's content is its base (this commit, or this commit through
                # errored children) plus its staged changes: re-parenting would drop our data.
                open_kid = self._open_dependant(conn, kids, pks)
                if open_kid is not None:
                    raise FailedPrecondition(
                        f"cannot squash commit set {commit_id}: child commit"
                        f" {self.rows.repo_label(conn, r)}@{open_kid.commit_id} is still open; finish it first"
                    )
                # A branch whose head is this commit would be left pointing at nothing.
                head = conn.execute(select(s.branches.c.name).where(s.branches.c.head_id == r.id)).first()
                if head is not None:
                    raise FailedPrecondition(
                        f"cannot squash commit set {commit_id}: it is the head of branch"
                        f" {self.rows.repo_label(conn, r)}@{head[0]}; move that branch first"
                    )
                self._check_no_outside_dependents(conn, r, pks, commit_id)
            for r in rows:
                conn.execute(update(s.commits).where(s.commits.c.parent_id == r.id).values(parent_id=r.parent_id))
            self.rows.drop_rows(conn, pks, squashed=True)

    def _open_dependant(self, conn: Connection, kids: list[Row], pks: set[int]) -> Row | None:
        """An open commit whose base content comes through ``kids`` (errored ones are skipped)."""
        todo = list(kids)
        while todo:
            k = todo.pop()
            if k.id in pks:
                continue
            if k.state == OPEN:
                return k
            if k.error:
                todo.extend(conn.execute(select(s.commits).where(s.commits.c.parent_id == k.id)).all())
        return None

    def _set_rows(self, conn: Connection, commit_id: str) -> list[Row]:
        rows = conn.execute(select(s.commits).where(s.commits.c.commit_id == commit_id)).all()
        if not rows:
            raise NotFound(f"commit set {commit_id} not found")
        return list(rows)

    def _check_no_outside_dependents(self, conn: Connection, r: Row, pks: set[int], commit_id: str) -> None:
        cp = s.commit_provenance
        deps = conn.execute(select(cp.c.commit_pk).where(cp.c.upstream_pk == r.id)).scalars().all()
        outside = [d for d in deps if d not in pks]
        if outside:
            other = conn.execute(select(s.commits).where(s.commits.c.id == outside[0])).one()
            raise FailedPrecondition(
                f"commit set {commit_id} is provenance of commit {self.rows.repo_label(conn, other)}@"
                f"{other.commit_id}; delete or squash that set first"
            )
