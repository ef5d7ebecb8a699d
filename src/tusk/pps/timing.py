"""The time languages pipeline specs use: Go durations, RFC 3339 times and cron schedules.

Durations (``"30s"``, ``"1h30m"``) appear in ``datum_timeout`` and ``job_timeout``; cron
schedules in cron inputs. Pure functions, no I/O.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


def format_time(when: datetime) -> str:
    """RFC 3339 text for a time; UTC is written with "Z" as Go does."""
    text = when.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_time(text: str) -> datetime:
    """An RFC 3339 time ("2024-01-01T00:00:00Z"). A time without a zone is taken as UTC."""
    when = datetime.fromisoformat(text.strip())
    return when if when.tzinfo else when.replace(tzinfo=UTC)
