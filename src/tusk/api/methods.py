"""What the HTTP API exposes: the allow-list of service methods and how each one answers.

Every exposed method is a public method of ``PfsService`` or ``PpsService`` called with the
same arguments; nothing else on the services is reachable over HTTP. ``CALL`` methods answer
one JSON value, ``STREAM`` methods a JSON line per item as the iterator yields it, ``BYTES``
methods raw bytes. Writing files goes through write sessions (``modify``), which the server
keeps between requests (``server.py``).
"""

from __future__ import annotations

CALL, STREAM, BYTES, SESSION = "call", "stream", "bytes", "session"

PFS_METHODS: dict[str, str] = {
    "create_project": CALL, "list_projects": CALL, "inspect_project": CALL,
    "update_project": CALL, "delete_project": CALL,
    "create_repo": CALL, "update_repo": CALL, "inspect_repo": CALL, "list_repos": CALL,
    "delete_repo": CALL,
    "create_branch": CALL, "inspect_branch": CALL, "list_branches": CALL, "delete_branch": CALL,
    "trigger_branch": CALL,
    "start_commit": CALL, "finish_commit": CALL, "inspect_commit": CALL, "list_commits": CALL,
    "inspect_commit_set": CALL, "list_commit_sets": CALL, "delete_commit_set": CALL,
    "squash_commit_set": CALL, "subscribe_commits": STREAM,
    "inspect_file": CALL, "list_file": CALL, "glob_file": CALL, "diff_file": CALL,
    "walk_file": STREAM, "read_file": BYTES, "modify": SESSION,
    "active_transaction": CALL, "start_transaction": CALL, "finish_transaction": CALL,
    "stop_transaction": CALL, "delete_transaction": CALL, "resume_transaction": CALL,
    "inspect_transaction": CALL,
    "list_transactions": CALL,
    "garbage_collect": CALL, "fsck": CALL,
}

PPS_METHODS: dict[str, str] = {
    "create_pipeline": CALL, "inspect_pipeline": CALL, "list_pipelines": CALL,
    "delete_pipeline": CALL, "stop_pipeline": CALL, "start_pipeline": CALL,
    "rerun_pipeline": CALL, "pipeline_history": CALL, "user_spec": CALL, "run_cron": CALL,
    "draw": CALL,
    "list_jobs": CALL, "inspect_job": CALL, "subscribe_jobs": STREAM, "stop_job": CALL,
    "delete_job": CALL,
    "list_datums": CALL, "inspect_datum": CALL, "preview_datums": CALL, "restart_datum": CALL,
    "logs": STREAM,
    "lineage": CALL, "lineage_downstream": CALL, "explain_job": CALL,
    "finish_transaction": CALL,
}

# What a write session (``FileSession``) does over HTTP; put_stream takes the request body.
SESSION_OPS = ("put_stream", "put_tar", "delete", "copy", "close", "abort")

TRANSACTION_HEADER = "X-Tusk-Transaction"
