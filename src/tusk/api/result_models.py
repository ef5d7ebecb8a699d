"""The shapes of answers, for the OpenAPI schema: what each method's ``result`` looks like.

Answers are made by ``codec.encode`` (a dataclass travels as ``{"__type__": "CommitInfo",
...fields}``); the models here describe that encoding, built from the same declarations the
code already has: each wire dataclass's field annotations and each method's return annotation.
They are documentation and a contract a client or the fuzzer can check answers against; the
server does not validate its answers through them on the way out.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model


def _model_of(cls: type) -> type[BaseModel]:
    """The encoded form of a wire dataclass (private fields left out, as codec leaves them)."""
    from tusk.api.codec import _PRIVATE

    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {
        "type_": (Literal[cls.__name__], Field(alias="__type__")),  # type: ignore[valid-type]
    }
    for f in dataclasses.fields(cls):
        if (cls.__name__, f.name) not in _PRIVATE:
            fields[f.name] = (result_type(hints[f.name]), ...)
    model = create_model(f"{cls.__name__}Result", __config__=ConfigDict(title=cls.__name__),
                         **fields)
    model.__doc__ = f"A {cls.__name__}, as the API encodes it."
    return model


_MODELS: dict[type, type[BaseModel]] = {}


def _model_for(cls: type) -> type[BaseModel]:
    from tusk.api.codec import models

    if models().get(cls.__name__) is not cls:
        raise TypeError(f"{cls.__name__} does not cross the wire (it is not in codec.MODELS)")
    if cls not in _MODELS:
        _MODELS[cls] = _model_of(cls)
    return _MODELS[cls]


class _Bytes(BaseModel):
    model_config = ConfigDict(title="Bytes")
    data: str = Field(alias="__bytes__", description="base64")


def result_type(tp: Any) -> Any:
    """The encoded form of a value of annotation ``tp``."""
    if tp in (str, int, float, bool, type(None), None, Any):
        return type(None) if tp is None else tp
    if tp is bytes:
        return _Bytes
    if tp is dict:
        return dict[str, Any]
    if dataclasses.is_dataclass(tp):
        return _model_for(tp)  # type: ignore[arg-type]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return Union[tuple(result_type(a) for a in args)]  # noqa: UP007
    if origin in (list, tuple, collections.abc.Iterator, collections.abc.Iterable):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return list[Union[tuple(result_type(a) for a in args)]] if args else list[Any]  # noqa: UP007
        return list[result_type(args[0])] if args else list[Any]  # type: ignore[misc]
    if origin is dict:
        return dict[str, result_type(args[1])] if args else dict[str, Any]  # type: ignore[misc]
    if origin in (set, frozenset):
        return create_model("SetResult", items=(list[result_type(args[0])], Field(alias="__set__")))  # type: ignore[misc]
    raise TypeError(f"no result type for {tp}")


def result_model(domain: str, cls: type, name: str) -> type[BaseModel]:
    """``{"result": ...}`` for ``cls.name`` (a stream's items: each line is ``{"item": ...}``)."""
    hints = typing.get_type_hints(getattr(cls, name), localns=_localns())
    tp = result_type(hints.get("return", Any))
    return named_result(domain, name, tp)


def named_result(domain: str, name: str, tp: Any) -> type[BaseModel]:
    camel = "".join(p.capitalize() for p in name.split("_"))
    return create_model(f"{domain.capitalize()}{camel}Result", result=(tp, ...))


def _localns() -> dict[str, Any]:
    from tusk.api.codec import models
    from tusk.pfs.files import FileSession
    from tusk.pps.spec import PipelineSpec

    return {**models(), "PipelineSpec": PipelineSpec, "FileSession": FileSession}
