"""Pachyderm pipeline specs: reading, validating and defaulting them.

This module owns the *pipeline spec* as a user writes it (``tusk create pipeline -f spec.json``):
the file formats (JSON or YAML, one or many specs per file), the field names (snake_case and
camelCase, as protobuf JSON accepts), Pachyderm's defaults and validation rules, and the typed
``PipelineSpec`` the rest of PPS works from. Its parts live beside it, split by noun and
re-exported here: the field table (``spec_fields``), spec files (``spec_files``), the input tree
(``spec_inputs``), errors (``spec_errors``) and durations and cron (``timing``).

Parsing happens in two steps. ``normalise`` walks the document against a schema of Pachyderm's
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tusk.pfs import names

if TYPE_CHECKING:
    from tusk.workers.limits import Limits
from tusk.pps.spec_errors import FieldError, SpecError
from tusk.pps.spec_fields import (
    DEFAULT_DATUM_TRIES,
    IGNORED_TOP_LEVEL,
    IGNORED_TRANSFORM,
    MAX_PIPELINE_NAME,
    PIPELINE_FIELDS,
    PIPELINE_NAME_RE,
    REPROCESS_SPECS,
    SERVICE_TYPES,
    normalise,
    type_name,
)
from tusk.pps.spec_files import check_shape, load_spec_documents
from tusk.pps.spec_graph import check_file
from tusk.pps.spec_inputs import (
    CronInput,
    CrossInput,
    GroupInput,
    Input,
    InputBuilder,
    JoinInput,
    PfsInput,
    UnionInput,
    is_set,
    wrap_check,
)
from tusk.pps.timing import CRON_EXAMPLES, CronSchedule, format_duration, parse_cron, parse_duration

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

# --------------------------------------------------------------------------------------------
# Typed spec.


@dataclass(frozen=True, kw_only=True)
class Transform:
    """What a pipeline runs for each datum."""

    # The image the code runs in ("": none named, so it runs in the host sandbox).
    image: str = ""
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
        out: dict[str, Any] = {"image": self.image} if self.image else {}
        out.update({
            "cmd": list(self.cmd),
            "stdin": list(self.stdin),
            "env": dict(self.env),
            "accept_return_code": list(self.accept_return_code),
            "err_cmd": list(self.err_cmd),
            "err_stdin": list(self.err_stdin),
            "datum_batching": self.datum_batching,
        })
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

    def limits(self) -> Limits:
        """Bounds on each datum's memory, processes, cpu, /tmp and /pfs/out."""
        from tusk.workers.limits import limits_for

        return limits_for(self.extras.get("resource_limits"))

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
        raise SpecError(source, "", f"a pipeline spec must be an object, not {type_name(doc)}")
    check_shape(doc, source)  # bounds the recursion below, whoever built the document
    try:
        clean = normalise(doc, PIPELINE_FIELDS, "")
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
    wrap_check(names.check_project_name, project, "pipeline.project.name")

    spout = d.get("spout")
    service = d.get("service")
    spout_service = spout.get("service") if spout is not None else None
    for where, svc in (("service", service), ("spout.service", spout_service)):
        if svc is not None and svc.get("type", "NodePort") not in SERVICE_TYPES:
            raise FieldError(
                f"{where}.type", f'"{svc["type"]}" must be one of ' + ", ".join(SERVICE_TYPES)
            )

    transform = _transform(d.get("transform"))
    ignored = [k for k in IGNORED_TOP_LEVEL if is_set(d.get(k))]
    ignored += [f"transform.{k}" for k in IGNORED_TRANSFORM if is_set(transform.extras.get(k))]

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
    wrap_check(names.check_branch_name, output_branch, "output_branch")

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
    if is_set(d.get("resource_limits")):
        from tusk.workers.limits import QuantityError, limits_for  # bad ones fail at create

        try:
            limits_for(d["resource_limits"])
        except QuantityError as e:
            raise FieldError(e.field, e.why) from None
    runtime = d.get("tusk", {}).get("runtime")
    if runtime is not None:
        from tusk.workers.runtimes import choice_problem

        problem = choice_problem(runtime, "spout" if spout is not None else "")
        if problem:
            raise FieldError("tusk.runtime", problem)
    # Checked now, so a bad target (or SQL egress, which tusk lacks) fails at create time.
    egress = d.get("egress") or None
    if egress is not None:
        from tusk.pps.egress import target_of  # keeps sqlalchemy out of plain spec parsing

        target_of(egress)

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
        egress=egress,
        s3_out=d.get("s3_out", False),
        extras={k: v for k, v in d.items() if k not in _MODELLED},
        ignored_fields=ignored,
        user_doc=copy.deepcopy(user_doc),
    )


def _check_pipeline_name(name: str, path: str) -> None:
    if len(name) > MAX_PIPELINE_NAME:
        raise FieldError(path, f'"{name}" is longer than {MAX_PIPELINE_NAME} characters')
    if not PIPELINE_NAME_RE.fullmatch(name):
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
        image=t.get("image") or "",
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


def parse_specs(
    text: str, source: str = "<spec>", default_project: str = "default"
) -> list[PipelineSpec]:
    """Load and parse every spec in a file. With several, errors name the spec: "f.yaml (spec 2)";
    errors of the file as a whole (a pipeline named twice, a cycle) name the file."""
    docs = load_spec_documents(text, source)
    if len(docs) == 1:
        specs = [parse_spec(docs[0], source, default_project)]
    else:
        specs = [parse_spec(doc, f"{source} (spec {i})", default_project)
                 for i, doc in enumerate(docs, 1)]
    check_file(specs, source)  # no pipeline twice, no cycle among them
    return specs
