"""Datum batching, the job side: one user process per worker slot, fed datums over a socket.

With ``transform.datum_batching`` the user's command starts once per slot (``parallelism``)
for the whole job instead of once per datum, so interpreters and models load once. Each slot
listens on ``<workspace>/next.sock`` (``$TUSK_DATUM_SOCKET``; the protocol is described in
``tusk.batching``, whose client ``tusk next datum`` and ``tusk.next_datum`` use). On each
request the slot

1. finalises the datum in flight: harvests ``/pfs/out`` as that datum's output (SUCCESS), or
   records the reported error (FAILED; handed out again while ``datum_tries`` allow);
2. empties the workspace, keeping its directories (a runtime may have them bind-mounted, so their
   inodes must stay), and materialises the next datum's inputs;
3. answers with that datum's environment, or "done", after which the process has
   ``EXIT_GRACE`` seconds to exit before it is killed.

A process that exits or crashes with a datum in flight fails that datum (exit code and last
stderr lines); if datums remain, a new process is started for them. A process that exits
without ever asking fails the remaining datums, rather than being restarted forever. Stopping
the job kills the process; ``restart datum`` kills it too and hands the datum out again.

Logs: what the process prints goes to the log of the datum in flight (the runtime's log sink is
switched at every hand-out), and outside any datum (start-up, after "done") to
``batch-<slot>.log`` in the job's log directory, shown by ``tusk logs`` as datum ``batch-<slot>``.
Skipping is unchanged: only the job's datums to run are handed out. ``err_cmd`` runs as its
own process when a datum has failed for the last time, in the slot's workspace (which still
holds that datum's inputs) while the user's process waits for its next datum; if it exits 0
the datum is RECOVERED. A process that never asked for a datum has no datum to recover.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tusk.batching import PROTOCOL, SOCKET_ENV, short_path
from tusk.pps import datums as dm
from tusk.pps import logs
from tusk.pps.jobs import _empty, datum_env, inputs_by_name
from tusk.pps.logs import DatumLog
from tusk.pps.outcomes import FAILED, RECOVERED, STOPPED, SUCCESS, DatumResult, cut_short
from tusk.pps.spec import PipelineSpec
from tusk.pps.workspace import OutputError, harvest, materialize, reset
from tusk.workers.base import Invocation, Outcome, Runtime, Workspace

if TYPE_CHECKING:
    from sqlalchemy import Row

    from tusk.pps.jobs import JobRunner

EXIT_GRACE = 5.0  # seconds a process may take to exit after "no more datums"
_TICK = 0.1  # how often a slot checks stop, timeouts and its process between requests
_REQUEST_TIMEOUT = 5.0  # a client that connects but sends no complete request is dropped


class SwitchingLog(DatumLog):
    """A datum log whose file can change while the process writing it runs.

    The runtime's thread feeds it; the slot's thread retargets it at every hand-out, so both go
    through one lock. ``stderr_tail`` restarts with each datum: a failure quotes its own lines.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, 1)
        self._lock = threading.Lock()
        self._closed = False

    def feed(self, stream: str, data: bytes) -> None:
        with self._lock:
            super().feed(stream, data)

    def note(self, text: str) -> None:
        with self._lock:
            if not self._closed:
                super().note(text)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                super().close()

    def retarget(self, path: Path, attempt: int) -> None:
        with self._lock:
            if self._closed:
                return
            super().close()  # writes out partial lines where they were printed
            self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
            self.attempt = attempt
            self.stderr_tail.clear()

    def tail(self) -> list[str]:
        with self._lock:
            return list(self.stderr_tail)


@dataclass
class _Flight:
    """The datum a slot's process is working on."""

    result: DatumResult
    cancel: threading.Event  # set by the job's watch for 'restart datum' or a stop
    since: float  # monotonic time of the hand-out, for datum_timeout


def run_batched(jr: JobRunner, job: Row, spec: PipelineSpec, todo: list[dm.Datum], entries: dict,  # type: ignore[type-arg]
                commit_ids: dict, writer: Any, lock: threading.Lock, salt: str, work: Path,  # type: ignore[type-arg]
                log_dir: Path, deadline: float | None) -> list[DatumResult]:
    """Run ``todo`` through one batching process per slot; results in ``todo`` order."""
    return _Batch(jr, job, spec, todo, entries, commit_ids, writer, lock, salt, work, log_dir,
                  deadline).run()


