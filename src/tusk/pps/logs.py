"""User-code logs: how a datum's output is recorded, and how ``tusk logs`` reads it back.

Layout under the root: ``logs/<project>/<pipeline>/<job id>/<datum id>.log``, one file per
datum holding every attempt (and the ``err_cmd`` run) as JSON lines, oldest first::

    {"ts": 1714557600.123456, "inputs": [["in", "in", "/b.txt", "<hash hex>"]]}
    {"ts": 1714557600.131002, "stream": "stdout", "line": "hello", "attempt": 1}
    {"ts": 1714557600.131510, "stream": "stderr", "line": "oops", "attempt": 1}

The first record is a header with the datum's input files, written before the first attempt:
``datum_runs`` rows only exist once a job has finished, so the header is what lets
``--inputs`` find the datums of a running job. ``stream`` is ``stdout`` or ``stderr`` for
what user code printed, and ``tusk`` for what the runner itself says (timed out, could not
start, cancelled). ``ts`` is seconds since the epoch as a float: cheap to write, and sorting
lines of several datums into one timeline is a plain sort.

Writers (the runners) append complete lines only and flush after every chunk they read, so a
reader that stops at the last newline never sees half a record; that is all ``--follow``
needs: it remembers an offset per file and polls.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack
from sqlalchemy import select

from tusk.errors import InvalidArgument, NotFound
from tusk.storage import schema as s

if TYPE_CHECKING:
    from tusk.pps.model import DatumInfo, JobInfo
    from tusk.pps.service import PpsService

USER = "stdout", "stderr"
SYSTEM = "tusk"
# A line longer than this (a progress bar without newlines, a binary dump) is cut into pieces,
# so one datum cannot make the runner buffer unbounded memory.
MAX_LINE = 64 * 1024
REASON_LINES = 3  # stderr lines quoted in a datum's failure reason
REASON_WIDTH = 200  # ... each cut to this many characters, so the reason stays one short line
TAIL_LINES = 10  # stderr lines a runner keeps in memory and 'inspect datum' shows
_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]  # a JSON string, UTF-8 kept


# -- writing ----------------------------------------------------------------------------------


class DatumLog:
    """Appends one run of user code to a datum's log, a line at a time with timestamps.

    The runner feeds raw bytes as it reads them from the process's pipes; partial lines wait
    for their newline (or for ``close``). The last stderr lines are kept for failure reasons.
    """

    def __init__(self, path: Path, attempt: int = 1) -> None:
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.attempt = attempt
        self._partial: dict[str, bytes] = {}
        self.stderr_tail: deque[str] = deque(maxlen=TAIL_LINES)

    def feed(self, stream: str, data: bytes) -> None:
        buf = self._partial.get(stream, b"") + data
        *lines, rest = buf.split(b"\n")
        while len(rest) > MAX_LINE:
            lines.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._partial[stream] = rest
        if lines:
            text = [raw.decode("utf-8", "replace").rstrip("\r") for raw in lines]
            self._write(time.time(), stream, text)
            self._f.flush()

    def note(self, text: str) -> None:
        """A line from the runner itself (timeout, cancel, could not start)."""
        self._write(time.time(), SYSTEM, [text])
        self._f.flush()

    def close(self) -> None:
        now = time.time()
        for stream, rest in self._partial.items():
            if rest:  # output that did not end with a newline is still a line
                self._write(now, stream, [rest.decode("utf-8", "replace").rstrip("\r")])
        self._partial.clear()
        self._f.close()

    def _write(self, ts: float, stream: str, lines: list[str]) -> None:
        if stream == "stderr":
            self.stderr_tail.extend(lines)
        # Formatted by hand: json.dumps per line costs more than the user's process producing
        # it for chatty code. Only ``line`` needs escaping; the C string encoder does that.
        head = f'{{"ts": {ts:.6f}, "stream": {_quote(stream)}, "line": '
        tail = f', "attempt": {int(self.attempt)}}}\n'
        self._f.write("".join(head + _quote(line) + tail for line in lines))


def write_header(path: Path, inputs: Iterable[tuple[str, str, str, bytes | str]]) -> None:
    """Record a datum's input files ``(name, repo, path, hash)`` before it first runs."""
    files = [[n, r, p, h.hex() if isinstance(h, bytes) else h] for n, r, p, h in inputs]
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"ts": round(time.time(), 6), "inputs": files}) + "\n")


