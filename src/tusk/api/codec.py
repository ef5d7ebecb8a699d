"""The wire format of the HTTP API: service arguments and results as JSON, and back.

Values the services take and return are plain JSON values or the frozen dataclasses of the
model modules. A dataclass travels as ``{"__type__": "CommitInfo", ...fields}`` and only the
classes in ``MODELS`` are known (a registry, not pickle: nothing else can be built from a
request). Tuples travel as lists and become tuples again where a dataclass field is declared a
tuple; sets travel as ``{"__set__": [...]}``, bytes as ``{"__bytes__": "<base64>"}`` (a
malformed one is an ``InvalidArgument``, like an unknown type). A
``PipelineSpec`` travels as the user's document and is validated again on arrival, so the
server never trusts a client-built spec.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from tusk.errors import InvalidArgument

# Fields that are internal to one process (chunk locations) and never cross the wire.
_PRIVATE = {("FileInfo", "chunks")}


def _models() -> dict[str, type]:
    from tusk.pfs.gc import FsckReport, GcStats
    from tusk.pfs.model import (
        BranchInfo,
        CommitInfo,
        CommitSetInfo,
        FileDiff,
        FileInfo,
        ProjectInfo,
        RepoInfo,
    )
    from tusk.pfs.refs import CommitRef, FileRef, RepoRef
    from tusk.pfs.transactions import TransactionInfo
    from tusk.pfs.triggers import Trigger
    from tusk.pps.logs import LogLine
    from tusk.pps.model import DatumInfo, JobInfo, PipelineInfo

    classes: list[type] = [
        BranchInfo, CommitInfo, CommitRef, CommitSetInfo, DatumInfo, FileDiff, FileInfo, FileRef,
        FsckReport, GcStats, JobInfo, LogLine, PipelineInfo, ProjectInfo, RepoInfo, RepoRef,
        TransactionInfo, Trigger,
    ]
    return {c.__name__: c for c in classes}


_MODELS: dict[str, type] | None = None


def models() -> dict[str, type]:
    """The registry: class name -> dataclass, for every type that may cross the wire."""
    global _MODELS
    if _MODELS is None:
        _MODELS = _models()
    return _MODELS


def encode(value: Any) -> Any:
    """A JSON-able form of ``value``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"__set__": [encode(v) for v in value]}
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    name = type(value).__name__
    if name == "PipelineSpec":
        return {"__type__": "PipelineSpec", "project": value.project, "doc": encode(value.user_doc)}
    if dataclasses.is_dataclass(value) and models().get(name) is type(value):
        out: dict[str, Any] = {"__type__": name}
        for f in dataclasses.fields(value):
            if (name, f.name) not in _PRIVATE:
                out[f.name] = encode(getattr(value, f.name))
        return out
    raise TypeError(f"cannot send a {name} over the API")


def decode(data: Any) -> Any:
    """The value ``encode`` made ``data`` from; raises InvalidArgument for unknown types."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__set__" in data:
        return _set(data["__set__"])
    if "__bytes__" in data:
        return _bytes(data["__bytes__"])
    name = data.get("__type__")
    if name is None:
        return {k: decode(v) for k, v in data.items()}
    if name == "PipelineSpec":
        from tusk.pps.spec import parse_spec

        doc = decode(data.get("doc"))
        return parse_spec(doc, "<request>", str(data.get("project") or "default"))
    cls = models().get(name) if isinstance(name, str) else None
    if cls is None:
        raise InvalidArgument(f"unknown type {name!r} in request")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        v = decode(data[f.name])
        if isinstance(v, list) and str(f.type).startswith("tuple"):
            v = tuple(v)
        kwargs[f.name] = v
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise InvalidArgument(f"bad {name} in request: {e}") from None


def _set(items: Any) -> frozenset[Any]:
    if not isinstance(items, list):
        raise InvalidArgument(f"__set__ takes a list, not {type(items).__name__}")
    try:
        return frozenset(decode(v) for v in items)
    except TypeError:  # a list or an object in a set: nothing made from JSON hashes
        raise InvalidArgument("__set__ takes plain values (strings, numbers, refs), not lists or"
                              " objects") from None


def _bytes(text: Any) -> bytes:
    if not isinstance(text, str):
        raise InvalidArgument(f"__bytes__ takes a base64 string, not {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error
        raise InvalidArgument("__bytes__ takes a base64 string: this one does not decode") from None
