"""One request model per HTTP method, made from the service method's own signature.

The signature is the one declaration: each parameter becomes a field of the same name, with the
wire type of its annotation (``wire_types.wire_type``) and the same default, so the OpenAPI
schema says exactly what a method takes, and FastAPI refuses anything else before the service
is called. ``arguments`` turns a validated model back into keyword arguments, passing only the
ones the caller gave, so the service's defaults apply as they do in process. The write-session
operations and the console's download link take small bodies declared here by hand.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from tusk.api.wire_types import (
    WIRE_MODELS,
    FileRefWire,
    Flag,
    Text,
    check_object,
    to_value,
    wire_type,
)


class Arguments(BaseModel):
    """The keyword arguments of one method (unknown names are refused)."""

    model_config = ConfigDict(extra="forbid")
    method: ClassVar[str] = "this method"

    @model_validator(mode="before")
    @classmethod
    def _known_names(cls, data: Any) -> Any:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise PydanticCustomError("not_arguments", "the body must be a JSON object of arguments")
        check_object(data, list(cls.model_fields), "arguments", f"{cls.method} takes", "argument")
        return data


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _hints(method: Any) -> dict[str, Any]:
    """The method's annotations as real types (some are imported only for type checkers)."""
    from tusk.pps.spec import PipelineSpec

    known: dict[str, Any] = {c.__name__: c for c in WIRE_MODELS}
    known["PipelineSpec"] = PipelineSpec
    return typing.get_type_hints(method, localns=known)


def build_model(domain: str, cls: type, name: str) -> type[Arguments]:
    """The request model of ``cls.name``: one field per parameter, typed and defaulted alike."""
    method = getattr(cls, name)
    hints = _hints(method)
    fields: dict[str, Any] = {}
    for p in list(inspect.signature(method).parameters.values())[1:]:  # not self
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{cls.__name__}.{name}: *args/**kwargs cannot be typed for HTTP")
        tp = wire_type(hints.get(p.name, Any), f"{cls.__name__}.{name}({p.name})")
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (tp, Field(default=default))
    model = create_model(f"{domain.capitalize()}{_camel(name)}Request", __base__=Arguments,
                         **fields)
    model.__doc__ = f"The arguments of {cls.__name__}.{name}."
    model.method = name
    return model


@functools.cache
def models(domain: str) -> dict[str, type[Arguments]]:
    """Every exposed method of one domain (``pfs``, ``pps``) with its request model."""
    from tusk.api.methods import PFS_METHODS, PPS_METHODS
    from tusk.pfs.service import PfsService
    from tusk.pps.service import PpsService

    table, cls = (PFS_METHODS, PfsService) if domain == "pfs" else (PPS_METHODS, PpsService)
    return {name: build_model(domain, cls, name) for name in table}


def arguments(body: BaseModel | None) -> dict[str, Any]:
    """The keyword arguments a validated body gives: only those sent, as service values."""
    if body is None:
        return {}
    return {k: to_value(getattr(body, k)) for k in body.model_fields_set}


# -- write sessions and the console --------------------------------------------------------------


class DeleteRequest(Arguments):
    """Delete a file (or, with ``recursive``, a directory) in the session's commit."""

    method = "delete"
    path: Text
    recursive: Flag = False


class CopyRequest(Arguments):
    """Copy a file or directory from any commit to ``dest`` in the session's commit."""

    method = "copy"
    src: FileRefWire
    dest: Text
    append: Flag = False


class DownloadLinkRequest(Arguments):
    """The file a one-use download link is for."""

    method = "download_link"
    ref: FileRefWire


SESSION_MODELS: dict[str, type[Arguments]] = {"delete": DeleteRequest, "copy": CopyRequest}
