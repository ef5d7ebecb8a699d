"""The commit lifecycle: start, finish, inspect, list, wait, subscribe, delete and squash.

A commit is *open* while it accepts changes (staged in the metadata store) and *finished*
once its tree is built; after that it never changes. An open commit's content is its base
(the parent's content, skipping errored ancestors) plus its staged changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from sqlalchemy import Connection, Row, delete, func, select, update

from tusk.errors import FailedPrecondition, InvalidArgument, NotFound
from tusk.pfs import staging, trees
from tusk.pfs.catalog import AUTO, FINISHED, OPEN, USER, CatalogMixin, new_id
from tusk.pfs.model import CommitInfo, CommitSetInfo
from tusk.pfs.refs import CommitRef, RepoRef
from tusk.storage import schema as s
from tusk.storage.backend import OverlayNodeStore

POLL = 0.05
POLL_MAX = 0.5


class CommitsMixin(CatalogMixin):
    # -- content views ----------------------------------------------------------------------

    def base_tree(self, conn: Connection, row: Row) -> trees.Tree:
        """The content a commit starts from: its nearest non-errored ancestor's."""
        parent_pk = row.parent_id
        while parent_pk is not None:
            p = conn.execute(select(s.commits).where(s.commits.c.id == parent_pk)).one()
            if p.state == OPEN:
                return self.view(conn, p)
            if not p.error:
                return trees.Tree(self.b.nodes, p.tree)
            parent_pk = p.parent_id
        return trees.Tree(self.b.nodes, None)

    def view(self, conn: Connection, row: Row) -> trees.Tree:
        """A commit's content (for open commits: base plus staged changes, not persisted)."""
        if row.state == FINISHED:
            return trees.Tree(self.b.nodes, row.tree)
        base = self.base_tree(conn, row)
        changes = staging.load(conn, row.id)
        if not changes:
            return base
        res = trees.apply(self.b.nodes, base.root, changes.sorted_ops(), sorted(changes.deleted_dirs))
        return trees.Tree(OverlayNodeStore(res.nodes, self.b.nodes), res.root)

    # -- start / finish ---------------------------------------------------------------------

    def start_commit(
        self, ref: RepoRef, branch: str, parent: CommitRef | None = None, description: str = ""
    ) -> CommitInfo:
        from tusk.pfs.names import check_branch_name

        check_branch_name(branch)
        now = time.time()
        if self.transaction is not None:
            from tusk.pfs import transactions

            return transactions.start_commit(self, ref, branch, parent, description)
        with self.b.db.tx() as conn:
            repo = self._repo_row(conn, ref)
            br = self._branch_row(conn, repo.id, branch)
            if br is not None and self._upstream_ids(conn, br.id):
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
                prow = self.resolve_commit(conn, parent)
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
            pk = self._new_commit(conn, repo.id, branch, parent_pk, USER, cid, now,
                                  finished=False, description=description)
            if br is None:
                conn.execute(s.branches.insert().values(
                    repo_id=repo.id, name=branch, head_id=pk, created_at=now, updated_at=now))
            else:
                self._move_head(conn, br.id, br.head_id, pk, now)
                self._propagate(conn, br.id, cid, now)
            return self.commit_info(conn, conn.execute(select(s.commits).where(s.commits.c.id == pk)).one())

    def finish_commit(
        self, ref: CommitRef, description: str | None = None, error: str = "", force: bool = False
    ) -> CommitInfo:
        if self.transaction is not None:
            from tusk.pfs import transactions

            return transactions.finish_commit(self, ref, description, error)
        with self.b.db.tx() as conn:
            row = self.resolve_commit(conn, ref)
            if row.state == FINISHED:
                raise FailedPrecondition(f"commit {ref.repo}@{row.commit_id} is already finished")
            self.finish_row(conn, row, description, error)
            # Size and commit-count triggers following this branch decide now, in this tx.
            self._fire_triggers_on_finish(conn, row.id, time.time())
            info = self.commit_info(conn, conn.execute(select(s.commits).where(s.commits.c.id == row.id)).one())
        self.fire_due_triggers()
        return info

    def finish_row(self, conn: Connection, row: Row, description: str | None, error: str) -> None:
        """Build an open commit's tree from its staged changes and seal it (caller's tx)."""
        if row.parent_id is not None:
            p = conn.execute(select(s.commits).where(s.commits.c.id == row.parent_id)).one()
            if p.state == OPEN:
                raise FailedPrecondition(
                    f"parent commit {p.commit_id} of {row.commit_id} is still open; finish it first"
                )
        base = self.base_tree(conn, row)
        changes = staging.load(conn, row.id)
        res = trees.apply(self.b.nodes, base.root, changes.sorted_ops(), sorted(changes.deleted_dirs))
        written = [p for p, op in changes.sorted_ops() if op.kind != trees.DELETE]
        self.check_collisions(res, base, written)
        self.b.db.insert_ignore(conn, s.tree_nodes, [{"hash": h, "data": d} for h, d in res.nodes.items()])
        values = {"state": FINISHED, "finished_at": time.time(), "tree": res.root,
                  "size_bytes": res.size, "file_count": res.count, "error": error}
        if description is not None:
            values["description"] = description
        conn.execute(update(s.commits).where(s.commits.c.id == row.id).values(**values))
        staging.clear(conn, row.id)

    def check_collisions(self, res: trees.ApplyResult, base: trees.Tree, written: list[str]) -> None:
        new = trees.Tree(OverlayNodeStore(res.nodes, self.b.nodes), res.root)
        clash = trees.find_collision(new, base, written)
        if clash is not None:
            raise InvalidArgument(
                f"file / directory path collision: {clash[0]} is a file but {clash[1]} is inside it;"
                " delete one of them"
            )

    # -- inspect / list / wait --------------------------------------------------------------

    def inspect_commit(self, ref: CommitRef, wait: bool = False, timeout: float | None = None) -> CommitInfo:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL
        while True:
            with self.b.db.read() as conn:
                info = self.commit_info(conn, self.resolve_commit(conn, ref))
            if not wait or info.finished:
                return info
            # Later waits must pin the commit, not the branch (whose head may move on).
            ref = CommitRef(ref.repo, None, info.id)
            delay = self._sleep(delay, deadline, f"commit {ref}")

    # Called on every poll of a wait (the CLI uses it to make sure a controller is alive).
    wait_hook: Callable[[], None] | None = None

    def _sleep(self, delay: float, deadline: float | None, what: str) -> float:
        if self.wait_hook is not None:
            self.wait_hook()
        if deadline is not None and time.monotonic() > deadline:
            raise FailedPrecondition(f"timed out waiting for {what} to finish")
        time.sleep(delay)
        return min(delay * 1.5, POLL_MAX)

    def list_commits(
        self, ref: CommitRef | RepoRef, number: int = 0, origin: str | None = None, all_origins: bool = False
    ) -> list[CommitInfo]:
        """Newest first: a branch's or commit's history, or every commit of a repo."""
        out: list[CommitInfo] = []
        with self.b.db.read() as conn:
            c = s.commits
            if isinstance(ref, CommitRef):
                rows: Iterator[Row] = self._ancestry(conn, self.resolve_commit(conn, ref))
            else:
                repo = self._repo_row(conn, ref)
                rows = iter(conn.execute(select(c).where(c.c.repo_id == repo.id).order_by(c.c.id.desc())).all())
            for row in rows:
                if origin is not None and row.origin != origin:
                    continue
                out.append(self.commit_info(conn, row))
                if number and len(out) >= number:
                    break
        return out

    # -- rows for the pipeline layer's reads (inside its own read or write transaction) ------

    def commit_by_pk(self, conn: Connection, commit_pk: int) -> Row:
        """The commit row with primary key ``commit_pk`` (as jobs name their output commit)."""
        row = conn.execute(select(s.commits).where(s.commits.c.id == commit_pk)).first()
        if row is None:
            raise NotFound(f"commit {commit_pk} not found; it was deleted")
        return row

    def parent_of(self, conn: Connection, row: Row) -> Row | None:
        """A commit's parent row (None for a first commit)."""
        if row.parent_id is None:
            return None
        return conn.execute(select(s.commits).where(s.commits.c.id == row.parent_id)).first()

    def repo_of(self, conn: Connection, row: Row) -> Row:
        """The repo row a commit row belongs to."""
        return conn.execute(select(s.repos).where(s.repos.c.id == row.repo_id)).one()

    def newest_finished(self, conn: Connection, ref: CommitRef) -> Row | None:
        """``ref``'s commit, or its nearest finished ancestor while it is open (None: none)."""
        row: Row | None = self.resolve_commit(conn, ref)
        while row is not None and row.state != FINISHED:
            row = self.parent_of(conn, row)
        return row

    def _ancestry(self, conn: Connection, row: Row) -> Iterator[Row]:
        while row is not None:
            yield row
            if row.parent_id is None:
                return
            row = conn.execute(select(s.commits).where(s.commits.c.id == row.parent_id)).one()

    def inspect_commit_set(self, commit_id: str, wait: bool = False, timeout: float | None = None) -> CommitSetInfo:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL
        while True:
            with self.b.db.read() as conn:
                rows = conn.execute(
                    select(s.commits).where(s.commits.c.commit_id == commit_id).order_by(s.commits.c.id)
                ).all()
                if not rows:
                    raise NotFound(f"commit set {commit_id} not found")
                infos = tuple(self.commit_info(conn, r) for r in rows)
            cs = CommitSetInfo(commit_id, infos, min(r.started_at for r in rows))
            if not wait or cs.finished:
                return cs
            delay = self._sleep(delay, deadline, f"commit set {commit_id}")

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
            repo = self._repo_row(conn, ref)
            floor = 0
            if from_id is not None:
                floor = self.resolve_commit(conn, CommitRef(ref, None, from_id)).id
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
                    yield self.commit_info(conn, row)
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
                        f"cannot delete commit set {commit_id}: its commit in {self._repo_label(conn, r)}"
                        f" has child commit {kids[0]}; squash instead, or delete the newer sets first"
                    )
                self._check_no_outside_dependents(conn, r, pks, commit_id)
            for r in rows:
                for br in conn.execute(select(s.branches).where(s.branches.c.head_id == r.id)).all():
                    if r.parent_id is not None:
                        new_head = r.parent_id
                    else:
                        new_head = self._new_commit(conn, r.repo_id, br.name, None, AUTO, new_id(), now, finished=True)
                    self._move_head(conn, br.id, r.id, new_head, now)
            self._drop_rows(conn, pks, squashed=False)

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
                        f"cannot squash commit set {commit_id}: its commit in {self._repo_label(conn, r)}"
                        " has no children, so its data would be lost; use 'tusk delete commit' to drop it"
                    )
                # An open child's content is its base (this commit, or this commit through
                # errored children) plus its staged changes: re-parenting would drop our data.
                open_kid = self._open_dependant(conn, kids, pks)
                if open_kid is not None:
                    raise FailedPrecondition(
                        f"cannot squash commit set {commit_id}: child commit"
                        f" {self._repo_label(conn, r)}@{open_kid.commit_id} is still open; finish it first"
                    )
                # A branch whose head is this commit would be left pointing at nothing.
                head = conn.execute(select(s.branches.c.name).where(s.branches.c.head_id == r.id)).first()
                if head is not None:
                    raise FailedPrecondition(
                        f"cannot squash commit set {commit_id}: it is the head of branch"
                        f" {self._repo_label(conn, r)}@{head[0]}; move that branch first"
                    )
                self._check_no_outside_dependents(conn, r, pks, commit_id)
            for r in rows:
                conn.execute(update(s.commits).where(s.commits.c.parent_id == r.id).values(parent_id=r.parent_id))
            self._drop_rows(conn, pks, squashed=True)

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
                f"commit set {commit_id} is provenance of commit {self._repo_label(conn, other)}@"
                f"{other.commit_id}; delete or squash that set first"
            )

    def _drop_rows(self, conn: Connection, pks: set[int], squashed: bool = False) -> None:
        # The pipeline layer's jobs for these commits go (delete) or stop (squash) in this same
        # transaction. PFS knows nothing else of pipelines; this one call is why it imports PPS.
        from tusk.pps.commit_cleanup import forget_output_commits

        forget_output_commits(conn, pks, squashed)
        cp = s.commit_provenance
        ids = list(pks)
        conn.execute(delete(cp).where(cp.c.commit_pk.in_(ids) | cp.c.upstream_pk.in_(ids)))
        conn.execute(delete(s.staging).where(s.staging.c.commit_pk.in_(ids)))
        conn.execute(delete(s.output_listings).where(s.output_listings.c.commit_pk.in_(ids)))
        conn.execute(delete(s.commits).where(s.commits.c.id.in_(ids)))

    def _repo_label(self, conn: Connection, row: Row) -> str:
        r = conn.execute(select(s.repos).where(s.repos.c.id == row.repo_id)).one()
        return str(RepoRef(r.project, r.name))
