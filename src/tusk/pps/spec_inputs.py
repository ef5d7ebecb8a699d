"""The input tree of a pipeline spec.

This module owns what a pipeline *reads*: the recursive ``input`` node of a Pachyderm pipeline
spec (``pfs``, ``cross``, ``union``, ``join``, ``group``, ``cron``) and the rules that make an
input tree valid (one member per node, unique mount names, join/group keys that refer to capture
groups the glob really has). Import the public names from ``tusk.pps.spec``. Validation works on
documents whose keys ``tusk.pps.spec_fields`` already normalised to snake_case and raises
``FieldError``; ``parse_spec`` turns that into a one-line ``SpecError`` naming the source file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from tusk.errors import InvalidArgument
from tusk.pfs import names
from tusk.pfs.globs import Glob, GlobError, compile_glob
from tusk.pps.spec_errors import FieldError, join_path
from tusk.pps.timing import CRON_EXAMPLES, CronSchedule, format_time, parse_cron, parse_time

# --------------------------------------------------------------------------------------------
# The input tree.


class Input:
    """A node of a pipeline's input tree. Leaves are ``PfsInput`` and ``CronInput``."""

    kind: ClassVar[str] = ""

    @property
    def children(self) -> tuple[Input, ...]:
        """Direct sub-inputs (empty for leaves)."""
        return ()

    def walk(self) -> Iterator[PfsInput | CronInput]:
        """Every leaf input under this node, depth first, in spec order."""
        for child in self.children:
            yield from child.walk()

    def to_dict(self) -> dict[str, Any]:
        """The effective input as snake_case JSON: ``{"<kind>": ...}``."""
        return {self.kind: [child.to_dict() for child in self.children]}


@dataclass(frozen=True, kw_only=True)
class PfsInput(Input):
    """One branch of one repo, cut into datums by ``glob``; mounted at ``/pfs/<name>``."""

    kind: ClassVar[str] = "pfs"
    name: str
    repo: str
    project: str
    branch: str = "master"
    glob: str
    lazy: bool = False
    empty_files: bool = False
    join_on: str = ""
    outer_join: bool = False
    group_by: str = ""
    trigger: dict[str, Any] | None = None
    repo_type: str = "user"
    s3: bool = False
    # Accepted fields with no local effect (reference, propagation_spec), kept as given.
    extras: dict[str, Any] = field(default_factory=dict)

    def walk(self) -> Iterator[PfsInput | CronInput]:
        yield self

    @property
    def compiled_glob(self) -> Glob:
        return compile_glob(self.glob)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "project": self.project,
            "repo": self.repo,
            "repo_type": self.repo_type,
            "branch": self.branch,
            "glob": self.glob,
            "lazy": self.lazy,
            "empty_files": self.empty_files,
            "join_on": self.join_on,
            "outer_join": self.outer_join,
            "group_by": self.group_by,
        }
        if self.s3:
            body["s3"] = True
        if self.trigger is not None:
            body["trigger"] = json.loads(json.dumps(self.trigger))
        body.update(json.loads(json.dumps(self.extras)))
        return {"pfs": body}


@dataclass(frozen=True, kw_only=True)
class CronInput(Input):
    """A repo that gets an empty file named after each tick time; its datums are ``/*``."""

    kind: ClassVar[str] = "cron"
    name: str
    spec: str
    repo: str
    project: str
    start: datetime | None = None  # first tick is after this; None = when the pipeline is made
    overwrite: bool = False  # clear the repo on each tick, so only the latest tick file remains

    def walk(self) -> Iterator[PfsInput | CronInput]:
        yield self

    @property
    def schedule(self) -> CronSchedule:
        return parse_cron(self.spec)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "project": self.project,
            "repo": self.repo,
            "spec": self.spec,
            "overwrite": self.overwrite,
        }
        if self.start is not None:
            body["start"] = format_time(self.start)
        return {"cron": body}


@dataclass(frozen=True)
class CrossInput(Input):
    """Cartesian product: each datum takes one datum from every sub-input."""

    kind: ClassVar[str] = "cross"
    inputs: tuple[Input, ...]

    @property
    def children(self) -> tuple[Input, ...]:
        return self.inputs


@dataclass(frozen=True)
class UnionInput(Input):
    """Concatenation: each datum comes from exactly one sub-input."""

    kind: ClassVar[str] = "union"
    inputs: tuple[Input, ...]

    @property
    def children(self) -> tuple[Input, ...]:
        return self.inputs


