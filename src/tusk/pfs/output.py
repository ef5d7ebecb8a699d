"""The output API: the one way the pipeline layer writes to PFS (DESIGN.md §5).

A job's output commit is opened (``Output.open``), each datum hands in the *listing* of what it
wrote (``OutputCommit.add_listing``: durable, from any process, idempotent per datum ID), and
the commit is sealed once every datum is in: ``prepare`` merges the listings onto the base
(``merge.py``: pure, with the duplicate-path and collision checks) and ``seal`` lands the content
index rows, the new tree nodes and the finished commit in the caller's metadata transaction, so
the job's own rows change in that same transaction. A caller that keeps its listings in memory
hands them to ``prepare`` directly; both paths merge the same way.

It also answers what the pipeline layer reads about output commits: which ones wait for a job
(``open_commits``), the input commits one was made from (``input_commits``), and it finishes an
output commit that no job will fill with an error (``fail``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import msgpack
from sqlalchemy import Connection, Row, delete, select, update

from tusk.errors import FailedPrecondition
from tusk.pfs import staging, trees
from tusk.pfs.merge import Listing, Merged, merge
from tusk.pfs.refs import RepoRef
from tusk.storage import schema as s
from tusk.storage.backend import Backend

OPEN, FINISHED, AUTO = "open", "finished", "AUTO"

# What a sealed content writer returns (``ContentWriter.seal``): chunk index rows, pack rows.
ContentRows = tuple[list[dict], list[dict]]  # type: ignore[type-arg]


class InputCommit(NamedTuple):
    """One commit an output commit was made from: its repo's row and its own row."""

    repo: Row
    commit: Row


class PendingOutput(NamedTuple):
    """An open output commit (made by propagation) of a repo."""

    commit_pk: int
    commit_id: str
    project: str
    repo: str


def index_content(db, conn: Connection, content: ContentRows | None) -> None:  # type: ignore[no-untyped-def]
    """Index a sealed writer's packs and chunks in ``conn``'s transaction. Idempotent: a
    listing handed in again names the same packs."""
    if content is None:
        return
    chunk_rows, pack_rows = content
    if pack_rows:
        db.insert_ignore(conn, s.packs, pack_rows)
    if chunk_rows:
        db.insert_ignore(conn, s.chunks, chunk_rows)


def _pack_listing(lst: Listing) -> tuple[bytes, bytes]:
    entries = trees.encode_entries(list(lst.entries))  # refuses entries of an unsealed bundle
    return entries, msgpack.packb(list(lst.retract), use_bin_type=True)


def _unpack_listing(datum_id: str, entries: bytes, retract: bytes) -> Listing:
    return Listing(datum_id, tuple(trees.decode_entries(entries)),
                   tuple(msgpack.unpackb(retract, raw=False)))


class OutputCommit:
    """One open output commit being filled by datums. Get it from ``Output.open``."""

    def __init__(self, output: Output, commit_pk: int, commit_id: str, base_root: bytes | None) -> None:
        self.output = output
        self.commit_pk = commit_pk
        self.commit_id = commit_id
        self.base_root = base_root  # the tree the datums' outputs are merged onto

    def add_listing(self, datum_id: str, entries: Sequence[trees.Entry],
                    retract: Sequence[str] = (), content: ContentRows | None = None,
                    conn: Connection | None = None) -> None:
        """Record what datum ``datum_id`` wrote (``entries``) and which paths of its previous
        run go (``retract``), with the index rows of the content it stored, in one metadata
        transaction (``conn``'s, if given: a worker completes its task in the same one).
        Handing a datum's listing in again replaces it (a retried task)."""
        db = self.output.b.db
        if conn is None:
            with db.tx() as tx:
                self.add_listing(datum_id, entries, retract, content, tx)
            return
        blob, gone = _pack_listing(Listing(datum_id, tuple(entries), tuple(retract)))
        t = s.output_listings
        self.output.require_open(conn, self.commit_pk)
        index_content(db, conn, content)
        conn.execute(delete(t).where(t.c.commit_pk == self.commit_pk, t.c.datum_id == datum_id))
        conn.execute(t.insert().values(commit_pk=self.commit_pk, datum_id=datum_id,
                                       entries=blob, retract=gone))

    def withdraw(self, datum_id: str) -> None:
        """Forget a datum's listing (its task is handed out again)."""
        t = s.output_listings
        with self.output.b.db.tx() as conn:
            conn.execute(delete(t).where(t.c.commit_pk == self.commit_pk, t.c.datum_id == datum_id))

    def listings(self) -> list[Listing]:
        """The listings handed in so far, by datum ID."""
        t = s.output_listings
        with self.output.b.db.read() as conn:
            rows = conn.execute(select(t.c.datum_id, t.c.entries, t.c.retract)
                                .where(t.c.commit_pk == self.commit_pk).order_by(t.c.datum_id)).all()
        return [_unpack_listing(*r) for r in rows]

    def prepare(self, listings: Iterable[Listing] = (), failure: str = "") -> Merged:
        """Merge the handed-in listings, then ``listings`` (a caller's in memory), onto the
        base. A caller's listing of a datum that was handed in too wins, except that one with
        no entries only adds its retractions to the handed-in files (a datum that ran as a task
        wrote its files; the caller knows what its previous run wrote). ``failure``: the job
        failed for this reason, so the commit keeps the base's content (a duplicate path is
        reported first). Call it once every datum is in; nothing is written."""
        by_datum = {lst.datum_id: lst for lst in self.listings()}
        for lst in listings:
            had = by_datum.get(lst.datum_id)
            if had is not None and not lst.entries:
                lst = Listing(lst.datum_id, had.entries, lst.retract)
            by_datum[lst.datum_id] = lst
        return merge(self.output.b.nodes, self.base_root, by_datum.values(), failure)

    def seal(self, conn: Connection, merged: Merged, content: ContentRows | None = None,
             extra_nodes: dict[bytes, bytes] | None = None) -> None:
        """Finish the commit with ``merged`` (from ``prepare``) in ``conn``'s transaction: the
        content index rows, the tree nodes (and ``extra_nodes``, e.g. a job's datum map, a tree
        kept alongside), the commit's tree and state. A commit that is no longer open (finished
        or deleted meanwhile) is a FailedPrecondition and the caller's transaction rolls back."""
        db = self.output.b.db
        index_content(db, conn, content)
        nodes = {**merged.nodes, **(extra_nodes or {})}
        if nodes:
            db.insert_ignore(conn, s.tree_nodes, [{"hash": h, "data": d} for h, d in nodes.items()])
        self.output.finish(conn, self.commit_pk, merged.root, merged.size, merged.count, merged.error)


