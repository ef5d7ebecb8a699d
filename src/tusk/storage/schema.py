"""The metadata schema: one SQLAlchemy Core definition that runs on SQLite and PostgreSQL.

Metadata is everything that is not file bytes: projects, repos, branches (the only mutable
refs), commits, provenance, the staged operations of open commits, tree nodes (the immutable
sorted path maps of commits) and the chunk index (which pack holds which chunk).

Tree nodes live here rather than in the object store on purpose: a commit's new nodes, its
head move and the chunk index rows for its packs then land in *one* metadata transaction, so
a finished commit is durable after one database sync and can never point at a half-written tree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# 2: ids that other rows refer to are never reused (AUTOINCREMENT on SQLite; see db.py).
SCHEMA_VERSION = 2

meta_info = Table(
    "meta_info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
)

repos = Table(
    "repos",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("type", String(16), nullable=False, default="user"),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("project", "name", "type", name="uq_repo_name"),
    sqlite_autoincrement=True,  # never reuse an id: other rows name it
)

commits = Table(
    "commits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repo_id", Integer, ForeignKey("repos.id"), nullable=False),
    Column("commit_id", String(32), nullable=False),  # the global ID shared by a commit set
    Column("branch", String(64), nullable=True),  # the branch it was made on
    Column("parent_id", Integer, nullable=True),
    Column("origin", String(8), nullable=False),  # USER | AUTO
    Column("description", Text, nullable=False, default=""),
    Column("state", String(10), nullable=False),  # open | finished
    Column("error", Text, nullable=False, default=""),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("tree", LargeBinary, nullable=True),  # root node hash; NULL = empty tree
    Column("size_bytes", BigInteger, nullable=False, default=0),
    Column("file_count", BigInteger, nullable=False, default=0),
    UniqueConstraint("repo_id", "commit_id", name="uq_commit_in_repo"),
    sqlite_autoincrement=True,  # never reuse an id: other rows name it
)
Index("ix_commits_commit_id", commits.c.commit_id)
Index("ix_commits_parent", commits.c.parent_id)
Index("ix_commits_repo_started", commits.c.repo_id, commits.c.id)

branches = Table(
    "branches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repo_id", Integer, ForeignKey("repos.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("head_id", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("repo_id", "name", name="uq_branch_name"),
    sqlite_autoincrement=True,  # never reuse an id: other rows name it
)
Index("ix_branches_head", branches.c.head_id)

branch_provenance = Table(
    "branch_provenance",
    metadata,
    Column("branch_id", Integer, ForeignKey("branches.id"), primary_key=True),
    Column("upstream_id", Integer, ForeignKey("branches.id"), primary_key=True),
)
Index("ix_branch_prov_upstream", branch_provenance.c.upstream_id)

commit_provenance = Table(
    "commit_provenance",
    metadata,
    Column("commit_pk", Integer, primary_key=True),
    Column("upstream_pk", Integer, primary_key=True),
)
Index("ix_commit_prov_upstream", commit_provenance.c.upstream_pk)

# Staged operations of open commits. ``prefix`` rows are recursive directory deletions and are
# applied to the parent's tree before the per-path rows.
staging = Table(
    "staging",
    metadata,
    Column("commit_pk", Integer, primary_key=True),
    Column("prefix", Boolean, primary_key=True),
    Column("path", Text, primary_key=True),
    Column("op", String(8), nullable=False),  # put | append | delete | deldir
    Column("entry", LargeBinary, nullable=True),
)

# Per-datum output listings of an open output commit (``pfs/output.py``): what a datum wrote
# (msgpack entries) and which of its earlier outputs go (msgpack paths), merged in at seal.
output_listings = Table(
    "output_listings",
    metadata,
    Column("commit_pk", Integer, primary_key=True),
    Column("datum_id", String(64), primary_key=True),
    Column("entries", LargeBinary, nullable=False),
    Column("retract", LargeBinary, nullable=False),
)

tree_nodes = Table(
    "tree_nodes",
    metadata,
    Column("hash", LargeBinary, primary_key=True),
    Column("data", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

chunks = Table(
    "chunks",
    metadata,
    Column("hash", LargeBinary, primary_key=True),
    Column("pack", String(80), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("length", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
Index("ix_chunks_pack", chunks.c.pack)

packs = Table(
    "packs",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

# -- PPS ---------------------------------------------------------------------------------------

pipelines = Table(
    "pipelines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("spec", Text, nullable=False),  # effective spec, JSON
    Column("user_spec", Text, nullable=False),  # as the user wrote it, JSON
    Column("salt", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # running | paused | failure
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("project", "name", name="uq_pipeline_name"),
    sqlite_autoincrement=True,  # never reuse an id: other rows name it
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline_id", Integer, nullable=False),
    Column("job_id", String(32), nullable=False),  # the commit set's global ID
    Column("version", Integer, nullable=False),
    Column("commit_pk", Integer, nullable=False),  # the output commit
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("processed", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("recovered", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=False, default=0),
    Column("datum_map", LargeBinary, nullable=True),  # tree root: datum id -> (hash, state, run job)
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    UniqueConstraint("pipeline_id", "job_id", name="uq_job"),
    sqlite_autoincrement=True,  # never reuse an id: other rows name it
)
Index("ix_jobs_state", jobs.c.state)

# -- pipeline lifecycle ------------------------------------------------------------------------

# Every version a pipeline has had (create, update, edit, rerun): what `list pipeline --history`
# shows and what a job's `version` refers to.
pipeline_versions = Table(
    "pipeline_versions",
    metadata,
    Column("pipeline_id", Integer, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("spec", Text, nullable=False),  # effective spec, JSON
    Column("user_spec", Text, nullable=False),
    Column("salt", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

# `restart datum` requests for running jobs; the job's watcher polls them and restarts the
# datums that match (by datum ID prefix or input path).
restart_requests = Table(
    "restart_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_pk", Integer, nullable=False, index=True),
    Column("pattern", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# One row per datum a job actually ran (skipped datums keep pointing at the job that ran them):
# the file-level lineage of what went in and what came out.
datum_runs = Table(
    "datum_runs",
    metadata,
    Column("job_pk", Integer, primary_key=True),
    Column("datum_id", String(64), primary_key=True),
    Column("state", String(12), nullable=False),  # success | failed | recovered
    Column("hash", String(64), nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("inputs", LargeBinary, nullable=False),  # msgpack [[name, repo, path, file hash], ...]
    Column("outputs", LargeBinary, nullable=False),  # msgpack [path, ...]
    Column("reason", Text, nullable=False, default=""),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
)

# -- PPS: datum tasks (owned by pps/tasks.py) ---------------------------------------------------

# The unit of execution: one row per datum a job must run, written before any runs. A worker
# takes a task under a lease (owner + lease_until), renews it while the datum runs and completes
# it with the datum's output listing; an expired lease puts the task back for another worker.
datum_tasks = Table(
    "datum_tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_pk", Integer, nullable=False),
    Column("datum_id", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # msgpack: what the worker needs to run the datum without asking the controller (inputs as
    # content references: name, repo, path, content hash, size, chunks; join/group keys; ...)
    Column("spec", LargeBinary, nullable=False),
    Column("state", String(12), nullable=False),  # pending | running | done
    Column("attempt", Integer, nullable=False, default=0),  # attempts started so far
    Column("tries", Integer, nullable=False, default=3),  # datum_tries: attempts allowed
    Column("owner", String(64), nullable=False, default=""),  # the worker holding the lease
    Column("lease_until", Float, nullable=False, default=0.0),
    Column("result", String(12), nullable=False, default=""),  # success | failed | recovered
    Column("outputs", LargeBinary, nullable=True),  # msgpack listing of the datum's output
    Column("reason", Text, nullable=False, default=""),
    Column("started_at", Float, nullable=False, default=0.0),
    Column("finished_at", Float, nullable=False, default=0.0),
    UniqueConstraint("job_pk", "datum_id"),
    sqlite_autoincrement=True,
)
Index("datum_tasks_claim", datum_tasks.c.job_pk, datum_tasks.c.state, datum_tasks.c.id)
# A job's progress counts (state, result) come from this index alone.
Index("datum_tasks_job", datum_tasks.c.job_pk, datum_tasks.c.state, datum_tasks.c.result)
# A worker serving any job looks for the oldest open task across jobs.
Index("datum_tasks_open", datum_tasks.c.state, datum_tasks.c.id)

# -- PPS: file-level lineage and planning reasons (owned by pps/lineage.py) ---------------------

# Why the planner ran each datum (new | changed | previously failed | reprocess requested); a
# skipped datum has no row for the job, so it is "unchanged" by definition.
datum_runs.append_column(Column("why", String(24), nullable=False, default=""))
# The salt a job planned with: a base job's salt differing from the current one tells a
# reprocess request apart from changed data. NULL for jobs that never started.
jobs.append_column(Column("salt", String(64), nullable=True))
# The image the job ran, pinned (``name@sha256:...``, resolved when the job started), and the
# image ID that keys its unpacked root; NULL for a job that ran no image.
jobs.append_column(Column("image", Text, nullable=True))
jobs.append_column(Column("image_id", String(80), nullable=True))

# The reverse of datum_runs.inputs: which datum runs read a given input file version, so
# 'lineage --downstream' is an index lookup instead of a scan of every job's datums.
datum_inputs = Table(
    "datum_inputs",
    metadata,
    Column("project", String(64), nullable=False),
    Column("repo", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("hash", String(64), nullable=False),  # hex content hash of the file the datum read
    Column("job_pk", Integer, nullable=False),
    Column("datum_id", String(64), nullable=False),
)
Index("ix_datum_inputs_file", datum_inputs.c.project, datum_inputs.c.repo, datum_inputs.c.path)

# -- PFS branch triggers and transactions --------------------------------------------------------

# A trigger moves its branch (``branch_id``) to the head of ``source``, a branch of the same repo,
# once a condition holds. ``fired_at`` restarts the cron clock (trigger creation, last firing).
branch_triggers = Table(
    "branch_triggers",
    metadata,
    Column("branch_id", Integer, primary_key=True),
    Column("repo_id", Integer, nullable=False),
    Column("source", String(64), nullable=False),
    Column("size", String(32), nullable=False, default=""),  # as written, e.g. "1MB"
    Column("size_bytes", BigInteger, nullable=False, default=0),
    Column("commits", Integer, nullable=False, default=0),
    Column("cron_spec", Text, nullable=False, default=""),
    Column("all_conditions", Boolean, nullable=False, default=False),
    Column("fired_at", Float, nullable=False),
)
Index("ix_branch_triggers_source", branch_triggers.c.repo_id, branch_triggers.c.source)

# A transaction's id is also the commit set ID of the commits it makes. The active one is the
# meta_info row "active_transaction". Its commits exist (hidden: no branch points at them) while
# it is open; the rest of its work waits in transaction_ops until 'finish transaction'.
transactions = Table(
    "transactions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("state", String(10), nullable=False),  # open | finished
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
)

transaction_ops = Table(
    "transaction_ops",
    metadata,
    Column("txn_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # commit | finish | create_branch | delete_branch
    Column("repo_id", Integer, nullable=False),
    Column("branch", String(64), nullable=True),
    Column("commit_pk", Integer, nullable=True),
    Column("expect_pk", Integer, nullable=True),  # the branch head when the commit was started
    Column("args", Text, nullable=False, default="{}"),  # JSON
)