@dataclass(frozen=True)
class JoinInput(Input):
    """Datums of files whose ``join_on`` keys agree across the pfs sub-inputs."""

    kind: ClassVar[str] = "join"
    inputs: tuple[Input, ...]

    @property
    def children(self) -> tuple[Input, ...]:
        return self.inputs


@dataclass(frozen=True)
class GroupInput(Input):
    """One datum per ``group_by`` key, holding all matching files of all pfs sub-inputs."""

    kind: ClassVar[str] = "group"
    inputs: tuple[Input, ...]

    @property
    def children(self) -> tuple[Input, ...]:
        return self.inputs


MEMBERS = ("pfs", "cross", "union", "join", "group", "cron")
_COMPOSITES: dict[str, type[CrossInput | UnionInput | JoinInput | GroupInput]] = {
    "cross": CrossInput,
    "union": UnionInput,
    "join": JoinInput,
    "group": GroupInput,
}


# --------------------------------------------------------------------------------------------
# Building and validating the tree.

_GROUP_REF = re.compile(r"\$(?:\$|\{(\d+)\}|(\d+))")


def _bad_group_ref(template: str, groups: int) -> str | None:
    """The first ``$N`` in a join_on/group_by template that names no capture group, if any.

    Mirrors ``Glob.expand_groups``: ``$12`` is fine with one group (group 1 then "2"), ``$0``
    and ``${5}`` with three groups are not.
    """
    for m in _GROUP_REF.finditer(template):
        braced, digits = m.group(1), m.group(2)
        if braced is not None and not 1 <= int(braced) <= groups:
            return m.group(0)
        if digits is not None and not any(
            1 <= int(digits[:cut]) <= groups for cut in range(len(digits), 0, -1)
        ):
            return m.group(0)
    return None


def _capture_groups(glob: Glob) -> int:
    # Glob numbers its capture groups as named regex groups g1, g2, ...; other internal groups
    # (negation tails) have other names. There is no public count, so read the compiled regex.
    return sum(1 for group in glob._regex.groupindex if group.startswith("g"))


_MOUNT_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")


def _check_mount_name(name: str, path: str) -> None:
    # The name is a directory under /pfs and the name of environment variables (<name>,
    # <name>_COMMIT), so it follows the repo-name rules, as Pachyderm's input names do.
    if name == "out":
        raise FieldError(path, '"out" is reserved for the output directory /pfs/out; pick another')
    if not _MOUNT_NAME_RE.fullmatch(name):
        raise FieldError(path, f"\"{name}\" is invalid: use only letters, digits, '_' and '-'")


