"""PPS value types returned by the service and rendered by every surface."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tusk.pfs.model import iso

TERMINAL = ("SUCCESS", "FAILURE", "KILLED", "UNRUNNABLE")


@dataclass(frozen=True)
class PipelineInfo:
    project: str
    name: str
    version: int
    state: str
    reason: str
    spec: dict[str, Any]
    created_at: float
    updated_at: float
    last_job_state: str | None = None
    input_repos: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = iso(self.created_at)
        d["updated_at"] = iso(self.updated_at)
        d["input_repos"] = list(self.input_repos)
        return d


@dataclass(frozen=True)
class JobInfo:
    project: str
    pipeline: str
    id: str
    version: int
    state: str
    reason: str
    processed: int
    skipped: int
    failed: int
    recovered: int
    total: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    output_commit: str = ""
    image: str = ""  # the image the job ran, pinned to the digest it resolved (or "")

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("created_at", "started_at", "finished_at"):
            d[k] = iso(d[k])
        return d


@dataclass(frozen=True)
class DatumInfo:
    id: str
    state: str  # SUCCESS | SKIPPED | FAILED | RECOVERED
    job: str  # the job that last ran it
    files: tuple[str, ...] = ()  # "input:/path" of each input file
    outputs: tuple[str, ...] = ()
    reason: str = ""
    attempts: int = 0
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["files"] = list(self.files)
        d["outputs"] = list(self.outputs)
        return d
