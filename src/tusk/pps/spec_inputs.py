"""The input tree of a pipeline spec, and the small languages it uses (Go durations, cron).

This module owns what a pipeline *reads*: the recursive ``input`` node of a Pachyderm pipeline
spec (``pfs``, ``cross``, ``union``, ``join``, ``group``, ``cron``), the rules that make an input
tree valid (one member per node, unique mount names, join/group keys that refer to capture groups
the glob really has), Go duration strings (``"30s"``, ``"1h30m"``) and cron schedules.

It is the second half of ``tusk.pps.spec``, split off to keep each file readable; import the
public names from ``tusk.pps.spec``. Validation here works on documents whose keys were already
normalised to snake_case by ``tusk.pps.spec`` and raises ``FieldError`` (a field path and a
problem); ``parse_spec`` turns that into a one-line ``SpecError`` naming the source file.
"""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tusk.errors import InvalidArgument
from tusk.pfs import names
from tusk.pfs.globs import Glob, GlobError, compile_glob

# --------------------------------------------------------------------------------------------
# Errors.


class SpecError(InvalidArgument):
    """An invalid pipeline spec. ``str(e)`` is one line: ``<source>: <field.path>: <problem>``."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        # Messages end up on one terminal line and in logs; never let a value's newline split it.
        problem = re.sub(r"\s*\n\s*", " ", problem).strip()
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.path = path
        self.problem = problem


class FieldError(Exception):
    """A problem at one field path, raised while the source name is not known yet."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def join_path(path: str, key: str | int) -> str:
    """``input.cross`` + 1 -> ``input.cross[1]``; ``input`` + ``pfs`` -> ``input.pfs``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------------------------
# Go durations ("300ms", "1.5h", "2h45m"), as accepted by Go's time.ParseDuration.

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign
    "μs": 1e-6,  # Greek mu; Go accepts both
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# Longer units first so "5ms" is milliseconds, not five minutes followed by junk.
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string: "30s", "5m", "1h30m", "500ms", "1.5h", "0".

    Raises ValueError with a message that shows how to write the value.
    """
    s = text.strip()
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'invalid duration "{text}": write e.g. "30s", "5m" or "1h30m"')
    if re.fullmatch(r"\d+\.?\d*|\.\d+", s):
        raise ValueError(f'invalid duration "{text}": missing unit; write e.g. "{s}s"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(
                f'invalid duration "{text}": use numbers with units ns, us, ms, s, m, h,'
                ' e.g. "30s", "5m" or "1h30m"'
            )
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """A duration as protobuf JSON writes one: "300s", "0.5s". ``parse_duration`` reads it back."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:.9f}".rstrip("0") + "s"


# --------------------------------------------------------------------------------------------
# Cron schedules: 5 fields (minute hour day-of-month month day-of-week), an optional leading
# seconds field, the @descriptors, "@every <duration>" and "never". The dialect is that of
# robfig/cron, which Pachyderm uses, so a spec that works there works here.

_MONTH_NAMES = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

# (label, low, high, names) for the six fields, seconds first.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTH_NAMES),
    ("day of week", 0, 7, _DAY_NAMES),  # 7 is Sunday too, as in most crons
)

_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}

CRON_EXAMPLES = '"*/10 * * * *", "@every 60s", "@daily" or "never"'


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron spec. ``next_after(t)`` is the first tick strictly after ``t``.

    Times are compared on ``t``'s own wall clock (Pachyderm ticks in UTC, so callers pass aware
    UTC datetimes), unless the spec starts with ``CRON_TZ=<zone>``.
    """

    spec: str
    seconds: frozenset[int] = frozenset()
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()  # 0 = Sunday
    # Whether day-of-month / day-of-week were unrestricted ("*" or "?"). Like every cron since
    # Vixie's, when both are restricted a day matches if *either* does.
    days_star: bool = True
    weekdays_star: bool = True
    every: float | None = None  # "@every": seconds between ticks
    never: bool = False  # "never": only manual runs (tusk run cron)
    zone: str | None = None  # CRON_TZ / TZ prefix

    def next_after(self, when: datetime) -> datetime | None:
        """The first tick after ``when``, or None for "never" (or a date that never comes)."""
        if self.never:
            return None
        if self.every is not None:
            return when.replace(microsecond=0) + timedelta(seconds=self.every)
        if self.zone is not None:
            local = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(
                ZoneInfo(self.zone)
            )
            found = self._next_on_wall_clock(local)
            return None if found is None else found.astimezone(when.tzinfo or UTC)
        return self._next_on_wall_clock(when)

    def _next_on_wall_clock(self, when: datetime) -> datetime | None:
        t = when.replace(microsecond=0) + timedelta(seconds=1)
        # Every valid field combination recurs within a few years (Feb 29 within 8); past that
        # the spec names a date that does not exist, like "0 0 30 2 *".
        limit = t.year + 9
        seconds = sorted(self.seconds)
        while t.year <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(
                    day=1
                )
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            else:
                later = [s for s in seconds if s >= t.second]
                if later:
                    return t.replace(second=later[0])
                t = t.replace(second=0) + timedelta(minutes=1)
        return None

    def _day_matches(self, t: datetime) -> bool:
        in_days = t.day in self.days
        in_weekdays = (t.weekday() + 1) % 7 in self.weekdays  # Python: Monday = 0
        if self.days_star or self.weekdays_star:
            return in_days and in_weekdays
        return in_days or in_weekdays


