"""The typed shapes of request arguments: scalars with their ranges, and the wire models of the
values that travel as objects (refs, triggers, pipeline specs, sets).

Each wire model mirrors what ``codec.encode`` sends for its dataclass, ``{"__type__": "RepoRef",
"project": ..., "repo": ...}``, so the SDK and the CLI's remote mode send what they always sent;
the ``__type__`` tag may be left out where only one kind fits. Validation here only checks
shapes and ranges: a wire model's ``value()`` builds the service's own dataclass afterwards, in
the endpoint, where its errors (a bad name, a bad spec) become the usual ``TuskError`` answers.

``wire_type`` maps a service method's annotation to its wire type; ``request_models.py`` uses
it to build one request model per method from the method's signature. A type it does not know
fails at import, so a new method with a new kind of argument cannot slip through untyped.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from tusk.api.request_errors import shown
from tusk.pfs.refs import CommitRef, FileRef, RepoRef
from tusk.pfs.triggers import Trigger

# Scalars. Strict: a number is not a name and "3" is not a count. Whole numbers in the API are
# counts, offsets and limits, stored by SQLite as signed 64-bit integers; seconds are bounded
# so a deadline stays a time the clock and the thread library can represent.
MAX_INT = 2**63 - 1
MAX_SECONDS = 1_000_000_000
Text = Annotated[str, Field(strict=True)]
Flag = Annotated[bool, Field(strict=True)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_INT)]
Seconds = Annotated[float, Field(strict=True, ge=0, le=MAX_SECONDS, allow_inf_nan=False)]


def check_object(data: Any, allowed: typing.Iterable[str], what: str, has: str, kind: str) -> None:
    """Refuse a non-object (not ``what``), or an object with a name that does not belong (the
    names ``has`` lists), in one error.

    pydantic would report such a value field by field (every field "missing", each extra
    one "not permitted"); one line that names the cause serves a user better.
    """
    names = list(allowed)
    if not isinstance(data, dict):
        raise PydanticCustomError("not_an_object", "expected {what} (an object with {fields})",
                                  {"what": what, "fields": ", ".join(names)})
    for key in data:
        if key not in names:
            raise PydanticCustomError("unknown_name", "unknown {kind} {key} ({has} {fields})",
                                      {"kind": kind, "key": key, "has": has,
                                       "fields": ", ".join(names) or "nothing"})


def _known_kinds() -> set[str]:
    from tusk.api.codec import models

    return {*models(), "PipelineSpec"}


class Wire(BaseModel):
    """A value that travels as a JSON object tagged with its ``__type__``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: typing.ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _right_kind(cls, data: Any) -> Any:
        if isinstance(data, cls):
            return data
        # A ref of another kind is named as such, not reported field by field.
        if isinstance(data, dict) and data.get("__type__", cls.kind) != cls.kind:
            tag = data["__type__"]
            known = isinstance(tag, str) and tag in _known_kinds()
            got = f"a {tag}" if known else f"an unknown type {shown(tag)}"
            raise PydanticCustomError("wrong_kind", "expected a {kind}, got {got}",
                                      {"kind": cls.kind, "got": got})
        check_object(data, [f.alias or n for n, f in cls.model_fields.items()],
                     f"a {cls.kind}", f"a {cls.kind} has", "field")
        return data

    def value(self) -> Any:
        raise NotImplementedError


def _tag_field(kind: str) -> Any:
    return Field(default=kind, alias="__type__",
                 description="the value's type, as the SDK sends it (optional where only one fits)")


class RepoRefWire(Wire):
    """A repo: ``{"__type__": "RepoRef", "project": "default", "repo": "images"}``."""

    model_config = ConfigDict(title="RepoRef")
    kind = "RepoRef"
    type_: Literal["RepoRef"] = _tag_field("RepoRef")
    project: Text
    repo: Text

    def value(self) -> RepoRef:
        return RepoRef(self.project, self.repo)


class CommitRefWire(Wire):
    """A commit by branch or ID (``branch^ancestors``, ``branch.index``), in a repo."""

    model_config = ConfigDict(title="CommitRef")
    kind = "CommitRef"
    type_: Literal["CommitRef"] = _tag_field("CommitRef")
    repo: RepoRefWire
    branch: Text | None = None
    commit_id: Text | None = None
    ancestors: Count = 0
    index: Count | None = None

    def value(self) -> CommitRef:
        return CommitRef(self.repo.value(), self.branch, self.commit_id, self.ancestors, self.index)


