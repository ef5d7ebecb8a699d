"""Pipelines in transactions: ``create pipeline`` and ``update pipeline`` while a transaction is
active are checked at once and queued; ``finish transaction`` applies them.

Pachyderm lets a transaction create or update pipelines together with the commits and branches
it holds, so that, for example, a new pipeline and the first commit to its input make one commit
set and one job. Here:

* **On arrival** the spec is checked as a dry run would check it, counting the repos that the
  transaction's own queued ``create repo`` and ``create pipeline`` operations will create as
  existing. A pipeline the transaction already creates cannot be created twice, and an update
  needs the pipeline to exist or to be created earlier in the same transaction.
* **At finish** every queued pipeline change is checked again (the root may have changed while
  the transaction was open) *before* anything is applied. Then ``PfsService.finish_transaction``
  applies the commits, branches and repos in one metadata transaction, and the pipelines are
  created or updated in queue order with the transaction's ID as their commit set: the first
  output commit and job of each carry the transaction's ID, as the other commits do. Several
  changes to one pipeline apply as one, with the last spec (``_collapse``), and a pipeline is
  applied after the changed pipelines it reads (``_upstream_first``), so each runs once.
  Not yet: updating two *existing* pipelines of one chain. The upstream update's new output
  commit reaches the downstream pipeline before its own update applies, so that one gets a job
  that its update then supersedes, with an errored commit in the set.

Each pipeline change is one metadata transaction of its own (``create.py``), but the changes
are not applied atomically with the PFS part. The check just
before finishing makes a failure there unlikely: it needs someone else to create a clashing
repo or pipeline in the moment between the check and the apply. If it happens, the error names
the pipeline, and the PFS part of the transaction stays applied.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from tusk.errors import AlreadyExists, FailedPrecondition
from tusk.pfs import transactions
from tusk.pfs.refs import RepoRef
from tusk.pps.spec import PipelineSpec, parse_spec

if TYPE_CHECKING:
    from tusk.pfs.transactions import TransactionInfo
    from tusk.pps.model import PipelineInfo
    from tusk.pps.service import PpsService


def check(pps: PpsService, spec: PipelineSpec, update: bool,
          coming: frozenset[RepoRef] = frozenset()) -> PipelineInfo:
    """A dry run inside the transaction: as if its queued changes (and ``coming``) had happened."""
    tid = _tid(pps)
    _refuse_deleted_inputs(pps, tid, spec)
    _check(_plain(pps), [*_queued(pps, tid), (spec, update, False)], _repos_created(pps, tid) | coming)
    return pps._info_of_spec(spec)


def queue(pps: PpsService, spec: PipelineSpec, update: bool, reprocess: bool) -> PipelineInfo:
    """Check a pipeline change against the root and the transaction's queue, then queue it."""
    check(pps, spec, update)
    pps.pfs.queue_pipeline_op({
        "project": spec.project, "name": spec.name, "user_doc": spec.user_doc,
        "update": update, "reprocess": reprocess,
    })
    return pps._info_of_spec(spec)


def finish(pps: PpsService, txn_id: str | None) -> TransactionInfo:
    """Check the queued pipeline changes again, finish the PFS part, then apply them."""
    tid = pps.pfs.transaction_id(txn_id)
    queued = _queued(pps, tid)
    plain = _plain(pps)
    if queued:
        for spec, _update, _reprocess in queued:
            _refuse_deleted_inputs(pps, tid, spec)
        _check(plain, queued, _repos_created(pps, tid))
    info = plain.pfs.finish_transaction(tid, pipelines_follow=True)
    for spec, update, reprocess in _upstream_first(_collapse(queued)):
        plain.create_pipeline(spec, update=update, reprocess=reprocess, set_id=tid)
    return info


