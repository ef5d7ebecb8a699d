"""Commit rows: resolving a ref to its commit, making commits, moving heads, and their content.

The lowest layer of the commit graph that the other PFS components share: how ``repo@branch^2``
or ``repo@<id>.3`` becomes a row, how a new commit row is made and a branch head swapped to it
by compare-and-set (the only way a head moves), what a commit holds (a finished commit's tree,
an open one's base plus staged changes), and how an open commit is finished from its staged
changes. Every method works inside the caller's metadata transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from sqlalchemy import Connection, Row, delete, func, select, update

from tusk.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from tusk.pfs import staging, trees
from tusk.pfs.catalog import Catalog
from tusk.pfs.merge import collision
from tusk.pfs.model import CommitInfo
from tusk.pfs.refs import CommitRef, RepoRef
from tusk.storage import schema as s
from tusk.storage.backend import Backend, OverlayNodeStore

USER, AUTO = "USER", "AUTO"
OPEN, FINISHED = "open", "finished"


def new_id() -> str:
    """A fresh global ID: 32 lowercase hex characters, as Pachyderm's."""
    return uuid.uuid4().hex


class CommitRows:
    """Commit rows of one root (held by ``PfsService`` as ``rows``)."""

    def __init__(self, b: Backend, catalog: Catalog) -> None:
        self.b = b
        self.catalog = catalog

    # -- resolution -------------------------------------------------------------------------

    def resolve_commit(self, conn: Connection, ref: CommitRef) -> Row:
        repo = self.catalog.repo_row(conn, ref.repo)
        c = s.commits
        if ref.commit_id is not None:
            row = conn.execute(select(c).where(c.c.repo_id == repo.id, c.c.commit_id == ref.commit_id)).first()
            if row is None:
                raise NotFound(f"commit {ref.repo}@{ref.commit_id} not found")
        else:
            br = self.catalog.branch_row(conn, repo.id, ref.branch or "master")
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

    def repo_label(self, conn: Connection, row: Row) -> str:
        r = self.repo_of(conn, row)
        return str(RepoRef(r.project, r.name))

    def newest_finished(self, conn: Connection, ref: CommitRef) -> Row | None:
        """``ref``'s commit, or its nearest finished ancestor while it is open (None: none)."""
        row: Row | None = self.resolve_commit(conn, ref)
        while row is not None and row.state != FINISHED:
            row = self.parent_of(conn, row)
        return row

    def ancestry(self, conn: Connection, row: Row) -> Iterator[Row]:
        """A commit and its ancestors, newest first."""
        current: Row | None = row
        while current is not None:
            yield current
            current = self.parent_of(conn, current)

    # -- content ----------------------------------------------------------------------------

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

    def check_collisions(self, res: trees.ApplyResult, base: trees.Tree, written: list[str]) -> None:
        """Refuse (InvalidArgument) a new tree in which a written path is both a file and a
        directory."""
        error = collision(trees.Tree(OverlayNodeStore(res.nodes, self.b.nodes), res.root), base, written)
        if error:
            raise InvalidArgument(error)

    # -- making and moving ------------------------------------------------------------------

    def new_commit(
        self, conn: Connection, repo_id: int, branch: str | None, parent: int | None, origin: str,
        commit_id: str, now: float, *, finished: bool, description: str = "",
        tree: bytes | None = None, size: int = 0, count: int = 0,
    ) -> int:
        """A new commit row; a finished one without a tree of its own has its parent's."""
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

    def move_head(self, conn: Connection, branch_id: int, expect: int, new: int, now: float) -> None:
        """Compare-and-set a branch head; losing the race is a Conflict, never a lost update."""
        res = conn.execute(
            update(s.branches)
            .where(s.branches.c.id == branch_id, s.branches.c.head_id == expect)
            .values(head_id=new, updated_at=now)
        )
        if res.rowcount != 1:
            raise Conflict("the branch moved while this change was being written; run it again")

    def set_id_for(self, conn: Connection, repo_id: int, set_id: str | None) -> str:
        """The commit ID for a new commit in ``set_id``: a repo holds one commit per set, so
        when the set already has one here the new commit starts a set of its own."""
        if set_id is None or conn.execute(select(s.commits.c.id).where(
                s.commits.c.repo_id == repo_id, s.commits.c.commit_id == set_id)).first():
            return new_id()
        return set_id

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

    def drop_rows(self, conn: Connection, pks: set[int], squashed: bool = False) -> None:
        """Delete commits with their provenance, staged changes and output listings."""
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