def parse_cron(spec: str) -> CronSchedule:
    """Parse a cron spec (see ``CronSchedule``). Raises ValueError naming the bad part."""
    text = spec.strip()
    zone: str | None = None
    if text.startswith(("CRON_TZ=", "TZ=")):
        head, _, text = text.partition(" ")
        zone = head.split("=", 1)[1]
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, malformed, a directory
            raise ValueError(f'cron spec "{spec}": unknown time zone "{zone}"') from None
        text = text.strip()
    lowered = text.lower()
    if lowered in ("never", "@never"):
        return CronSchedule(spec=spec, never=True)
    if lowered.startswith("@every"):
        rest = text[len("@every") :].strip()
        try:
            every = parse_duration(rest)
        except ValueError as err:
            raise ValueError(f'cron spec "{spec}": {err}') from None
        if every < 1:
            # robfig/cron silently rounds up to one second; a zero or sub-second interval is
            # almost certainly a typo, so say so.
            raise ValueError(f'cron spec "{spec}": the interval must be at least 1s')
        return CronSchedule(spec=spec, every=float(math.floor(every)), zone=zone)
    if lowered.startswith("@"):
        if lowered not in _DESCRIPTORS:
            raise ValueError(
                f'cron spec "{spec}": unknown descriptor "{text}"; use one of '
                + ", ".join(sorted(_DESCRIPTORS))
                + ' or "@every <duration>"'
            )
        text = _DESCRIPTORS[lowered]
    parts = text.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    elif len(parts) != 6:
        raise ValueError(
            f'cron spec "{spec}": expected 5 fields (minute hour day-of-month month'
            f" day-of-week) or 6 with seconds first, got {len(parts)}; e.g. {CRON_EXAMPLES}"
        )
    sets: list[frozenset[int]] = []
    stars: list[bool] = []
    for part, (label, low, high, names_) in zip(parts, _FIELDS, strict=True):
        values, star = _cron_field(spec, part, label, low, high, names_)
        sets.append(values)
        stars.append(star)
    weekdays = frozenset(0 if d == 7 else d for d in sets[5])
    return CronSchedule(
        spec=spec,
        seconds=sets[0],
        minutes=sets[1],
        hours=sets[2],
        days=sets[3],
        months=sets[4],
        weekdays=weekdays,
        days_star=stars[3],
        weekdays_star=stars[5],
        zone=zone,
    )


def _cron_field(
    spec: str, text: str, label: str, low: int, high: int, names_: dict[str, int]
) -> tuple[frozenset[int], bool]:
    """The values one field allows, and whether it was a bare "*" (unrestricted)."""

    def bad(problem: str) -> ValueError:
        return ValueError(f'cron spec "{spec}": {label} field "{text}": {problem}')

    def number(word: str) -> int:
        if word.lower() in names_:
            return names_[word.lower()]
        if not word.isdigit():
            raise bad(f'"{word}" is not a number')
        value = int(word)
        if not low <= value <= high:
            raise bad(f"{value} is out of range {low}-{high}")
        return value

    values: set[int] = set()
    star = False
    for item in text.split(","):
        range_part, slash, step_part = item.partition("/")
        step = 1
        if slash:
            if not step_part.isdigit() or int(step_part) < 1:
                raise bad(f'step "{step_part}" must be a positive number')
            step = int(step_part)
        if range_part in ("*", "?"):
            start, end = low, high
            if label == "day of week":
                end = 6  # "*" covers each day once; 7 is only an alias
            # "*/2" restricts the field, so it does not count as unrestricted for the day rule.
            star = star or step == 1
        elif "-" in range_part:
            a, _, b = range_part.partition("-")
            start, end = number(a), number(b)
            if start > end:
                raise bad(f"range {a}-{b} runs backwards")
        else:
            start = number(range_part)
            # "5/15" means "from 5 to the end, every 15", as in robfig/cron.
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values), star


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


def format_time(when: datetime) -> str:
    """RFC 3339 text for a time; UTC is written with "Z" as Go does."""
    text = when.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_time(text: str) -> datetime:
    """An RFC 3339 time ("2024-01-01T00:00:00Z"). A time without a zone is taken as UTC."""
    when = datetime.fromisoformat(text.strip())
    return when if when.tzinfo else when.replace(tzinfo=UTC)


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
        _wrap(names.check_repo_name, repo, join_path(path, "repo"))
        project = doc.get("project") or self.project
        _wrap(names.check_project_name, project, join_path(path, "project"))
        if repo == self.pipeline and project == self.project:
            raise FieldError(
                join_path(path, "repo"),
                f'"{repo}" is this pipeline\'s own output repo; a pipeline cannot read itself',
            )
        branch = doc.get("branch") or "master"
        _wrap(names.check_branch_name, branch, join_path(path, "branch"))
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
            self._trigger(trigger, join_path(path, "trigger"))

        extras = {k: doc[k] for k in ("reference", "propagation_spec") if k in doc}
        self.ignored.extend(join_path(path, k) for k, v in extras.items() if _is_set(v))

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
            _wrap(names.check_branch_name, trigger["branch"], join_path(path, "branch"))
        if trigger.get("cron_spec"):
            try:
                parse_cron(trigger["cron_spec"])
            except ValueError as err:
                raise FieldError(join_path(path, "cron_spec"), str(err)) from None
        if trigger.get("commits", 0) < 0:
            raise FieldError(join_path(path, "commits"), "must not be negative")

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
        _wrap(names.check_project_name, project, join_path(path, "project"))
        repo = doc.get("repo") or f"{self.pipeline}_{name}"
        # A derived name can break the repo rules even when both halves are fine.
        _wrap(names.check_repo_name, repo, join_path(path, "repo"))
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


def _wrap(check: Any, value: str, path: str) -> None:
    """Run a tusk.pfs.names check, moving its message under a field path."""
    try:
        check(value)
    except InvalidArgument as err:
        raise FieldError(path, err.message) from None


def _is_set(value: Any) -> bool:
    """Whether a value differs from its protobuf zero value (so the field does something)."""
    return value not in (None, False, "", 0, [], {})
