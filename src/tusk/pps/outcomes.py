"""What a job's datums came to: per-datum results, and where the controller reads them from.

A job that runs its datums in the controller's own threads (``TUSK_WORKERS=0``, datum batching)
holds their results in memory (``HeldOutcomes``). A job run as durable tasks does not: its
results stay in the task table and its outputs are already listed on the output commit, and the
controller reads them back in batches (``task_run.TaskOutcomes``) to tally the job, write the
datum map and record each datum's run. Both answer the same questions (``Outcomes``), so the
code that seals a job does not care where the datums ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from tusk.pfs import trees
from tusk.pfs.merge import Listing
from tusk.pps import datums as dm

SUCCESS, SKIPPED, FAILED, RECOVERED = "success", "skipped", "failed", "recovered"
# The reason of a datum that 'stop pipeline/job' cut short (or kept from starting): it counts
# as neither processed nor failed in the job's progress.
STOPPED = "the job was stopped"


@dataclass
class DatumResult:
    """One datum's result. ``outputs`` are the entries it wrote when they are held in memory;
    ``written`` their paths (all that is recorded of them once the commit is sealed)."""

    datum: dm.Datum
    state: str
    hash: str
    outputs: list[trees.Entry] = field(default_factory=list)
    reason: str = ""
    attempts: int = 0
    started: float = 0.0
    finished: float = 0.0
    written: list[str] | None = None

    def paths(self) -> list[str]:
        return self.written if self.written is not None else [e.path for e in self.outputs]


def cut_short(r: DatumResult) -> bool:
    return r.reason.endswith(STOPPED)


@dataclass
class Tally:
    """A job's counts, and its first failed datum (for the job's reason)."""

    processed: int = 0
    failed: int = 0
    recovered: int = 0
    first_failed: DatumResult | None = None

    def add(self, r: DatumResult) -> None:
        if r.state == SUCCESS:
            self.processed += 1
        elif r.state == RECOVERED:
            self.recovered += 1
        elif r.state == FAILED:
            self.failed += 1
            if self.first_failed is None:
                self.first_failed = r


class Outcomes(Protocol):
    def listings(self) -> Iterable[Listing]:
        """Output listings the caller holds in memory (the others are on the output commit)."""
        ...

    def batches(self, conn: Any = None) -> Iterator[list[DatumResult]]:
        """Every datum's result, a bounded batch at a time (read in ``conn``'s transaction)."""
        ...


class HeldOutcomes:
    """Results a job's threads produced, in memory."""

    def __init__(self, results: list[DatumResult]) -> None:
        self.results = results

    def listings(self) -> Iterable[Listing]:
        return (Listing(r.datum.id, tuple(r.outputs)) for r in self.results if r.state == SUCCESS)

    def batches(self, conn: Any = None) -> Iterator[list[DatumResult]]:
        for i in range(0, len(self.results), 1000):
            yield self.results[i:i + 1000]
