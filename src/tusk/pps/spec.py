"""Pachyderm pipeline specs: reading, validating and defaulting them.

This module owns the *pipeline spec* as a user writes it (``tusk create pipeline -f spec.json``):
the file formats (JSON or YAML, one or many specs per file), the field names (snake_case and
camelCase, as protobuf JSON accepts), Pachyderm's defaults and validation rules, and the typed
``PipelineSpec`` the rest of PPS works from. The input tree lives in ``tusk.pps.spec_inputs``;
its public names are re-exported here.

Parsing happens in two steps. ``_normalise`` walks the document against a schema of Pachyderm's
protobuf messages: it maps every spelling of a field name to its snake_case name, rejects unknown
fields (suggesting the closest known one) and checks scalar types. The builders then apply the
semantic rules and defaults on the clean document. Every failure is a one-line ``SpecError``
``"<source>: <field.path>: <problem and how to fix it>"``.

Kubernetes-only fields (resources, tolerations, pod patches, ...) are accepted and kept so a spec
written for Pachyderm loads unchanged; ``PipelineSpec.ignored_fields`` lists the ones a spec sets,
for the caller to report once as having no effect locally.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from tusk.pfs import names
from tusk.pps.spec_inputs import (
    CRON_EXAMPLES,
    CronInput,
    CronSchedule,
    CrossInput,
    FieldError,
    GroupInput,
    Input,
    InputBuilder,
    JoinInput,
    PfsInput,
    SpecError,
    UnionInput,
    _is_set,
    _wrap,
    format_duration,
    join_path,
    parse_cron,
    parse_duration,
)

__all__ = [
    "CRON_EXAMPLES",
    "CronInput",
    "CronSchedule",
    "CrossInput",
    "GroupInput",
    "Input",
    "JoinInput",
    "PfsInput",
    "PipelineSpec",
    "SpecError",
    "Transform",
    "UnionInput",
    "format_duration",
    "load_spec_documents",
    "parse_cron",
    "parse_duration",
    "parse_spec",
    "parse_specs",
]

DEFAULT_IMAGE = "ubuntu:20.04"
DEFAULT_DATUM_TRIES = 3
MAX_PIPELINE_NAME = 51
_PIPELINE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
REPROCESS_SPECS = ("until_success", "every_job")
SERVICE_TYPES = ("NodePort", "ClusterIP", "LoadBalancer")

# Fields that are accepted and stored but change nothing when tusk runs the pipeline locally.
IGNORED_TOP_LEVEL = (
    "resource_requests",
    "resource_limits",
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
    "service",
    "egress",
    "s3_out",
    "spec_commit",
    # Request flags of CreatePipelineRequest; the CLI's flags are what count.
    "update",
    "reprocess",
    "dry_run",
)
IGNORED_TRANSFORM = (
    "user",
    "debug",
    "dockerfile",
    "memory_volume",
    "secrets",
    "image_pull_secrets",
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
    return _normalise(value, _Msg({"name": STR}, '{"name": "default"}'), path)


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
_PIPELINE = _Msg(
    {
        "pipeline": _Msg({"name": STR, "project": _Custom(_project_ref)}, '{"name": "edges"}'),
        "tf_job": ANY,
        "transform": _TRANSFORM,
        "parallelism_spec": _Msg({"constant": INT}, '{"constant": 4}'),
        "egress": _Msg({"URL": STR, "object_storage": ANY, "sql_database": ANY}),
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
    }
)


def _type_name(value: Any) -> str:
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


def _normalise(value: Any, kind: Any, path: str) -> Any:
    """``value`` with snake_case keys and checked scalar types, per the schema ``kind``."""
    if isinstance(kind, _Custom):
        return kind.fn(value, path)
    if isinstance(kind, _Msg):
        if not isinstance(value, dict):
            example = f"; e.g. {kind.example}" if kind.example else ""
            raise FieldError(path, f"must be an object, not {_type_name(value)}{example}")
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
                out[name] = _normalise(item, kind.fields[name], join_path(path, name))
        return out
    if isinstance(kind, _List):
        if not isinstance(value, list):
            if kind.item == STR and isinstance(value, str):
                # cmd is argv (never run through a shell); stdin is lines. Show the list form.
                if path.endswith("stdin"):
                    lines = json.dumps(value.splitlines() or [value])
                    raise FieldError(
                        path, f"must be a list of lines, not one string; write {lines}"
                    )
                argv = json.dumps(_split_command(value))
                raise FieldError(path, f"must be a list of strings, not a string; write {argv}")
            example = f"; e.g. {kind.example}" if kind.example else ""
            raise FieldError(path, f"must be a list, not {_type_name(value)}{example}")
        return [_normalise(item, kind.item, join_path(path, i)) for i, item in enumerate(value)]
    if kind in (STR, DURATION):
        if not isinstance(value, str):
            # YAML reads `branch: 2024` or `salt: yes` as a number or boolean; quoting fixes it.
            quote = "; put it in quotes" if isinstance(value, (bool, int, float)) else ""
            raise FieldError(path, f"must be a string, not {_type_name(value)}{quote}")
        return value
    if kind == INT:
        if isinstance(value, bool):
            raise FieldError(path, "must be a whole number, not a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        # protobuf JSON writes 64-bit integers as strings.
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            return int(value)
        raise FieldError(path, f"must be a whole number, not {_type_name(value)}")
    if kind == FLOAT:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise FieldError(path, f"must be a number, not {_type_name(value)}")
    if kind == BOOL:
        if not isinstance(value, bool):
            raise FieldError(path, f"must be true or false, not {_type_name(value)}")
        return value
    if kind == STRMAP:
        if not isinstance(value, dict):
            raise FieldError(path, 'must be an object of strings, e.g. {"KEY": "value"}')
        return {str(k): _map_value(v, join_path(path, str(k))) for k, v in value.items()}
    # ANY: kept as written.
    return copy.deepcopy(value)


def _map_value(value: Any, path: str) -> str:
    # Environment variables, labels and annotations are strings. Protobuf JSON would refuse
    # `PORT: 8080` or `DEBUG: true`, but the intent is plain, so write them as JSON does.
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    raise FieldError(path, f"must be a string, not {_type_name(value)}")


def _split_command(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return ["sh", "-c", text]


# --------------------------------------------------------------------------------------------
# Typed spec.


@dataclass(frozen=True, kw_only=True)
class Transform:
    """What a pipeline runs for each datum."""

    image: str = DEFAULT_IMAGE  # recorded; local runners may run on the host instead
    cmd: list[str]
    stdin: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    accept_return_code: list[int] = field(default_factory=list)
    err_cmd: list[str] = field(default_factory=list)
    err_stdin: list[str] = field(default_factory=list)
    datum_batching: bool = False
    # user, debug, dockerfile, memory_volume, secrets, image_pull_secrets: kept as written.
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": self.image,
            "cmd": list(self.cmd),
            "stdin": list(self.stdin),
            "env": dict(self.env),
            "accept_return_code": list(self.accept_return_code),
            "err_cmd": list(self.err_cmd),
            "err_stdin": list(self.err_stdin),
            "datum_batching": self.datum_batching,
        }
        if self.working_dir is not None:
            out["working_dir"] = self.working_dir
        out.update(copy.deepcopy(self.extras))
        return out


@dataclass(frozen=True, kw_only=True)
class PipelineSpec:
    """A validated pipeline spec with Pachyderm's defaults applied."""

    name: str
    project: str
    description: str = ""
    transform: Transform
    input: Input | None
    parallelism: int = 1
    output_branch: str = "master"
    datum_tries: int = DEFAULT_DATUM_TRIES
    datum_timeout: float | None = None  # seconds per datum attempt
    job_timeout: float | None = None  # seconds per job
    reprocess_spec: str = "until_success"
    salt: str = ""  # "" = let the service generate one
    autoscaling: bool = False
    spout: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    datum_set_spec: dict[str, int] | None = None
    egress: dict[str, Any] | None = None
    s3_out: bool = False
    # Other accepted top-level fields (resources, tolerations, pod_patch, ...), normalised.
    extras: dict[str, Any] = field(default_factory=dict)
    ignored_fields: list[str] = field(default_factory=list)
    user_doc: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def pipeline_type(self) -> str:
        """The kind of pipeline: "spout", "service" or "transform"."""
        if self.spout is not None:
            return "spout"
        return "service" if self.service is not None else "transform"

    def input_names(self) -> list[str]:
        """Mount names of the leaf inputs in spec order, each once (union members may share)."""
        seen: list[str] = []
        for leaf in self.input.walk() if self.input else ():
            if leaf.name not in seen:
                seen.append(leaf.name)
        return seen

    def to_dict(self) -> dict[str, Any]:
        """The effective spec as snake_case JSON; ``parse_spec`` reads it back to an equal spec."""
        out: dict[str, Any] = {
            "pipeline": {"name": self.name, "project": {"name": self.project}},
            "description": self.description,
            "transform": self.transform.to_dict(),
        }
        if self.input is not None:
            out["input"] = self.input.to_dict()
        out.update(
            parallelism_spec={"constant": self.parallelism},
            output_branch=self.output_branch,
            datum_tries=self.datum_tries,
            reprocess_spec=self.reprocess_spec,
            salt=self.salt,
            autoscaling=self.autoscaling,
            s3_out=self.s3_out,
        )
        if self.datum_timeout is not None:
            out["datum_timeout"] = format_duration(self.datum_timeout)
        if self.job_timeout is not None:
            out["job_timeout"] = format_duration(self.job_timeout)
        for key in ("spout", "service", "datum_set_spec", "egress"):
            value = getattr(self, key)
            if value is not None:
                out[key] = copy.deepcopy(value)
        out.update(copy.deepcopy(self.extras))
        return out


