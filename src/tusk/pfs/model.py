"""The PFS value types that the service returns and every surface renders.

Plain frozen dataclasses with ``to_dict()`` for machine output (JSON/YAML and, later, the HTTP
API). Field names follow Pachyderm's where they have one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ProjectInfo:
    name: str
    description: str
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "created_at": iso(self.created_at)}


@dataclass(frozen=True)
class RepoInfo:
    project: str
    name: str
    type: str
    description: str
    created_at: float
    size_bytes: int
    branches: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = iso(self.created_at)
        d["branches"] = list(self.branches)
        return d


@dataclass(frozen=True)
class CommitInfo:
    project: str
    repo: str
    id: str
    branch: str | None
    parent: str | None
    origin: str
    description: str
    state: str  # STARTED | FINISHED
    error: str
    started_at: float
    finished_at: float | None
    size_bytes: int
    file_count: int
    provenance: tuple[str, ...] = ()
    children: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.state == "FINISHED"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["started_at"] = iso(self.started_at)
        d["finished_at"] = iso(self.finished_at)
        d["provenance"] = list(self.provenance)
        d["children"] = list(self.children)
        return d


@dataclass(frozen=True)
class CommitSetInfo:
    id: str
    commits: tuple[CommitInfo, ...]
    started_at: float

    @property
    def finished(self) -> bool:
        return all(c.finished for c in self.commits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": iso(self.started_at),
            "finished": self.finished,
            "commits": [c.to_dict() for c in self.commits],
        }


@dataclass(frozen=True)
class BranchInfo:
    project: str
    repo: str
    name: str
    head: str
    provenance: tuple[str, ...] = ()
    subvenance: tuple[str, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0
    trigger: dict[str, Any] | None = None  # Trigger.to_dict() of the branch's trigger, if any

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = iso(self.created_at)
        d["updated_at"] = iso(self.updated_at)
        d["provenance"] = list(self.provenance)
        d["subvenance"] = list(self.subvenance)
        return d


@dataclass(frozen=True)
class FileInfo:
    path: str
    type: str  # file | dir
    size: int
    hash: str = ""  # hex content hash (files only)
    commit: str = ""
    datum: str = ""
    chunks: tuple = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = {"path": self.path, "type": self.type, "size": self.size, "commit": self.commit}
        if self.type == "file":
            d["hash"] = self.hash
            d["datum"] = self.datum
        return d


@dataclass(frozen=True)
class FileDiff:
    path: str
    change: str  # added | removed | changed
    old_size: int | None
    new_size: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