def _upstream_first(changes: list[tuple[PipelineSpec, bool, bool]]) -> list[tuple[PipelineSpec, bool, bool]]:
    """The changes with every pipeline after the changed pipelines it reads (else queue order).

    A pipeline created after the pipeline it reads was updated sees that update's output commit,
    in the same commit set, and runs once on it; the other way round it would run on the old
    output first and then again.
    """
    def out(change: tuple[PipelineSpec, bool, bool]) -> RepoRef:
        return RepoRef(change[0].project, change[0].name)

    def reads(spec: PipelineSpec) -> set[RepoRef]:
        return {RepoRef(leaf.project, leaf.repo) for leaf in spec.input.walk()} if spec.input else set()

    changed = {out(c) for c in changes}
    waiting = [(c, (reads(c[0]) & changed) - {out(c)}) for c in changes]  # (change, changed inputs)
    ordered: list[tuple[PipelineSpec, bool, bool]] = []
    done: set[RepoRef] = set()
    while waiting:
        ready = next((w for w in waiting if w[1] <= done), None)
        if ready is None:
            return ordered + [c for c, _ in waiting]  # a cycle: creating it fails with its own error
        waiting.remove(ready)
        ordered.append(ready[0])
        done.add(out(ready[0]))
    return ordered


def _collapse(changes: list[tuple[PipelineSpec, bool, bool]]) -> list[tuple[PipelineSpec, bool, bool]]:
    """One change per pipeline, at its first place in the queue, with its last spec.

    Applying a create and then an update of the same pipeline one after the other would give
    the first version a job that the second supersedes, and that job's output commit, in the
    transaction's commit set, would end with an error. A transaction applies its changes
    together, so only the final spec counts; a reprocess asked by any of them is kept.
    """
    merged: dict[RepoRef, tuple[PipelineSpec, bool, bool]] = {}
    for spec, update, reprocess in changes:
        out = RepoRef(spec.project, spec.name)
        if out in merged:  # keep where (and whether as a create) it first came; take this spec
            _, first_update, first_reprocess = merged[out]
            merged[out] = (spec, first_update, first_reprocess or reprocess)
        else:
            merged[out] = (spec, update, reprocess)
    return list(merged.values())


def _tid(pps: PpsService) -> str:
    tid = pps.pfs.transaction
    assert tid is not None  # only called inside a transaction
    return tid


def _plain(pps: PpsService) -> PpsService:
    """The same service outside the transaction: checks and applies must not queue."""
    pfs = copy.copy(pps.pfs)
    pfs.transaction = None
    return type(pps)(pfs)


def _queued(pps: PpsService, tid: str) -> list[tuple[PipelineSpec, bool, bool]]:
    out = []
    for args in pps.pfs.queued_ops(tid, transactions.PIPELINE_OP):
        spec = parse_spec(args["user_doc"], f"pipeline {args['name']}", args["project"])
        out.append((spec, bool(args.get("update")), bool(args.get("reprocess"))))
    return out


def _repos_created(pps: PpsService, tid: str) -> set[RepoRef]:
    return {RepoRef(a["project"], a["name"])
            for a in pps.pfs.queued_ops(tid, "create_repo")}


def _refuse_deleted_inputs(pps: PpsService, tid: str, spec: PipelineSpec) -> None:
    """An input repo the transaction deletes would be gone when the pipeline is applied."""
    gone = pps.pfs.repos_deleted_by(tid)
    for leaf in spec.input.walk() if spec.input else ():
        ref = RepoRef(leaf.project, leaf.repo)
        if ref in gone:
            raise FailedPrecondition(f"pipeline {spec.name}: input repo {ref} is deleted by this"
                                     " transaction")


def _check(pps: PpsService, changes: list[tuple[PipelineSpec, bool, bool]],
           repos: set[RepoRef]) -> None:
    """Dry-run each change in order, as if the ones before it (and the queued repos) existed."""
    from tusk.pps.create import check as check_one

    created: set[RepoRef] = set()  # output repos of the pipelines created so far
    coming = set(repos)
    before: list[PipelineSpec] = []  # the changes checked so far: the cycle check counts them
    for spec, update, _reprocess in changes:
        out = RepoRef(spec.project, spec.name)
        if out in created:
            if not update:
                raise AlreadyExists(f"pipeline {spec.name} is already created by this transaction;"
                                    " use 'tusk update pipeline' to change its spec")
            # An update of a pipeline the transaction creates: check the spec as a create.
            check_one(pps, spec, False, True, frozenset(coming - {out}), tuple(before))
            before.append(spec)
            continue
        if not update and out in repos:
            raise AlreadyExists(f"this transaction creates repo {out}; a pipeline's output repo"
                                " takes the pipeline's name")
        check_one(pps, spec, update, True, frozenset(coming), tuple(before))
        before.append(spec)
        if not update:
            created.add(out)
            coming.add(out)

