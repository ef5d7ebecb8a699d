"""How a refused request is told: one line naming the argument, what it expected and what came.

pydantic reports every problem with a location and an error type; a user needs the one that
explains the request, said the way the rest of tusk says things:
``create_project.name: expected a string, got 7``. The line goes back in the API's usual error
shape (``InvalidArgument``, a 400), so the SDK and the CLI's remote mode raise and print it as
they do any other error. The request models raise a few errors of their own (an unknown
argument, a ref of the wrong kind) whose text is already ours.
"""

from __future__ import annotations

import json
from typing import Any

MAX_SHOWN = 60  # characters of the offending value quoted in the line

# pydantic's error types, in our words. Those with a context take it as format fields.
_TEXT: dict[str, str] = {
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "greater_than_equal": "expected at least {ge}",
    "less_than_equal": "expected at most {le}",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "set_type": "expected a list",
    "frozen_set_type": "expected a list",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "too_short": "expected a list of {min_length} items",
    "too_long": "expected a list of at most {max_length} items",
    "literal_error": "expected {expected}",
    "union_tag_invalid": "expected one of {expected_tags}",
    "union_tag_not_found": "expected an object",
    "set_item_not_hashable": "expected values that are not lists or objects",
    "string_unicode": "expected text (UTF-8)",
}
# Our own errors (see wire_types, request_models) that say what came in their text already.
_SELF_CONTAINED = {"wrong_kind", "unknown_name"}


def shown(value: Any) -> str:
    """The value as the user sent it (JSON), cut short."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _plain(v: Any) -> Any:
    """A bound as a user writes it: 1000000000, not 1000000000.0."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _where(prefix: str, loc: tuple[Any, ...]) -> str:
    """``method.arg.field[0]``; the names pydantic gives union members are left out."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_member_name(str(part)):
            out += f".{part}"
    return out


def _is_member_name(part: str) -> bool:
    # A tagged union's member ("RepoRef", "list", "object"), or pydantic's name for a
    # validator ("function-after[...]"): never one of our argument names, which are snake_case.
    return "[" in part or part[:1].isupper() or part in ("list", "object")


def one_line(method: str, errors: list[dict[str, Any]]) -> str:
    """The line for a refused request to ``method``, from pydantic's ``errors`` (their
    locations already stripped of the request part: ``body``, ``query``)."""
    if not errors:
        return f"{method}: bad request"
    e = errors[0]
    loc = tuple(e.get("loc", ()))
    kind, ctx = e["type"], e.get("ctx") or {}
    where = _where(method, loc)
    if kind == "json_invalid":
        return f"{method}: the body is not valid JSON ({ctx.get('error', 'cannot parse it')})"
    if kind == "missing":
        if not loc:
            return f"{method}: the body must be a JSON object of arguments, got nothing"
        return f"{where}: missing (a required {'argument' if len(loc) == 1 else 'field'})"
    template = _TEXT.get(kind)
    if template is None:  # one of ours, or one pydantic adds later: its own words
        msg = str(e.get("msg", "invalid value"))
        text = msg[:1].lower() + msg[1:]
    else:
        try:
            text = template.format(**{k: _plain(v) for k, v in ctx.items()})
        except (KeyError, IndexError):
            text = template
    if kind in _SELF_CONTAINED:
        return f"{where}: {text}"
    return f"{where}: {text}, got {shown(e.get('input'))}"