# Keys PipelineSpec models as attributes; everything else accepted goes to ``extras``.
_MODELLED = {
    "pipeline",
    "description",
    "transform",
    "input",
    "parallelism_spec",
    "output_branch",
    "datum_tries",
    "datum_timeout",
    "job_timeout",
    "reprocess_spec",
    "salt",
    "autoscaling",
    "spout",
    "service",
    "datum_set_spec",
    "egress",
    "s3_out",
    "tf_job",
}
_TRANSFORM_MODELLED = {
    "image",
    "cmd",
    "stdin",
    "env",
    "working_dir",
    "accept_return_code",
    "err_cmd",
    "err_stdin",
    "datum_batching",
}


def parse_spec(
    doc: dict[str, Any], source: str = "<spec>", default_project: str = "default"
) -> PipelineSpec:
    """Validate one spec document and apply Pachyderm's defaults.

    Field names may be snake_case or camelCase (any spelling that differs only in case and
    underscores). Unknown fields, bad values and broken rules raise a one-line ``SpecError``
    naming ``source`` and the field path.
    """
    if not isinstance(doc, dict):
        raise SpecError(source, "", f"a pipeline spec must be an object, not {_type_name(doc)}")
    try:
        clean = _normalise(doc, _PIPELINE, "")
        return _build(clean, doc, default_project)
    except FieldError as err:
        raise SpecError(source, err.path, err.problem) from None


