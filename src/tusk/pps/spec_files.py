"""Spec files: one or many pipeline specs as JSON or YAML documents.

A spec file is hostile input until read: it may be a device that never ends, binary, nested
a million levels deep, or a YAML alias bomb whose few lines expand to billions of values. Each
of those is refused here with a one-line ``SpecError`` before anything walks the document:
reading stops at ``MAX_SPEC_BYTES``, the parsers' recursion is caught, and ``check_shape``
bounds the nesting (``MAX_DEPTH``) and the expanded size (``MAX_VALUES``) without recursion.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO

import yaml

from tusk.pps.spec_errors import SpecError
from tusk.pps.spec_fields import type_name

# Far above any real spec (Pachyderm's API takes messages of a few MiB), far below trouble.
MAX_SPEC_BYTES = 16 << 20
# JSON/YAML nesting: a deep spec (input.cross[0].cross[0]...pfs.glob) is ~20 levels.
MAX_DEPTH = 100
# Values after YAML aliases are expanded: a real spec has hundreds.
MAX_VALUES = 1_000_000


def read_spec_file(path: str, stdin: BinaryIO) -> tuple[str, str]:
    """The text of a spec file (``-`` for ``stdin``) and the name errors call it.

    Refuses, in one line each: a file that cannot be read, one larger than ``MAX_SPEC_BYTES``
    (``/dev/zero`` included: it is never read to its end) and one that is not UTF-8 text.
    """
    source = "<stdin>" if path == "-" else path
    if path.startswith(("http://", "https://")):
        return decode_spec(_fetch(path), source), source
    try:
        if path == "-":
            data = stdin.read(MAX_SPEC_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_SPEC_BYTES + 1)
    except IsADirectoryError:
        raise SpecError(source, "", "is a directory; give a spec file (JSON or YAML)") from None
    except OSError as e:
        raise SpecError(source, "", f"cannot read: {e.strerror or e}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(source, "", f"larger than {MAX_SPEC_BYTES >> 20} MiB; is it a spec file?")
    return decode_spec(data, source), source


def _fetch(url: str) -> bytes:
    """A spec at an http(s) URL, as pachctl takes one (read at most ``MAX_SPEC_BYTES``)."""
    import httpx

    data = b""
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=30) as resp:
            if resp.status_code != 200:
                raise SpecError(url, "", f"cannot fetch: HTTP {resp.status_code}")
            for chunk in resp.iter_bytes():
                data += chunk
                if len(data) > MAX_SPEC_BYTES:
                    raise SpecError(url, "", f"larger than {MAX_SPEC_BYTES >> 20} MiB; is it a spec file?")
    except httpx.HTTPError as e:
        raise SpecError(url, "", f"cannot fetch: {e}") from None
    return data


def decode_spec(data: bytes, source: str) -> str:
    """Spec bytes as text: UTF-8 (a byte order mark is dropped), else a one-line error."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError(
            source, "", f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start});"
            " a spec is a JSON or YAML text file"
        ) from None


def check_shape(doc: Any, source: str) -> None:
    """Refuse a document nested deeper than ``MAX_DEPTH``, holding more than ``MAX_VALUES``
    values once aliases are expanded, or containing itself (a YAML anchor used inside itself).

    Iterative, and each shared object (an alias) is measured once, so neither a deep nor an
    exponential document costs more than its distinct objects.
    """
    # Per container id: (depth below it, values in it expanded); a container on the current
    # walk (``open_``) that is reached again contains itself.
    done: dict[int, tuple[int, int]] = {}
    open_: set[int] = set()
    keep: list[Any] = []  # holds the containers measured, so their ids stay unique
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        node, children_done = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        key = id(node)
        items = list(node.values()) if isinstance(node, dict) else node
        if children_done:
            open_.discard(key)
            depth, values = 1, 1
            for child in items:
                if isinstance(child, (dict, list)):
                    d, v = done[id(child)]
                    depth, values = max(depth, d + 1), values + v
                else:
                    values += 1
            if depth > MAX_DEPTH:
                raise SpecError(source, "", f"nested more than {MAX_DEPTH} levels deep;"
                                " a pipeline spec needs far fewer")
            if values > MAX_VALUES:
                raise SpecError(source, "", f"expands to more than {MAX_VALUES:,} values"
                                " (YAML aliases repeating an anchor?); write the spec out")
            done[key] = (depth, values)
            keep.append(node)
            continue
        if key in done:
            continue
        if key in open_:
            raise SpecError(source, "", "a YAML anchor is used inside itself (it contains itself)")
        if len(open_) >= MAX_DEPTH:
            raise SpecError(source, "", f"nested more than {MAX_DEPTH} levels deep;"
                            " a pipeline spec needs far fewer")
        open_.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in items if isinstance(child, (dict, list)))

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
    try:
        values = _load(text, stripped, source)
    except RecursionError:
        # The parsers recurse once per level: far past MAX_DEPTH, before check_shape can look.
        raise SpecError(source, "", f"nested more than {MAX_DEPTH} levels deep;"
                        " a pipeline spec needs far fewer") from None

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


def _load(text: str, stripped: str, source: str) -> list[Any]:
    """The values of a JSON or YAML text (see ``load_spec_documents``)."""
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
        except ValueError as err:  # a duplicate key, or a number too long to convert
            raise SpecError(source, "", _value_problem(err)) from None
    else:
        try:
            values = list(yaml.load_all(text, Loader=_YamlLoader))
        except ValueError as err:  # from a constructor: a number too long to convert
            raise SpecError(source, "", _value_problem(err)) from None
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = err.problem or err.context or "invalid YAML"
            raise SpecError(source, where, problem) from None
        except yaml.YAMLError as err:
            raise SpecError(source, "", f"invalid YAML: {err}") from None
    return values


def _value_problem(err: ValueError) -> str:
    if "digits" in str(err):  # Python refuses to convert integers of more than 4300 digits
        return "a number has thousands of digits; no field takes a number that large"
    return str(err)


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