class InputBuilder:
    """Turns a normalised ``input`` document into an ``Input`` tree, checking every rule."""

    def __init__(self, pipeline: str, project: str) -> None:
        self.pipeline = pipeline
        self.project = project
        # Field paths of accepted fields that have no local effect, for PipelineSpec.ignored_fields.
        self.ignored: list[str] = []
        # Trigger inputs without a branch read "<pipeline>-trigger-<n>" (n counts per repo).
        self._trigger_branches: dict[str, int] = {}

    def build(self, doc: dict[str, Any], path: str = "input") -> Input:
        return self._node(doc, path, parent=None, taken={})

    def _node(
        self, doc: dict[str, Any], path: str, parent: str | None, taken: dict[str, str]
    ) -> Input:
        """``taken`` maps each mount name already in use to the path that uses it."""
        present = [m for m in MEMBERS if m in doc]
        if len(present) != 1:
            raise FieldError(path, "set exactly one of " + ", ".join(MEMBERS))
        kind = present[0]
        body = doc[kind]
        here = join_path(path, kind)
        if parent in ("join", "group") and kind != "pfs":
            key = "join_on" if parent == "join" else "group_by"
            raise FieldError(
                path, f"a {parent} input may only contain pfs inputs (each with {key})"
            )
        if kind == "pfs":
            return self._pfs(body, here, parent, taken)
        if kind == "cron":
            return self._cron(body, here, taken)
        if not body:
            raise FieldError(here, "needs at least one input")
        children: list[Input] = []
        if kind == "union":
            # Union members may share a mount name (code then reads one directory whichever
            # member a datum came from), but none may clash with inputs outside the union.
            merged: dict[str, str] = {}
            for i, child in enumerate(body):
                scope = dict(taken)
                children.append(self._node(child, join_path(here, i), kind, scope))
                for name, where in scope.items():
                    merged.setdefault(name, where)
            taken.update(merged)
        else:
            for i, child in enumerate(body):
                children.append(self._node(child, join_path(here, i), kind, taken))
        return _COMPOSITES[kind](tuple(children))

    def _claim(self, name: str, path: str, taken: dict[str, str], named: bool) -> None:
        where = join_path(path, "name")
        _check_mount_name(name, where)
        if name in taken:
            origin = "" if named else " (the repo name)"
            raise FieldError(
                where,
                f'"{name}"{origin} is also the name of {taken[name]}; inputs are mounted at'
                ' /pfs/<name>, so give one of them a different "name"',
            )
        taken[name] = path

    def _pfs(
        self, doc: dict[str, Any], path: str, parent: str | None, taken: dict[str, str]
    ) -> PfsInput:
        if doc.get("commit"):
            raise FieldError(
                join_path(path, "commit"),
                "not allowed: inputs follow a branch; use 'tusk create branch --head' to"
                " process a specific commit",
            )
        repo = doc.get("repo", "")
        if not repo:
            raise FieldError(join_path(path, "repo"), 'required (e.g. "images")')
        wrap_check(names.check_repo_name, repo, join_path(path, "repo"))
        project = doc.get("project") or self.project
        wrap_check(names.check_project_name, project, join_path(path, "project"))
        if repo == self.pipeline and project == self.project:
            raise FieldError(
                join_path(path, "repo"),
                f'"{repo}" is this pipeline\'s own output repo; a pipeline cannot read itself',
            )
        branch = doc.get("branch") or ""
        if not branch and doc.get("trigger") is not None:
            # As Pachyderm: the pipeline reads a branch of its own that the trigger moves.
            self._trigger_branches[repo] = self._trigger_branches.get(repo, 0) + 1
            branch = f"{self.pipeline}-trigger-{self._trigger_branches[repo]}"
        branch = branch or "master"
        wrap_check(names.check_branch_name, branch, join_path(path, "branch"))
        repo_type = doc.get("repo_type") or "user"
        if repo_type not in ("user", "spec", "meta"):
            raise FieldError(
                join_path(path, "repo_type"), f'"{repo_type}" must be "user", "spec" or "meta"'
            )

        s3 = bool(doc.get("s3"))
        glob = doc.get("glob", "")
        if s3:
            # An s3 input is served whole as a bucket, so it is one datum.
            glob = glob or "/"
            if glob != "/":
                raise FieldError(join_path(path, "glob"), 'must be "/" for an s3 input')
            if doc.get("lazy") or doc.get("empty_files"):
                raise FieldError(
                    join_path(path, "s3"), "cannot be combined with lazy or empty_files"
                )
            if parent in ("join", "group", "union"):
                raise FieldError(join_path(path, "s3"), f"not allowed inside a {parent} input")
            self.ignored.append(join_path(path, "s3"))
        if not glob:
            raise FieldError(join_path(path, "glob"), 'required (e.g. "/*")')
        try:
            compiled = compile_glob(glob)
        except GlobError as err:
            raise FieldError(join_path(path, "glob"), str(err)) from None
        groups = _capture_groups(compiled)

        join_on = doc.get("join_on", "")
        group_by = doc.get("group_by", "")
        if parent == "join" and not join_on:
            raise FieldError(
                join_path(path, "join_on"),
                'required inside a join (e.g. "$1" with a glob like "/(*).csv")',
            )
        if parent == "group" and not group_by:
            raise FieldError(
                join_path(path, "group_by"),
                'required inside a group (e.g. "$1" with a glob like "/(*)-*.csv")',
            )
        for key, template in (("join_on", join_on), ("group_by", group_by)):
            bad = _bad_group_ref(template, groups)
            if bad is not None:
                have = f"{groups} capture group" + ("" if groups == 1 else "s")
                raise FieldError(
                    join_path(path, key),
                    f'"{bad}" refers to a capture group the glob "{glob}" does not have (it has'
                    f' {have}); put parentheses around the part to capture, e.g. "/(*).csv"',
                )
            # Pachyderm accepts a key outside its join/group and ignores it; so do we, visibly.
            if template and parent != key.split("_")[0]:
                self.ignored.append(join_path(path, key))
        if doc.get("outer_join") and parent != "join":
            self.ignored.append(join_path(path, "outer_join"))

        trigger = doc.get("trigger")
        if trigger is not None:
            trigger = {**trigger, "branch": trigger.get("branch") or "master"}
            self._trigger(trigger, join_path(path, "trigger"))
            if trigger["branch"] == branch:
                raise FieldError(
                    join_path(join_path(path, "trigger"), "branch"),
                    f'"{branch}" is also the branch the input reads; a branch cannot trigger on'
                    ' itself (leave "branch" out to read a branch of the pipeline\'s own)',
                )

        extras = {k: doc[k] for k in ("reference", "propagation_spec") if k in doc}
        self.ignored.extend(join_path(path, k) for k, v in extras.items() if is_set(v))

        name = doc.get("name", "")
        if not name and repo == "out":
            raise FieldError(
                join_path(path, "name"),
                'required when the repo is "out" (/pfs/out is the output directory);'
                ' set e.g. "name": "out_data"',
            )
        self._claim(name or repo, path, taken, named=bool(name))
        return PfsInput(
            name=name or repo,
            repo=repo,
            project=project,
            branch=branch,
            glob=glob,
            lazy=bool(doc.get("lazy")),
            empty_files=bool(doc.get("empty_files")),
            join_on=join_on,
            outer_join=bool(doc.get("outer_join")),
            group_by=group_by,
            trigger=trigger,
            repo_type=repo_type,
            s3=s3,
            extras=extras,
        )

    def _trigger(self, trigger: dict[str, Any], path: str) -> None:
        if trigger.get("branch"):
            wrap_check(names.check_branch_name, trigger["branch"], join_path(path, "branch"))
        if trigger.get("cron_spec"):
            try:
                parse_cron(trigger["cron_spec"])
            except ValueError as err:
                raise FieldError(join_path(path, "cron_spec"), str(err)) from None
        if trigger.get("commits", 0) < 0:
            raise FieldError(join_path(path, "commits"), "must not be negative")
        if trigger.get("size"):
            from tusk.pfs.triggers import parse_size

            try:
                parse_size(str(trigger["size"]))
            except InvalidArgument as err:
                raise FieldError(join_path(path, "size"), err.message) from None
        if not (trigger.get("size") or trigger.get("commits") or trigger.get("cron_spec")):
            raise FieldError(path, 'needs a condition: "size", "commits" or "cron_spec"')

    def _cron(self, doc: dict[str, Any], path: str, taken: dict[str, str]) -> CronInput:
        if doc.get("commit"):
            raise FieldError(
                join_path(path, "commit"),
                "not allowed: inputs follow a branch; use 'tusk create branch --head' to"
                " process a specific commit",
            )
        name = doc.get("name", "")
        if not name:
            raise FieldError(join_path(path, "name"), 'required for a cron input (e.g. "tick")')
        spec = doc.get("spec", "")
        if not spec:
            raise FieldError(join_path(path, "spec"), f"required (e.g. {CRON_EXAMPLES})")
        try:
            parse_cron(spec)
        except ValueError as err:
            raise FieldError(join_path(path, "spec"), str(err)) from None
        project = doc.get("project") or self.project
        wrap_check(names.check_project_name, project, join_path(path, "project"))
        repo = doc.get("repo") or f"{self.pipeline}_{name}"
        # A derived name can break the repo rules even when both halves are fine.
        wrap_check(names.check_repo_name, repo, join_path(path, "repo"))
        start: datetime | None = None
        if doc.get("start"):
            try:
                start = parse_time(doc["start"])
            except ValueError:
                raise FieldError(
                    join_path(path, "start"),
                    f'"{doc["start"]}" is not an RFC 3339 time; write e.g. "2024-01-01T00:00:00Z"',
                ) from None
        self._claim(name, path, taken, named=True)
        return CronInput(
            name=name,
            spec=spec,
            repo=repo,
            project=project,
            start=start,
            overwrite=bool(doc.get("overwrite")),
        )


def wrap_check(check: Any, value: str, path: str) -> None:
    """Run a tusk.pfs.names check, moving its message under a field path."""
    try:
        check(value)
    except InvalidArgument as err:
        raise FieldError(path, err.message) from None


def is_set(value: Any) -> bool:
    """Whether a value differs from its protobuf zero value (so the field does something)."""
    return value not in (None, False, "", 0, [], {})