def _build(d: dict[str, Any], user_doc: dict[str, Any], default_project: str) -> PipelineSpec:
    if "tf_job" in d:
        raise FieldError("tf_job", "not supported")

    pipeline = d.get("pipeline", {})
    name = pipeline.get("name", "")
    if not name:
        raise FieldError("pipeline.name", 'required (e.g. {"pipeline": {"name": "edges"}})')
    _check_pipeline_name(name, "pipeline.name")
    project = pipeline.get("project", {}).get("name") or default_project
    _wrap(names.check_project_name, project, "pipeline.project.name")

    spout = d.get("spout")
    service = d.get("service")
    spout_service = spout.get("service") if spout is not None else None
    for where, svc in (("service", service), ("spout.service", spout_service)):
        if svc is not None and svc.get("type", "NodePort") not in SERVICE_TYPES:
            raise FieldError(
                f"{where}.type", f'"{svc["type"]}" must be one of ' + ", ".join(SERVICE_TYPES)
            )

    transform = _transform(d.get("transform"))
    ignored = [k for k in IGNORED_TOP_LEVEL if _is_set(d.get(k))]
    ignored += [f"transform.{k}" for k in IGNORED_TRANSFORM if _is_set(transform.extras.get(k))]

    tree: Input | None = None
    if "input" in d:
        if spout is not None and spout_service is None:
            raise FieldError(
                "input", "not allowed in a spout: a spout writes its own data; remove input"
            )
        builder = InputBuilder(name, project)
        tree = builder.build(d["input"])
        ignored += builder.ignored
    elif spout is None:
        raise FieldError(
            "input",
            'required (e.g. {"pfs": {"repo": "images", "glob": "/*"}}); only spouts have no input',
        )

    parallelism = d.get("parallelism_spec", {}).get("constant", 0)
    if parallelism < 0:
        raise FieldError("parallelism_spec.constant", "must not be negative (0 means 1 worker)")
    parallelism = parallelism or 1
    if parallelism > 1 and (spout is not None or service is not None):
        kind = "spout" if spout is not None else "service"
        raise FieldError("parallelism_spec.constant", f"must be 1 for a {kind} pipeline")
    autoscaling = d.get("autoscaling", False)
    if autoscaling and spout is not None:
        raise FieldError("autoscaling", "not allowed with spout: a spout always runs")
    if d.get("s3_out") and (spout is not None or service is not None):
        raise FieldError("s3_out", "not allowed with spout or service")

    output_branch = d.get("output_branch") or "master"
    _wrap(names.check_branch_name, output_branch, "output_branch")

    datum_tries = d.get("datum_tries", DEFAULT_DATUM_TRIES)
    if datum_tries < 1:
        raise FieldError("datum_tries", "must be at least 1 (1 means no retries)")
    reprocess = d.get("reprocess_spec") or "until_success"
    if reprocess not in REPROCESS_SPECS:
        raise FieldError("reprocess_spec", f'"{reprocess}" must be "until_success" or "every_job"')
    datum_set = d.get("datum_set_spec")
    if datum_set is not None:
        for key, value in datum_set.items():
            if value < 0:
                raise FieldError(f"datum_set_spec.{key}", "must not be negative")
        if sum(1 for v in datum_set.values() if v) > 1:
            raise FieldError("datum_set_spec", "set only one of number, size_bytes, per_worker")
    if "maximum_expected_uptime" in d:
        _duration(d, "maximum_expected_uptime", positive=False)

    return PipelineSpec(
        name=name,
        project=project,
        description=d.get("description", ""),
        transform=transform,
        input=tree,
        parallelism=parallelism,
        output_branch=output_branch,
        datum_tries=datum_tries,
        datum_timeout=_duration(d, "datum_timeout"),
        job_timeout=_duration(d, "job_timeout"),
        reprocess_spec=reprocess,
        salt=d.get("salt", ""),
        autoscaling=autoscaling,
        spout=spout,
        service=service,
        datum_set_spec=datum_set,
        egress=d.get("egress"),
        s3_out=d.get("s3_out", False),
        extras={k: v for k, v in d.items() if k not in _MODELLED},
        ignored_fields=ignored,
        user_doc=copy.deepcopy(user_doc),
    )


