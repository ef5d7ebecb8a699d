"""Projects and repos, and the lookups that turn their names (and branch names) into rows.

The catalog owns naming and existence: a project holds repos, a repo holds branches and
commits. Deleting a repo refuses while a branch of another repo has provenance in it (unless
forced). All writes happen inside ``Database.tx()``.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, Row, delete, select, update

from tusk.errors import AlreadyExists, FailedPrecondition, NotFound
from tusk.pfs.model import ProjectInfo, RepoInfo
from tusk.pfs.names import DEFAULT_PROJECT, check_project_name, check_repo_name
from tusk.pfs.refs import RepoRef
from tusk.storage import schema as s
from tusk.storage.backend import Backend


class Catalog:
    """Projects and repos of one root, and the lookups of names to rows (held by
    ``PfsService`` as ``catalog``)."""

    def __init__(self, b: Backend) -> None:
        self.b = b

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
            r = self.project_row(conn, name)
        return ProjectInfo(r.name, r.description, r.created_at)

    def update_project(self, name: str, description: str) -> ProjectInfo:
        with self.b.db.tx() as conn:
            self.project_row(conn, name)
            conn.execute(update(s.projects).where(s.projects.c.name == name).values(description=description))
        return self.inspect_project(name)

    def delete_project(self, name: str, force: bool = False) -> None:
        if name == DEFAULT_PROJECT:
            raise FailedPrecondition("the 'default' project cannot be deleted")
        with self.b.db.tx() as conn:
            self.project_row(conn, name)
            repos = conn.execute(select(s.repos).where(s.repos.c.project == name)).all()
            if repos and not force:
                raise FailedPrecondition(
                    f"project {name!r} still has {len(repos)} repo(s); delete them or use --force"
                )
            for r in repos:
                self.check_no_outside_subvenance(conn, r, force=True, within_project=name)
                self.delete_repo_rows(conn, r.id)
            conn.execute(delete(s.projects).where(s.projects.c.name == name))

    def project_row(self, conn: Connection, name: str) -> Row:
        r = conn.execute(select(s.projects).where(s.projects.c.name == name)).first()
        if r is None:
            raise NotFound(f"project {name!r} not found; create it with 'tusk create project {name}'")
        return r

    # -- repos ------------------------------------------------------------------------------

    def create_repo(self, ref: RepoRef, description: str = "", update: bool = False) -> RepoInfo:
        """Create a repo (``update``: or change its description)."""
        check_repo_name(ref.repo)  # a RepoRef can be built without the parser's checks
        with self.b.db.tx() as conn:
            self.project_row(conn, ref.project)
            existing = self.find_repo(conn, ref)
            if existing is not None:
                if not update:
                    raise AlreadyExists(f"repo {ref} already exists")
                conn.execute(update_repo_stmt(existing.id, description))
            else:
                self.insert_repo(conn, ref, description, time.time())
        return self.inspect_repo(ref)

    def create_repo_in(self, conn: Connection, ref: RepoRef, description: str, now: float) -> None:
        """A new repo in the caller's transaction (a pipeline's output repo, a cron repo); its
        project must exist."""
        check_repo_name(ref.repo)
        self.project_row(conn, ref.project)
        if self.find_repo(conn, ref) is not None:
            raise AlreadyExists(f"repo {ref} already exists")
        self.insert_repo(conn, ref, description, now)

    def check_repo_deletable(self, conn: Connection, ref: RepoRef) -> None:
        """Refuse (FailedPrecondition) if deleting repo ``ref`` would leave a branch of another
        repo with provenance in it; nothing to check if it does not exist."""
        repo = self.find_repo(conn, ref)
        if repo is not None:
            self.check_no_outside_subvenance(conn, repo, False)

    def insert_repo(self, conn: Connection, ref: RepoRef, description: str, now: float) -> None:
        conn.execute(s.repos.insert().values(project=ref.project, name=ref.repo, type="user",
                                             description=description, created_at=now))

    def update_repo(self, ref: RepoRef, description: str) -> RepoInfo:
        """Change a repo's description."""
        with self.b.db.tx() as conn:
            r = self.repo_row(conn, ref)
            conn.execute(update_repo_stmt(r.id, description))
        return self.inspect_repo(ref)

    def inspect_repo(self, ref: RepoRef) -> RepoInfo:
        with self.b.db.read() as conn:
            return self._repo_info(conn, self.repo_row(conn, ref))

    def list_repos(self, project: str | None = DEFAULT_PROJECT) -> list[RepoInfo]:
        with self.b.db.read() as conn:
            q = select(s.repos).order_by(s.repos.c.created_at.desc(), s.repos.c.id.desc())
            if project is not None:
                self.project_row(conn, project)
                q = q.where(s.repos.c.project == project)
            return [self._repo_info(conn, r) for r in conn.execute(q).all()]

    def delete_repo(self, ref: RepoRef, force: bool = False) -> None:
        """Delete a repo with its branches and commits."""
        with self.b.db.tx() as conn:
            r = self.repo_row(conn, ref)
            self.check_no_outside_subvenance(conn, r, force)
            self.delete_repo_rows(conn, r.id)

    def check_no_outside_subvenance(
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

    def delete_repo_rows(self, conn: Connection, repo_id: int) -> None:
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

    def repo_row(self, conn: Connection, ref: RepoRef) -> Row:
        r = self.find_repo(conn, ref)
        if r is None:
            if ref.project != DEFAULT_PROJECT:
                self.project_row(conn, ref.project)
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

    # -- lookups (inside the caller's transaction) -------------------------------------------

    def find_branch(self, conn: Connection, ref: RepoRef, name: str) -> Row | None:
        """Branch ``ref@name``'s row, or None if the repo or the branch does not exist."""
        repo = self.find_repo(conn, ref)
        return None if repo is None else self.branch_row(conn, repo.id, name)

    def branch_row(self, conn: Connection, repo_id: int, name: str) -> Row | None:
        return conn.execute(
            select(s.branches).where(s.branches.c.repo_id == repo_id, s.branches.c.name == name)
        ).first()

    def branch_label(self, conn: Connection, branch_id: int) -> str:
        row = conn.execute(
            select(s.repos.c.project, s.repos.c.name, s.branches.c.name)
            .select_from(s.branches.join(s.repos, s.branches.c.repo_id == s.repos.c.id))
            .where(s.branches.c.id == branch_id)
        ).one()
        return f"{RepoRef(row[0], row[1])}@{row[2]}"


def update_repo_stmt(repo_id: int, description: str):  # type: ignore[no-untyped-def]
    return update(s.repos).where(s.repos.c.id == repo_id).values(description=description)