def with_stderr(reason: str, tail: Iterable[str]) -> str:
    """``reason`` followed by the last few non-blank stderr lines: "exit code 3; stderr: a | b"."""
    lines = [ln.strip() for ln in tail if ln.strip()][-REASON_LINES:]
    if not lines:
        return reason
    cut = [ln if len(ln) <= REASON_WIDTH else ln[:REASON_WIDTH - 3] + "..." for ln in lines]
    return f"{reason}; stderr: {' | '.join(cut)}"


# -- reading ----------------------------------------------------------------------------------


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LogLine:
    pipeline: str
    job: str
    datum: str
    ts: float
    stream: str
    line: str
    attempt: int

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "job": self.job, "datum": self.datum, "ts": iso(self.ts),
                "stream": self.stream, "line": self.line, "attempt": self.attempt}

    def text(self) -> str:
        # Milliseconds are enough for people; --raw keeps the microseconds.
        return f"{iso(self.ts)[:23]}Z {self.job[:8]} {self.datum[:12]} {self.line}"


def read_records(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete records of a log file from byte ``offset``; and the offset after the last one."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a record still being written is left for the next read
    out = []
    for raw in data[:end].splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue  # not ours (or a torn write after a crash): skip, do not fail the reader
        if isinstance(rec, dict):
            out.append(rec)
    return out, offset + end


@dataclass
class LogQuery:
    """What ``tusk logs`` asks for. ``job`` and ``datum`` may be ID prefixes; ``inputs`` are
    input file paths (or content hashes) that must all be among a datum's input files."""

    pipeline: str
    project: str = "default"
    job: str | None = None
    datum: str | None = None
    inputs: tuple[str, ...] = ()


@dataclass
class _JobState:
    info: JobInfo
    offsets: dict[Path, int] = field(default_factory=dict)
    wanted: dict[str, bool] = field(default_factory=dict)  # datum id -> passes the filters
    rows: dict[str, list[list[Any]]] | None = None  # datum id -> inputs, from datum_runs
    finished: bool = False  # fully read after the job reached a terminal state


class LogReader:
    """Reads the lines a query selects, once (``lines``) or following new output (``follow``)."""

    def __init__(self, pps: PpsService, query: LogQuery) -> None:
        self.pps = pps
        self.q = query
        self.base = pps.b.root / "logs" / query.project / query.pipeline
        self._jobs: dict[str, _JobState] = {}

    def lines(self) -> Iterator[LogLine]:
        """Every matching line so far: jobs oldest first, each job's datums merged by time."""
        for st in self._states():
            yield from self._read(st)
        if not (self.q.job or self.q.datum or self.q.inputs):
            yield from self._supervised()

    def _supervised(self) -> Iterator[LogLine]:
        """A spout's or service's output (``service.log``, written by the supervisor as plain
        text). Its lines carry no time of their own, so they show the file's last write."""
        path = self.base / "service.log"
        try:
            text = path.read_text(errors="replace")
            ts = path.stat().st_mtime
        except FileNotFoundError:
            return
        for line in text.splitlines():
            yield LogLine(self.q.pipeline, "service", "", ts, "output", line, 1)

    def follow(self, poll: float = 0.25) -> Iterator[LogLine]:
        """Matching lines as they are written. With a job in the query, returns once that job
        has finished and its last lines are out; otherwise runs until the caller stops."""
        while True:
            states = self._states()
            for st in states:
                if st.finished:
                    continue
                # Look at the state before reading: lines written before the job ended are then
                # certainly in the files, so one read after "done" is the last one needed.
                done = st.info.done
                yield from self._read(st)
                st.finished = done
            if self.q.job is not None and states and all(st.finished for st in states):
                return
            time.sleep(poll)

    # -- internals ----------------------------------------------------------------------------

    def _states(self) -> list[_JobState]:
        jobs = list(reversed(self.pps.list_jobs(self.q.pipeline, project=self.q.project)))
        if self.q.job is not None:
            exact = [j for j in jobs if j.id == self.q.job]
            jobs = exact or [j for j in jobs if j.id.startswith(self.q.job)]
            if not jobs:
                raise NotFound(f"job {self.q.pipeline}@{self.q.job} not found")
            if len(jobs) > 1:
                raise InvalidArgument(f"job ID prefix {self.q.job!r} is ambiguous: it matches"
                                      f" {len(jobs)} jobs of pipeline {self.q.pipeline}")
        out = []
        for j in jobs:
            st = self._jobs.get(j.id)
            if st is None:
                st = self._jobs[j.id] = _JobState(j)
            st.info = j
            out.append(st)
        return out

    def _read(self, st: _JobState) -> list[LogLine]:
        d = self.base / st.info.id
        if not d.is_dir():
            return []
        got: list[LogLine] = []
        for path in sorted(d.glob("*.log")):
            did = path.stem
            if self.q.datum and not did.startswith(self.q.datum):
                continue
            if st.wanted.get(did) is False:
                continue
            records, st.offsets[path] = read_records(path, st.offsets.get(path, 0))
            if did not in st.wanted:
                st.wanted[did] = self._wanted(st, did, records)
                if not st.wanted[did]:
                    continue
            for r in records:
                if "line" in r:
                    got.append(LogLine(self.q.pipeline, st.info.id, did, float(r.get("ts", 0)),
                                       str(r.get("stream", "")), str(r["line"]),
                                       int(r.get("attempt", 1))))
        got.sort(key=lambda ln: ln.ts)  # stable: a datum's own lines keep their order
        return got

    def _wanted(self, st: _JobState, did: str, records: list[dict[str, Any]]) -> bool:
        if not self.q.inputs:
            return True
        header = next((r["inputs"] for r in records if "inputs" in r), None)
        if header is None:  # a log without a header: ask the job's datum rows
            if st.rows is None:
                st.rows = self._datum_inputs(st.info.id)
            header = st.rows.get(did, [])
        return inputs_match(header, self.q.inputs)

    def _datum_inputs(self, job_id: str) -> dict[str, list[list[Any]]]:
        p, j, r = s.pipelines, s.jobs, s.datum_runs
        with self.pps.b.db.read() as conn:
            rows = conn.execute(
                select(r.c.datum_id, r.c.inputs)
                .select_from(r.join(j, r.c.job_pk == j.c.id).join(p, j.c.pipeline_id == p.c.id))
                .where(p.c.project == self.q.project, p.c.name == self.q.pipeline,
                       j.c.job_id == job_id)).all()
        return {did: msgpack.unpackb(blob) for did, blob in rows}


def inputs_match(files: list[list[Any]], wanted: Iterable[str]) -> bool:
    """Every wanted path (or hash) is one of a datum's input files ``[name, repo, path, hash]``."""
    have: set[str] = set()
    for _name, _repo, path, h in files:
        have.add(path)
        have.add(h.hex() if isinstance(h, bytes) else str(h))
    return all(w in have or "/" + w.lstrip("/") in have for w in wanted)


# -- one datum --------------------------------------------------------------------------------


def find_datum(pps: PpsService, pipeline: str, job: str, prefix: str,
               project: str = "default") -> DatumInfo:
    """The datum of ``pipeline@job`` whose ID is or starts with ``prefix``.

    A datum of a job still running has no row yet; it is found by its log file, as RUNNING.
    """
    from tusk.pps.model import DatumInfo

    datums = pps.list_datums(pipeline, job, project)
    exact = [d for d in datums if d.id == prefix]
    found = exact or [d for d in datums if d.id.startswith(prefix)]
    if not found:
        d = pps.b.root / "logs" / project / pipeline / job
        ids = sorted(p.stem for p in d.glob(f"{glob_escape(prefix)}*.log")) if d.is_dir() else []
        found = [DatumInfo(i, "RUNNING", job, _header_files(d / f"{i}.log")) for i in ids]
    if not found:
        raise NotFound(f"datum {prefix} not found in job {pipeline}@{job}")
    if len(found) > 1:
        raise InvalidArgument(f"datum ID prefix {prefix!r} is ambiguous: it matches"
                              f" {len(found)} datums of job {pipeline}@{job}")
    return found[0]


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _header_files(path: Path) -> tuple[str, ...]:
    records, _ = read_records(path)
    header = next((r["inputs"] for r in records if "inputs" in r), [])
    return tuple(f"{name}:{p}" for name, _repo, p, _h in header)


def stderr_tail(root: Path, project: str, pipeline: str, job: str, datum: str,
                n: int = TAIL_LINES) -> list[str]:
    """The last ``n`` stderr lines of a datum's last attempt in ``job``."""
    records, _ = read_records(root / "logs" / project / pipeline / job / f"{datum}.log")
    lines = [r for r in records if r.get("stream") == "stderr"]
    if not lines:
        return []
    last = max(int(r.get("attempt", 1)) for r in lines)
    return [str(r["line"]) for r in lines if int(r.get("attempt", 1)) == last][-n:]