class _Batch:
    def __init__(self, jr: JobRunner, job: Row, spec: PipelineSpec, todo: list[dm.Datum],
                 entries: dict, commit_ids: dict, writer: Any, lock: threading.Lock, salt: str,  # type: ignore[type-arg]
                 work: Path, log_dir: Path, deadline: float | None) -> None:
        self.jr = jr
        self.job = job
        self.spec = spec
        self.todo = todo
        self.entries = entries
        self.commit_ids = commit_ids
        self.writer = writer
        self.lock = lock
        self.salt = salt
        self.work = work
        self.log_dir = log_dir
        self.deadline = deadline
        assert jr._watch is not None and jr.runtime is not None, "batching runs in _run_datums"
        self.watch = jr._watch
        self.runtime: Runtime = jr.runtime  # the pipeline's: the user process and err_cmd
        self.queue: deque[dm.Datum] = deque(todo)
        self.qlock = threading.Lock()
        self.results: dict[str, DatumResult] = {}
        self.done = 0
        self.counts: dict[str, int] = {}  # final datum states so far, for the live progress
        self.errors: list[BaseException] = []  # what a slot thread raised
        # Every input name any datum has: a runtime with a view binds /pfs/<name> once, at start.
        self.names = list(dict.fromkeys(di.name for d in todo for di in d.inputs))

    def run(self) -> list[DatumResult]:
        slots = max(1, min(self.spec.parallelism, len(self.todo)))
        threads = [threading.Thread(target=self._slot, args=(n,), name=f"batch-slot-{n}")
                   for n in range(slots)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.errors:
            raise self.errors[0]  # a bug or an I/O failure: fail the run as _run_datums would
        out = []
        for d in self.todo:
            r = self.results.get(d.id)
            if r is None or not r.finished:
                r = r or DatumResult(d, FAILED, d.hash(self.salt), started=time.time())
                r.state = FAILED
                # A datum waiting for a retry when the job was halted keeps its last failure.
                r.reason = r.reason or self._not_run()
                r.finished = time.time()
            out.append(r)
        return out

    # -- the queue ----------------------------------------------------------------------------

    def _halted(self) -> bool:
        return self.watch.stopped.is_set() or (
            self.deadline is not None and time.monotonic() >= self.deadline)

    def _not_run(self) -> str:
        if self.watch.stopped.is_set():
            return f"not run: {STOPPED}"
        return f"not run: job_timeout of {self.spec.job_timeout:g}s exceeded"

    def _take(self) -> dm.Datum | None:
        if self._halted():
            return None
        with self.qlock:
            return self.queue.popleft() if self.queue else None

    def _more(self) -> bool:
        with self.qlock:
            return bool(self.queue) and not self._halted()

    def _settle(self, r: DatumResult, reason: str = "", retry: bool = False,
                ws: Workspace | None = None) -> None:
        """Record how an attempt ended: final, or back to the front of the queue for a retry.
        A final failure in ``ws`` (its inputs still in place) gets the ``err_cmd``."""
        if r.state != SUCCESS:
            r.reason = reason
            if retry and r.attempts < self.spec.datum_tries and not self._halted():
                with self.qlock:
                    self.queue.appendleft(r.datum)
                return
            if ws is not None:
                self._recover(r, ws)
        r.finished = time.time()
        with self.qlock:
            self.done += 1
            done = self.done
            if not cut_short(r):  # cut short by a stop: counts as nothing
                self.counts[r.state] = self.counts.get(r.state, 0) + 1
            counts = dict(self.counts)
        if done % 50 == 0 or done == len(self.todo):
            self.jr._progress(self.job.id, counts.get(SUCCESS, 0), counts.get(FAILED, 0),
                              counts.get(RECOVERED, 0))

    def _recover(self, r: DatumResult, ws: Workspace) -> None:
        """Run ``err_cmd`` for a datum that failed for good; exit 0 makes it RECOVERED."""
        t = self.spec.transform
        if not t.err_cmd or not r.attempts or self._halted():
            return
        env = {**datum_env(self.job, self.spec, r.datum, self.commit_ids), **self.jr.secrets[0]}
        inv = Invocation(list(t.err_cmd), list(t.err_stdin), env, t.working_dir,
                         self.spec.datum_timeout, self.names, r.attempts, limits=self.spec.limits(),
                         **self._image_parts())
        outcome = self.runtime.run(ws, inv, self.log_dir / f"{r.datum.id}.log")
        if outcome.returncode == 0 and not outcome.timed_out and not outcome.limit:
            r.state = RECOVERED
            r.outputs = []

    def _image_parts(self) -> dict[str, Any]:
        """The job's image, the spec's user and its secret files, for an Invocation."""
        return {"image": self.jr.image, "user": str(self.spec.transform.extras.get("user") or ""),
                "secret_files": self.jr.secrets[1]}

    # -- one slot -----------------------------------------------------------------------------

    def _slot(self, n: int) -> None:
        try:
            ws = Workspace(self.work / str(n))
            reset(ws)
            for name in self.names:
                (ws.pfs / name).mkdir(parents=True, exist_ok=True)
            path = ws.root / "next.sock"
            server = _listen(path)
            try:
                while self._more():
                    self._process(n, ws, server, path)
            finally:
                server.close()
                path.unlink(missing_ok=True)
        except BaseException as e:  # noqa: BLE001 - re-raised by run() in the job's thread
            self.errors.append(e)

    def _process(self, n: int, ws: Workspace, server: socket.socket, path: Path) -> None:
        """Start the user's process once and serve its requests until it has exited."""
        t = self.spec.transform
        # The socket is under the root: a runtime that hides the root shows it elsewhere.
        inside = self.runtime.capabilities.socket_path_inside
        env = {**t.env, "PACH_JOB_ID": self.job.job_id, "PACH_OUTPUT_COMMIT_ID": self.job.job_id,
               "PACH_PIPELINE_NAME": self.spec.name, SOCKET_ENV: inside or str(path),
               **self.jr.secrets[0]}
        slot_log = self.log_dir / f"batch-{n}.log"
        sink = SwitchingLog(slot_log)
        kill = threading.Event()
        inv = Invocation(list(t.cmd), list(t.stdin), env, t.working_dir, None, self.names, 1, kill,
                         {inside: str(path)} if inside else {}, sink, self.spec.limits(),
                         **self._image_parts())
        reset(ws, tmp=False)  # whatever an earlier process left in /pfs is not this one's
        box: list[Outcome] = []
        user_proc = threading.Thread(
            target=lambda: box.append(self.runtime.run(ws, inv, slot_log)),
            name=f"batch-run-{n}", daemon=True)
        user_proc.start()
        flight: _Flight | None = None
        asked = False
        done_at: float | None = None
        killed = ""  # why we killed the process, if we did
        prev: set[str] = set()  # the variables of the datum handed out before
        while user_proc.is_alive():
            now = time.monotonic()
            if not killed:
                timeout = self.spec.datum_timeout
                if self.watch.stopped.is_set():
                    killed = "stopped"
                elif self.deadline is not None and now >= self.deadline:
                    killed = "deadline"
                elif flight is not None and flight.cancel.is_set():
                    killed = "restart"
                elif flight is not None and timeout is not None and now - flight.since >= timeout:
                    killed = "timeout"
                elif done_at is not None and now - done_at >= EXIT_GRACE:
                    killed = "lingered"
                    sink.note(f"user code still running {EXIT_GRACE:g}s after the last datum:"
                              " killed")
                if killed:
                    kill.set()
            if killed:
                user_proc.join(_TICK)
                continue
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                req = _read_request(conn)
                if req is None:
                    _reply(conn, {"fail": "malformed request on the datum socket (protocol"
                                          f" version {PROTOCOL} expected)"})
                    continue
                asked = True
                if flight is not None:
                    self._finish(flight, ws, req.get("error"))
                    flight = None
                d = self._take()
                if d is None:
                    sink.retarget(slot_log, 1)
                    _reply(conn, {"done": True, "unset": sorted(prev)})
                    prev = set()
                    done_at = time.monotonic()
                    continue
                flight, denv = self._hand_out(d, ws, sink)
                _reply(conn, {"datum": d.id, "env": denv, "unset": sorted(prev - denv.keys())})
                prev = set(denv)
        user_proc.join()
        sink.close()  # normally closed by the runtime already; harmless twice
        outcome = box[0] if box else Outcome(returncode=-1, error="the runtime's thread failed")
        if flight is not None:
            self._crashed(flight, killed, outcome, ws)
        elif not asked and killed not in ("stopped", "deadline"):
            self._never_asked(outcome)

    def _hand_out(self, d: dm.Datum, ws: Workspace, sink: SwitchingLog,
                  ) -> tuple[_Flight, dict[str, str]]:
        r = self.results.get(d.id)
        log = self.log_dir / f"{d.id}.log"
        if r is None:
            r = self.results[d.id] = DatumResult(d, FAILED, d.hash(self.salt), started=time.time())
            logs.write_header(log, [(di.name, di.repo, f.path, f.hash) for di in d.inputs
                                    for f in di.files])
        r.attempts += 1
        reset(ws, tmp=False)
        for di in d.inputs:
            src = [self.entries[(di.project, di.repo, di.branch)][f.path] for f in di.files]
            materialize(ws, di.name, src, self.jr.cache, self.runtime.capabilities.links_inputs,
                        _empty(self.spec, di.name))
        sink.retarget(log, r.attempts)
        paths = tuple(f.path for di in d.inputs for f in di.files)
        cancel = self.watch.attempt(d.id, paths)
        # Sent over the socket, not through the runtime: given as the code must see them.
        env = {k: self.runtime.in_view(ws, v)
               for k, v in datum_env(self.job, self.spec, d, self.commit_ids).items()}
        return _Flight(r, cancel, time.monotonic()), env

    def _finish(self, flight: _Flight, ws: Workspace, error: Any) -> None:
        """The process asked for more: the datum in flight is done, as it reports."""
        r = flight.result
        self.watch.finished(r.datum.id)
        if error is not None:
            self._settle(r, f"user code reported: {str(error).strip() or 'failure'}", retry=True,
                         ws=ws)
            return
        try:
            r.outputs = harvest(ws, r.datum.id, self.writer, self.lock,
                                inputs_by_name(r.datum, self.entries))
        except OutputError as e:
            self._settle(r, str(e), ws=ws)  # bad output: trying again would make the same
            return
        r.state = SUCCESS
        r.reason = ""
        self._settle(r)

    def _crashed(self, flight: _Flight, killed: str, outcome: Outcome, ws: Workspace) -> None:
        """The process ended with a datum in flight."""
        r = flight.result
        restarted = self.watch.finished(r.datum.id)
        if killed == "restart" and restarted and not self.watch.stopped.is_set():
            r.attempts -= 1  # 'restart datum': hand it out again without using up a try
            with self.qlock:
                self.queue.appendleft(r.datum)
            return
        if killed in ("stopped", "restart"):
            self._settle(r, STOPPED)
        elif killed == "deadline":
            self._settle(r, f"timed out: job_timeout of {self.spec.job_timeout:g}s exceeded")
        elif killed == "timeout":
            self._settle(r, f"timed out after {self.spec.datum_timeout:g}s", retry=True, ws=ws)
        else:
            why = outcome.error or (f"user code exited with code {outcome.returncode}"
                                    " during the datum")
            self._settle(r, logs.with_stderr(why, outcome.stderr_tail), retry=True, ws=ws)

    def _never_asked(self, outcome: Outcome) -> None:
        """The process ended without asking for a datum: starting it again would do the same,
        so the remaining datums fail with what it said."""
        why = outcome.error or (
            f"user code exited with code {outcome.returncode} without asking for a datum"
            " (with datum_batching it must loop on 'tusk next datum' or tusk.next_datum())")
        why = logs.with_stderr(why, outcome.stderr_tail)
        while (d := self._take()) is not None:
            r = self.results.get(d.id)
            if r is None:
                r = self.results[d.id] = DatumResult(d, FAILED, d.hash(self.salt),
                                                     started=time.time())
            r.attempts += 1
            self._settle(r, why)


def _listen(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    address, fd = short_path(str(path))
    try:
        server.bind(address)
        # An isolated runtime may run the code as another user (the sandbox: nobody, when tusk
        # is root); it reaches the socket only through the runtime's bind, so opening it up
        # is safe.
        os.chmod(path, 0o666)
    finally:
        if fd is not None:
            os.close(fd)
    server.listen(8)
    server.settimeout(_TICK)
    return server


def _read_request(conn: socket.socket) -> dict[str, Any] | None:
    conn.settimeout(_REQUEST_TIMEOUT)
    data = b""
    try:
        while not data.endswith(b"\n") and len(data) < 1 << 20:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        req = json.loads(data)
    except (OSError, ValueError):
        return None
    if not isinstance(req, dict) or req.get("op") != "next":
        return None
    return req


def _reply(conn: socket.socket, answer: dict[str, Any]) -> None:
    try:
        conn.sendall(json.dumps(answer).encode() + b"\n")
    except OSError:
        pass  # the client went away; its process ending is noticed by the slot loop