def _check_pipeline_name(name: str, path: str) -> None:
    if len(name) > MAX_PIPELINE_NAME:
        raise FieldError(path, f'"{name}" is longer than {MAX_PIPELINE_NAME} characters')
    if not _PIPELINE_NAME_RE.fullmatch(name):
        raise FieldError(
            path,
            f'"{name}" is invalid: start with a letter or digit, then use only letters,'
            " digits, '_' and '-'",
        )


def _duration(d: dict[str, Any], key: str, *, positive: bool = True) -> float | None:
    if key not in d:
        return None
    try:
        seconds = parse_duration(d[key])
    except ValueError as err:
        raise FieldError(key, str(err)) from None
    if positive and seconds <= 0:
        raise FieldError(key, f'"{d[key]}" must be positive; leave it out for no limit')
    return seconds


def _transform(t: dict[str, Any] | None) -> Transform:
    if t is None:
        raise FieldError("transform", 'required (e.g. {"cmd": ["python3", "/code/main.py"]})')
    cmd = t.get("cmd", [])
    if not cmd:
        # Pachyderm could fall back to the image's entrypoint; running locally there is none.
        raise FieldError("transform.cmd", 'required (e.g. ["python3", "/code/main.py"])')
    if t.get("err_stdin") and not t.get("err_cmd"):
        raise FieldError("transform.err_stdin", "needs transform.err_cmd to read it")
    return Transform(
        image=t.get("image") or DEFAULT_IMAGE,
        cmd=cmd,
        stdin=t.get("stdin", []),
        env=t.get("env", {}),
        working_dir=t.get("working_dir") or None,
        accept_return_code=t.get("accept_return_code", []),
        err_cmd=t.get("err_cmd", []),
        err_stdin=t.get("err_stdin", []),
        datum_batching=t.get("datum_batching", False),
        extras={k: v for k, v in t.items() if k not in _TRANSFORM_MODELLED},
    )


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
                    source, where, f"expected a pipeline spec object, not {_type_name(item)}"
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


def parse_specs(
    text: str, source: str = "<spec>", default_project: str = "default"
) -> list[PipelineSpec]:
    """Load and parse every spec in a file. With several, errors name the spec: "f.yaml (spec 2)"."""
    docs = load_spec_documents(text, source)
    if len(docs) == 1:
        return [parse_spec(docs[0], source, default_project)]
    return [
        parse_spec(doc, f"{source} (spec {i})", default_project) for i, doc in enumerate(docs, 1)
    ]
