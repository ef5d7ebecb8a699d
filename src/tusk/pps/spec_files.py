"""Spec files: one or many pipeline specs as JSON or YAML documents."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tusk.pps.spec_errors import SpecError
from tusk.pps.spec_fields import type_name

# --------------------------------------------------------------------------------------------
# Documents.


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys and leaves timestamps as text (cron ``start``)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable; the base constructor reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f'duplicate key "{key}"')
        out[key] = value
    return out


def load_spec_documents(text: str, source: str = "<spec>") -> list[dict[str, Any]]:
    """The spec objects in a JSON or YAML file, in order.

    Accepts a JSON object, a JSON list of objects, several concatenated JSON objects, or YAML
    documents separated by ``---`` (each a mapping or a list of mappings). Raises ``SpecError``
    with a line and column on syntax errors, and when the file holds no spec.
    """
    text = text.lstrip("\ufeff")
    stripped = text.lstrip()
    if not stripped:
        raise SpecError(source, "", "no pipeline spec found: the file is empty")
    values: list[Any]
    if stripped[0] in "{[":
        try:
            values = _json_values(text)
        except json.JSONDecodeError as err:
            # Flow-style YAML ({a: 1}) also starts with a brace; give it a chance before
            # reporting the JSON error, which is the likelier intent.
            try:
                values = list(yaml.load_all(text, Loader=_YamlLoader))
            except yaml.YAMLError:
                raise SpecError(source, f"line {err.lineno}, column {err.colno}", err.msg) from None
        except ValueError as err:  # duplicate key
            raise SpecError(source, "", str(err)) from None
    else:
        try:
            values = list(yaml.load_all(text, Loader=_YamlLoader))
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = err.problem or err.context or "invalid YAML"
            raise SpecError(source, where, problem) from None
        except yaml.YAMLError as err:
            raise SpecError(source, "", f"invalid YAML: {err}") from None

    docs: list[dict[str, Any]] = []
    for number, value in enumerate(values, 1):
        if value is None:
            continue  # an empty YAML document, e.g. after a leading '---'
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                where = f"document {number}" + (
                    f", item {index + 1}" if isinstance(value, list) else ""
                )
                raise SpecError(
                    source, where, f"expected a pipeline spec object, not {type_name(item)}"
                )
            docs.append(item)
    if not docs:
        raise SpecError(source, "", "no pipeline spec found")
    return docs


def _json_values(text: str) -> list[Any]:
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates)
    values: list[Any] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return values
        value, pos = decoder.raw_decode(text, pos)
        values.append(value)
