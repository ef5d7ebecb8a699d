"""The field table of Pachyderm's pipeline spec, and normalising documents against it.

Every spelling of a field name (snake_case, camelCase, any case or '-'/'_' variant) maps to its
snake_case name; unknown fields are refused with the closest known one suggested; scalar types
are checked. The result is a plain document the builders in ``tusk.pps.spec`` can trust.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tusk.pps.spec_errors import FieldError, join_path

DEFAULT_DATUM_TRIES = 3
MAX_PIPELINE_NAME = 51
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
PIPELINE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
REPROCESS_SPECS = ("until_success", "every_job")
SERVICE_TYPES = ("NodePort", "ClusterIP", "LoadBalancer")

# Fields that are accepted and stored but change nothing when tusk runs the pipeline locally.
IGNORED_TOP_LEVEL = (
    "resource_requests",
    "sidecar_resource_requests",
    "sidecar_resource_limits",
    "pod_spec",
    "pod_patch",
    "tolerations",
    "scheduling_spec",
    "metadata",
    "determined",
    "maximum_expected_uptime",
    "autoscaling",
    "s3_out",
    "spec_commit",
    # Request flags of CreatePipelineRequest; the CLI's flags are what count.
    "update",
    "reprocess",
    "dry_run",
)
IGNORED_TRANSFORM = (
    "debug",
    "memory_volume",
)


# --------------------------------------------------------------------------------------------
# Schema: Pachyderm's protobuf messages, as far as a spec uses them.


def _canon(key: str) -> str:
    """The spelling-independent form of a field name: "joinOn", "join_on", "JOIN_ON" -> "joinon"."""
    return key.replace("_", "").replace("-", "").lower()


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).replace("-", "_").lower()


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass
class _Msg:
    """An object with known fields. ``example`` shows the shape in "must be an object" errors."""

    fields: dict[str, Any]
    example: str = ""

    def lookup(self, key: str) -> str | None:
        want = _canon(key)
        for name in self.fields:
            if _canon(name) == want:
                return name
        return None


@dataclass(frozen=True)
class _List:
    item: Any
    example: str = ""


@dataclass(frozen=True)
class _Custom:
    """A field with its own normaliser (e.g. accepts a string or an object)."""

    fn: Callable[[Any, str], Any]


# Scalar kinds.
STR, INT, BOOL, FLOAT, DURATION, STRMAP, ANY = (
    "string",
    "integer",
    "boolean",
    "number",
    "duration",
    "map of strings",
    "any",
)


def _project_ref(value: Any, path: str) -> dict[str, Any]:
    # Project is a message ({"name": ...}) in pipeline.project; people also write a bare string.
    if isinstance(value, str):
        return {"name": value}
    return normalise(value, _Msg({"name": STR}, '{"name": "default"}'), path)


def _json_text(value: Any, path: str) -> str:
    # pod_spec / pod_patch are JSON documents in a string; YAML users often write the object.
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if not isinstance(value, str):
        raise FieldError(path, "must be a JSON document in a string")
    try:
        json.loads(value)
    except json.JSONDecodeError as err:
        raise FieldError(path, f"must be valid JSON: {err.msg} at character {err.pos}") from None
    return value


_RESOURCES = _Msg(
    {"cpu": FLOAT, "memory": STR, "gpu": _Msg({"type": STR, "number": INT}), "disk": STR},
    '{"cpu": 1, "memory": "256Mi"}',
)
_SERVICE = _Msg(
    {"internal_port": INT, "external_port": INT, "ip": STR, "type": STR},
    '{"internal_port": 8888, "external_port": 30888}',
)
_TRANSFORM = _Msg(
    {
        "image": STR,
        "cmd": _List(STR),
        "err_cmd": _List(STR),
        "env": STRMAP,
        "secrets": _List(_Msg({"name": STR, "key": STR, "mount_path": STR, "env_var": STR})),
        "image_pull_secrets": _List(STR),
        "stdin": _List(STR),
        "err_stdin": _List(STR),
        "accept_return_code": _List(INT),
        "debug": BOOL,
        "user": STR,
        "working_dir": STR,
        "dockerfile": STR,
        "memory_volume": BOOL,
        "datum_batching": BOOL,
    },
    '{"cmd": ["python3", "/code/main.py"], "image": "python:3.11"}',
)
_PFS = _Msg(
    {
        "name": STR,
        "project": STR,
        "repo": STR,
        "repo_type": STR,
        "branch": STR,
        "commit": STR,
        "glob": STR,
        "join_on": STR,
        "outer_join": BOOL,
        "group_by": STR,
        "lazy": BOOL,
        "empty_files": BOOL,
        "s3": BOOL,
        "trigger": _Msg(
            {"branch": STR, "all": BOOL, "cron_spec": STR, "size": STR, "commits": INT}
        ),
        "reference": BOOL,
        "propagation_spec": _Msg({"never": BOOL}),
    },
    '{"repo": "images", "glob": "/*"}',
)
_CRON = _Msg(
    {
        "name": STR,
        "project": STR,
        "repo": STR,
        "commit": STR,
        "spec": STR,
        "overwrite": BOOL,
        "start": STR,
    },
    '{"name": "tick", "spec": "@every 60s"}',
)
_INPUT = _Msg({}, '{"pfs": {"repo": "images", "glob": "/*"}}')
_INPUT_LIST = _List(_INPUT, '[{"pfs": {...}}, {"pfs": {...}}]')
_INPUT.fields.update(
    pfs=_PFS, cross=_INPUT_LIST, union=_INPUT_LIST, join=_INPUT_LIST, group=_INPUT_LIST, cron=_CRON
)
PIPELINE_FIELDS = _Msg(
    {
        "pipeline": _Msg({"name": STR, "project": _Custom(_project_ref)}, '{"name": "edges"}'),
        "tf_job": ANY,
        "transform": _TRANSFORM,
        "parallelism_spec": _Msg({"constant": INT}, '{"constant": 4}'),
        "egress": _Msg(
            {"URL": STR, "object_storage": _Msg({"url": STR}), "sql_database": ANY},
            '{"URL": "s3://bucket/dir"}',
        ),
        "update": BOOL,
        "output_branch": STR,
        "s3_out": BOOL,
        "resource_requests": _RESOURCES,
        "resource_limits": _RESOURCES,
        "sidecar_resource_requests": _RESOURCES,
        "sidecar_resource_limits": _RESOURCES,
        "input": _INPUT,
        "description": STR,
        "reprocess": BOOL,
        "service": _SERVICE,
        "spout": _Msg({"service": _SERVICE}, "{}"),
        "datum_set_spec": _Msg(
            {"number": INT, "size_bytes": INT, "per_worker": INT}, '{"number": 10}'
        ),
        "datum_timeout": DURATION,
        "job_timeout": DURATION,
        "salt": STR,
        "datum_tries": INT,
        "scheduling_spec": _Msg({"node_selector": STRMAP, "priority_class_name": STR}),
        "pod_spec": _Custom(_json_text),
        "pod_patch": _Custom(_json_text),
        "spec_commit": ANY,
        "metadata": _Msg({"annotations": STRMAP, "labels": STRMAP}),
        "reprocess_spec": STR,
        "autoscaling": BOOL,
        "tolerations": _List(
            _Msg(
                {
                    "key": STR,
                    "operator": STR,
                    "value": STR,
                    "effect": STR,
                    "toleration_seconds": INT,
                }
            )
        ),
        "determined": _Msg({"workspaces": _List(STR)}),
        "maximum_expected_uptime": DURATION,
        "dry_run": BOOL,
        # tusk's own options, not Pachyderm's: which runtime runs the code (tusk.workers).
        "tusk": _Msg({"runtime": STR}, '{"runtime": "process"}'),
    }
)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(value), "a list" if isinstance(value, list) else "an object"
    )


def _unknown_field(key: str, msg: _Msg, path: str) -> FieldError:
    snake = _snake(key)
    wants_camel = any(c.isupper() for c in key)
    close = difflib.get_close_matches(snake, list(msg.fields), n=1, cutoff=0.7)
    hint = ""
    if close:
        hint = f'; did you mean "{_camel(close[0]) if wants_camel else close[0]}"?'
    else:
        # A field of a nested object written one level too high ("cmd" at the top, "repo"
        # directly under "input"): point at where it belongs.
        for child, kind in msg.fields.items():
            if isinstance(kind, _Msg) and kind.lookup(key):
                hint = (
                    f"; did you mean {join_path(join_path(path, child), kind.lookup(key) or '')}?"
                )
                break
    known = ", ".join(sorted(msg.fields)) if len(msg.fields) <= 8 else ""
    if not hint and known:
        hint = f"; known fields: {known}"
    return FieldError(join_path(path, key), f"unknown field{hint}")


def normalise(value: Any, kind: Any, path: str) -> Any:
    """``value`` with snake_case keys and checked scalar types, per the schema ``kind``."""
    if isinstance(kind, _Custom):
        return kind.fn(value, path)
    if isinstance(kind, _Msg):
        if not isinstance(value, dict):
            example = f"; e.g. {kind.example}" if kind.example else ""
            raise FieldError(path, f"must be an object, not {type_name(value)}{example}")
        out: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise FieldError(
                    join_path(path, str(key)),
                    "field names must be strings (YAML reads yes/no/on/off as booleans; quote it)",
                )
            name = kind.lookup(key)
            if name is None:
                raise _unknown_field(key, kind, path)
            if name in spelled:
                raise FieldError(
                    join_path(path, name), f'given twice, as "{spelled[name]}" and "{key}"'
                )
            spelled[name] = key
            # null means "not set", as in protobuf JSON (and YAML's "key:" with no value).
            if item is not None:
                out[name] = normalise(item, kind.fields[name], join_path(path, name))
        return out
    if isinstance(kind, _List):
        if not isinstance(value, list):
            if kind.item == STR and isinstance(value, str):
                # cmd is argv (never run through a shell); stdin is lines. Show the list form.
                if path.endswith("stdin"):
                    lines = json.dumps([_short(x) for x in (value.splitlines() or [value])[:5]])
                    raise FieldError(
                        path, f"must be a list of lines, not one string; write {lines}"
                    )
                argv = json.dumps(_split_command(value))
                raise FieldError(path, f"must be a list of strings, not a string; write {argv}")
            example = f"; e.g. {kind.example}" if kind.example else ""
            raise FieldError(path, f"must be a list, not {type_name(value)}{example}")
        return [normalise(item, kind.item, join_path(path, i)) for i, item in enumerate(value)]
    if kind in (STR, DURATION):
        if not isinstance(value, str):
            # YAML reads `branch: 2024` or `salt: yes` as a number or boolean; quoting fixes it.
            quote = "; put it in quotes" if isinstance(value, (bool, int, float)) else ""
            raise FieldError(path, f"must be a string, not {type_name(value)}{quote}")
        return value
    if kind == INT:
        if isinstance(value, bool):
            raise FieldError(path, "must be a whole number, not a boolean")
        number: int | None = None
        if isinstance(value, int):
            number = value
        elif (isinstance(value, float) and value.is_integer()) or _integer_text(value):
            number = int(value)
        if number is None:
            raise FieldError(path, f"must be a whole number, not {type_name(value)}")
        if not INT64_MIN <= number <= INT64_MAX:  # protobuf's int64, and SQLite's integers
            raise FieldError(path, f"{_short(value)} is out of range (at most {INT64_MAX})")
        return number
    if kind == FLOAT:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise FieldError(path, f"must be a number, not {type_name(value)}")
    if kind == BOOL:
        if not isinstance(value, bool):
            raise FieldError(path, f"must be true or false, not {type_name(value)}")
        return value
    if kind == STRMAP:
        if not isinstance(value, dict):
            raise FieldError(path, 'must be an object of strings, e.g. {"KEY": "value"}')
        return {str(k): _map_value(v, join_path(path, str(k))) for k, v in value.items()}
    # ANY: kept as written.
    return copy.deepcopy(value)


def _integer_text(value: Any) -> bool:
    """protobuf JSON writes 64-bit integers as strings; a longer one is out of range anyway."""
    return isinstance(value, str) and len(value) < 40 and bool(re.fullmatch(r"\s*[-+]?\d+\s*", value))


def _map_value(value: Any, path: str) -> str:
    # Environment variables, labels and annotations are strings. Protobuf JSON would refuse
    # `PORT: 8080` or `DEBUG: true`, but the intent is plain, so write them as JSON does.
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    raise FieldError(path, f"must be a string, not {type_name(value)}")


# Values quoted in messages are cut to this many characters: a message stays one readable line.
MAX_QUOTED = 80


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_QUOTED else text[:MAX_QUOTED] + "..."


def _split_command(text: str) -> list[str]:
    """The argv a command line most likely meant, for the "write it as a list" hint.

    shlex builds each token a character at a time (quadratic on one long word), so a long text
    gets the shell form with its head shown instead.
    """
    if len(text) > MAX_QUOTED:
        return ["sh", "-c", _short(text)]
    try:
        return shlex.split(text)
    except ValueError:
        return ["sh", "-c", text]