class FileRefWire(Wire):
    """A path in a commit."""

    model_config = ConfigDict(title="FileRef")
    kind = "FileRef"
    type_: Literal["FileRef"] = _tag_field("FileRef")
    commit: CommitRefWire
    path: Text

    def value(self) -> FileRef:
        return FileRef(self.commit.value(), self.path)


class TriggerWire(Wire):
    """What moves a branch: the source branch and the conditions."""

    model_config = ConfigDict(title="Trigger")
    kind = "Trigger"
    type_: Literal["Trigger"] = _tag_field("Trigger")
    branch: Text
    size: Text = ""
    commits: Count = 0
    cron_spec: Text = ""
    all: Flag = False

    def value(self) -> Trigger:
        return Trigger(self.branch, self.size, self.commits, self.cron_spec, self.all)


class PipelineSpecWire(Wire):
    """A pipeline spec as the user wrote it (``doc``), validated again on arrival."""

    model_config = ConfigDict(title="PipelineSpec")
    kind = "PipelineSpec"
    type_: Literal["PipelineSpec"] = _tag_field("PipelineSpec")
    project: Text | None = Field(default=None, description="the project it belongs to, if the "
                                                           "spec does not say (default: default)")
    doc: dict[str, Any] = Field(description="the spec document, as in a spec file")

    def value(self) -> Any:
        from tusk.pps.spec import parse_spec

        return parse_spec(self.doc, "<request>", self.project or "default")


WIRE_MODELS: dict[type, type[Wire]] = {
    RepoRef: RepoRefWire, CommitRef: CommitRefWire, FileRef: FileRefWire, Trigger: TriggerWire,
}


def _set_of(item: Any) -> Any:
    """A set: a list, or ``{"__set__": [...]}`` as ``codec.encode`` sends one."""

    class SetWire(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True, title="Set")
        items: list[item] = Field(alias="__set__")  # type: ignore[valid-type]

        def value(self) -> frozenset[Any]:
            return frozenset(to_value(v) for v in self.items)

    def tag(v: Any) -> str:
        return "object" if isinstance(v, (dict, SetWire)) else "list"

    return Annotated[Union[Annotated[frozenset[item], Tag("list")],  # noqa: UP007
                           Annotated[SetWire, Tag("object")]], Discriminator(tag)]


def _guess_kind(v: Any) -> str | None:
    """Which ref an object in a union is: its ``__type__``, else the shape of its fields."""
    if isinstance(v, Wire):
        return v.kind
    if not isinstance(v, dict):
        return None
    tag = v.get("__type__")
    if isinstance(tag, str):
        return tag
    if "commit" in v:
        return "FileRef"
    return "CommitRef" if isinstance(v.get("repo"), dict) else "RepoRef"


def _union_of(models: list[type[Wire]]) -> Any:
    members = tuple(Annotated[m, Tag(m.kind)] for m in models)
    return Annotated[Union[members], Discriminator(_guess_kind)]  # noqa: UP007


def wire_type(tp: Any, where: str) -> Any:
    """The wire type for a service annotation (``where`` names the argument, for the error)."""
    if tp is str:
        return Text
    if tp is bool:
        return Flag
    if tp is int:
        return Count
    if tp is float:
        return Seconds
    if tp is Any or tp is dict:
        return Any
    if tp in WIRE_MODELS:
        return WIRE_MODELS[tp]
    if getattr(tp, "__name__", None) == "PipelineSpec":
        return PipelineSpecWire
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            one = wire_type(inner[0], where)
        elif all(a in WIRE_MODELS for a in inner):
            one = _union_of([WIRE_MODELS[a] for a in inner])
        else:
            raise TypeError(f"{where}: no wire type for {tp}")
        return one | None if len(inner) < len(args) else one
    if origin is list:
        return list[wire_type(args[0], where)]  # type: ignore[misc]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple[wire_type(args[0], where), ...]  # type: ignore[misc]
        return tuple[tuple(wire_type(a, where) for a in args)]  # type: ignore[misc]
    if origin is frozenset:
        return _set_of(wire_type(args[0], where))
    if origin is dict:
        return dict[str, Any]
    raise TypeError(f"{where}: no wire type for {tp}")


def to_value(v: Any) -> Any:
    """The service's value for a validated wire value (wire models become dataclasses)."""
    if isinstance(v, BaseModel):
        return v.value()  # type: ignore[attr-defined]
    if isinstance(v, list):
        return [to_value(x) for x in v]
    if isinstance(v, tuple):
        return tuple(to_value(x) for x in v)
    if isinstance(v, frozenset):
        return frozenset(to_value(x) for x in v)
    return v