class Output:
    """The output API of one root (held by ``PfsService`` as ``output``)."""

    def __init__(self, b: Backend, view: Callable[[Connection, Row], trees.Tree],
                 on_finished: Callable[[Connection, int, float], None]) -> None:
        self.b = b
        self._view = view  # a commit's content (commits.py)
        self._on_finished = on_finished  # triggers following a branch whose head just finished

    # -- writing ----------------------------------------------------------------------------

    def open(self, commit_pk: int, base: int | None = None) -> OutputCommit:
        """The open output commit ``commit_pk``, whose datums' outputs go onto the content of
        commit ``base`` (the pipeline's last successful output; None: nothing)."""
        c = s.commits
        with self.b.db.read() as conn:
            # Not checked for being open here: a job stopped meanwhile finds out at seal, in
            # the transaction that also sees its own state.
            commit_id = conn.execute(select(c.c.commit_id).where(c.c.id == commit_pk)).scalar()
            base_root = None if base is None else conn.execute(
                select(c.c.tree).where(c.c.id == base)).scalar()
        return OutputCommit(self, commit_pk, commit_id or "", base_root)

    def require_open(self, conn: Connection, commit_pk: int) -> Row:
        row = conn.execute(select(s.commits).where(s.commits.c.id == commit_pk)).first()
        if row is None or row.state != OPEN:
            raise FailedPrecondition("the output commit was finished or deleted while the job ran")
        return row

    def finish(self, conn: Connection, commit_pk: int, root: bytes | None, size: int, count: int,
               error: str = "") -> None:
        """Finish an open commit with a tree built elsewhere, in ``conn``'s transaction."""
        res = conn.execute(
            update(s.commits).where(s.commits.c.id == commit_pk, s.commits.c.state == OPEN).values(
                state=FINISHED, finished_at=time.time(), tree=root, size_bytes=size,
                file_count=count, error=error)
        )
        if res.rowcount != 1:
            raise FailedPrecondition("the output commit was finished or deleted while the job ran")
        staging.clear(conn, commit_pk)
        conn.execute(delete(s.output_listings).where(s.output_listings.c.commit_pk == commit_pk))
        if not error:  # a branch may trigger on a pipeline's output branch
            self._on_finished(conn, commit_pk, time.time())

    def fail(self, conn: Connection, commit_pk: int, reason: str) -> bool:
        """Finish output commit ``commit_pk`` with ``reason`` as its error if it is still open
        (a job killed, superseded or unrunnable); False if it was not open."""
        state = conn.execute(select(s.commits.c.state).where(s.commits.c.id == commit_pk)).scalar()
        if state != OPEN:
            return False
        self.finish(conn, commit_pk, None, 0, 0, reason)
        return True

    # -- reading ----------------------------------------------------------------------------

    def open_commits(self, conn: Connection, repo: RepoRef | None = None) -> list[PendingOutput]:
        """Open commits made by propagation (a pipeline's next outputs), oldest first; only
        ``repo``'s with ``repo``."""
        c, r = s.commits, s.repos
        q = (select(c.c.id, c.c.commit_id, r.c.project, r.c.name)
             .select_from(c.join(r, c.c.repo_id == r.c.id))
             .where(c.c.state == OPEN, c.c.origin == AUTO).order_by(c.c.id))
        if repo is not None:
            q = q.where(r.c.project == repo.project, r.c.name == repo.repo)
        return [PendingOutput(*row) for row in conn.execute(q).all()]

    def input_commits(self, conn: Connection, commit_pk: int) -> list[InputCommit]:
        """The commits output commit ``commit_pk`` was made from (its commit provenance)."""
        c, cp, r = s.commits, s.commit_provenance, s.repos
        rows = conn.execute(select(c).select_from(cp.join(c, cp.c.upstream_pk == c.c.id))
                            .where(cp.c.commit_pk == commit_pk).order_by(c.c.id)).all()
        repos: dict[int, Row] = {}
        for row in rows:
            if row.repo_id not in repos:
                repos[row.repo_id] = conn.execute(select(r).where(r.c.id == row.repo_id)).one()
        return [InputCommit(repos[row.repo_id], row) for row in rows]

    def input_trees(self, conn: Connection, commit_pk: int) -> dict[tuple[str, str, str], tuple[str, trees.Tree]]:
        """(project, repo, branch made on) -> (commit ID, content) of each input commit."""
        return {(i.repo.project, i.repo.name, i.commit.branch or "master"):
                (i.commit.commit_id, self._view(conn, i.commit))
                for i in self.input_commits(conn, commit_pk)}
