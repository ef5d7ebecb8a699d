"""Spout and service pipelines: one long-running process each, kept alive by the controller.

A transform pipeline runs user code once per datum. A *spout* (no input) or a *service* (an
input, served as a whole) instead runs its command continuously, and the ``Supervisor`` here,
owned by the controller and driven by ``Controller.step()`` through ``tick()``, keeps it so:

Each process is started by the pipeline's runtime (``tusk.workers.runtimes``), the same one
its jobs would use, with the user's environment, never the controller's (no token, database URL
or object-store key):

* **Spouts** write into their own output repo the way Pachyderm 2.x spouts do, through the API:
  ``tusk put file <pipeline>@master:/x -f -`` or the Python API. The process gets ``TUSK_ROOT``,
  ``PACH_PIPELINE_NAME`` and a ``PATH`` that ends with a directory holding this installation's
  ``tusk``. It must write into the root (metadata database, objects, locks), so it runs in a
  runtime that ``reaches_root`` (the process runtime) whatever the default: binding the root
  read-write into the sandbox would hand the code everything the sandbox is meant to protect,
  so it would add failure modes (locks and WAL files across mount namespaces, non-file
  backends) and no safety.
* **Services** see the whole of each input (every file of the input branch's newest finished
  commit, like one datum with glob ``/``) at ``/pfs/<input>`` in a fresh workspace. When an
  input head moves to a new finished commit, the new data is materialised, the old process is
  stopped and a new one starts on it. In the sandbox the inputs are read-only, ``/pfs/out``
  scratch and the network the host's; in the process runtime ``/pfs`` is real where a private
  mount namespace can be made, else rewritten to the workspace. There is no Kubernetes, hence
  nothing to expose or map: the process shares the host's network and should listen on
  ``internal_port`` itself; both ports are passed through as ``PACH_SERVICE_INTERNAL_PORT`` and
  ``PACH_SERVICE_EXTERNAL_PORT`` (likewise for a spout with an embedded ``service``).

Either kind is restarted whenever it exits, crash or not, after an exponential backoff
(1 s doubling to 60 s; back to 1 s once a run lasted 60 s). Its stdout and stderr, with one
line per start and exit, go to ``logs/<project>/<pipeline>/service.log``; the restart count
and the last exit go into the pipeline's ``reason``. Supervision runs between the controller's
jobs, so while a long job runs, a restart or a service's move to new data waits for it.

Each live process is recorded in ``run/<project>/<pipeline>.json`` (pid and the kernel's start
time of the process, which together name one process even after its pid is reused). A
controller killed with SIGKILL leaves its processes running; the next controller kills whatever
the records name before it starts anything, so there are never two copies (the runtime holds
each command at a gate until its record is written). ``stop pipeline``
and ``delete pipeline`` kill the recorded process group directly (``stop_recorded``), so they
take effect at once even when no controller is running. The records rely on Linux's ``/proc``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select, update

from tusk.errors import FailedPrecondition, NotFound
from tusk.pfs.refs import CommitRef, RepoRef
from tusk.pfs.service import PfsService
from tusk.pps import image_use, secrets
from tusk.pps.spec import PipelineSpec, parse_spec
from tusk.pps.spec_inputs import CronInput
from tusk.pps.workspace import ContentCache, materialize
from tusk.procinfo import proc_stat
from tusk.storage import schema as s
from tusk.workers.base import Invocation, Runtime, Workspace
from tusk.workers.runtimes import Runtimes

KINDS = ("spout", "service")
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
HEALTHY_AFTER = 60.0  # a run this long resets the backoff
SCAN_EVERY = 0.5  # seconds between looks at the pipelines table and the service inputs
STOP_GRACE = 3.0  # SIGTERM, then SIGKILL after this long
LOG_ROTATE_BYTES = 16 << 20  # a spout runs forever; keep one older log beside the current one

Key = tuple[str, str]  # (project, pipeline)


def _key(w: _Want) -> Key:
    return (w.project, w.name)


def run_file(root: Path, project: str, name: str) -> Path:
    return root / "run" / project / f"{name}.json"


def log_file(root: Path, project: str, name: str) -> Path:
    return root / "logs" / project / name / "service.log"


# -- processes by pid and start time (Linux /proc) ---------------------------------------------


def start_time(pid: int) -> int:
    st = proc_stat(pid)
    return st[2] if st is not None else 0


def _group_running(pgid: int, since: int) -> bool:
    """Is anything alive in process group ``pgid``, whose leader started at ``since``?

    A pid (and so a group id) is not reused while any process of the group exists, so a
    leader with another start time means our group is gone, and members of a group whose
    leader has exited are still ours.
    """
    leader = proc_stat(pgid)
    if leader is not None:
        if leader[2] != since:
            return False
        if leader[0] not in ("Z", "X"):
            return True
    try:
        pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return False
    for pid in pids:
        st = proc_stat(pid)
        if st is not None and st[1] == pgid and st[0] not in ("Z", "X") and pid != pgid:
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_recorded(pgid: int, since: int, grace: float = STOP_GRACE) -> bool:
    """Stop the process group of a process we did not start (or no longer hold); True if
    something was running."""
    if not _group_running(pgid, since):
        return False
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_running(pgid, since):
            return True
        time.sleep(0.05)
    if _group_running(pgid, since):  # checked just now: the group id is still ours
        _signal_group(pgid, signal.SIGKILL)
    return True


def _exited(pid: int) -> bool:
    """Has our child ``pid`` exited? Leaves it unreaped, so its pid (and group id) stay taken
    and a signal to the group cannot reach an unrelated process."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_child(proc: subprocess.Popen[bytes], since: int, grace: float = STOP_GRACE) -> None:
    """Stop a child's whole process group (SIGTERM, then SIGKILL) and reap the child."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if _exited(proc.pid) and not _group_running(proc.pid, since):
            break
        time.sleep(0.05)
    _signal_group(proc.pid, signal.SIGKILL)  # stragglers; the unreaped leader holds the id
    proc.wait()


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def stop_recorded(root: Path, project: str, name: str) -> bool:
    """Kill the recorded process of a spout or service pipeline, from any process (the CLI's
    ``stop pipeline`` and ``delete pipeline``); True if one was running."""
    path = run_file(root, project, name)
    rec = _read_record(path)
    if rec is None:
        return False
    killed = kill_recorded(rec["pid"], int(rec.get("start", 0)))
    # Remove the record only if it still names that process (a controller may have started
    # a new one meanwhile, for a pipeline started again).
    if _read_record(path) == rec:
        path.unlink(missing_ok=True)
    return killed


# -- the supervisor ----------------------------------------------------------------------------


@dataclass
class _Want:
    """A spout or service pipeline the pipelines table says should run."""

    pipeline_id: int
    project: str
    name: str
    version: int
    spec: PipelineSpec

    @property
    def kind(self) -> str:
        return self.spec.pipeline_type


@dataclass
class _Proc:
    """The supervised process of one pipeline and its restart bookkeeping."""

    want: _Want
    popen: subprocess.Popen[bytes] | None = None
    start: int = 0  # kernel start time of popen
    started_at: float = 0.0  # monotonic
    next_start: float = 0.0  # monotonic: when to (re)start
    backoff: float = BACKOFF_FIRST
    restarts: int = 0
    last_exit: str = ""
    served: tuple[tuple[str, str], ...] = ()  # a service's (input name, commit) being served
    work: Path | None = None


class Supervisor:
    """Starts, watches, restarts and stops the processes of spout and service pipelines."""

    def __init__(self, pfs: PfsService, runtimes: Runtimes,
                 say: Callable[[str], None] = lambda m: None) -> None:
        self.pfs = pfs
        self.b = pfs.b
        self.root: Path = self.b.root
        self.runtimes = runtimes  # each pipeline's process starts in the pipeline's runtime
        self.say = say
        self.procs: dict[Key, _Proc] = {}
        self._specs: dict[tuple[int, int], PipelineSpec | None] = {}
        self._next_scan = 0.0
        self._cache: ContentCache | None = None
        # The controller ticks from its clock thread; stop_all may come from the main thread
        # (or a SIGTERM handler in it). After stop_all, ticks start nothing.
        self._lock = threading.RLock()
        self._closed = False
        self._reap_orphans()

    # -- driving ------------------------------------------------------------------------------

    def tick(self) -> bool:
        """One round of supervision; True if a process was started, stopped or exited."""
        with self._lock:
            return False if self._closed else self._tick()

    def _tick(self) -> bool:
        exited = [p for p in self.procs.values() if p.popen is not None and _exited(p.popen.pid)]
        did = bool(exited)
        now = time.monotonic()
        scan = exited or now >= self._next_scan
        if scan:
            # An exit may be 'stop pipeline' or 'delete pipeline' (they kill the process
            # themselves): read the table first, so that is not taken for a crash.
            self._next_scan = now + SCAN_EVERY
            did = self._follow_table() or did
        for p in exited:
            if p.popen is not None and self.procs.get(_key(p.want)) is p:
                self._on_exit(p)
        if scan:
            did = self._follow_inputs() or did
        now = time.monotonic()
        for p in self.procs.values():
            if p.popen is None and now >= p.next_start:
                try:
                    self._start(p)
                except Exception as e:  # noqa: BLE001 - one pipeline must not stop the controller
                    self.say(f"{p.want.kind} {p.want.name}: cannot start\n{traceback.format_exc()}")
                    self._failed_start(p, f"internal error: {type(e).__name__}: {e}")
                did = True
        return did

    def busy(self) -> bool:
        """Does a spout or service run (or wait to be restarted)? Then the controller stays."""
        return bool(self.procs)

    def pending(self) -> bool:
        """Should a spout or service run, per the pipelines table (not yet seen by ``tick``)?"""
        return bool(self._wanted())

    def stop_all(self) -> None:
        """Stop every supervised process (the controller is going away)."""
        with self._lock:
            self._closed = True
            for p in list(self.procs.values()):
                self._stop(p, "controller exiting")
            self.procs.clear()

    def stop_on_sigterm(self) -> None:
        """Make SIGTERM stop the supervised processes before the controller dies, as it would
        have without a handler (immediately, not after a running job)."""
        def handler(signum: int, _frame: object) -> None:
            try:
                self.stop_all()
            finally:
                os._exit(128 + signum)

        signal.signal(signal.SIGTERM, handler)

    # -- what should run ----------------------------------------------------------------------

    def _wanted(self) -> dict[Key, _Want]:
        p = s.pipelines
        with self.b.db.read() as conn:
            rows = conn.execute(select(p.c.id, p.c.project, p.c.name, p.c.version, p.c.spec)
                                .where(p.c.state == "running")).all()
        out: dict[Key, _Want] = {}
        for row in rows:
            key = (row.id, row.version)
            if key not in self._specs:
                try:
                    spec: PipelineSpec | None = parse_spec(json.loads(row.spec),
                                                           f"pipeline {row.name}")
                except Exception as e:  # noqa: BLE001 - a stored spec that no longer parses
                    self.say(f"pipeline {row.name}: cannot read its spec: {e}")
                    spec = None
                self._specs[key] = spec
            spec = self._specs[key]
            if spec is not None and spec.pipeline_type in KINDS:
                out[(row.project, row.name)] = _Want(row.id, row.project, row.name, row.version,
                                                     spec)
        return out

    def _follow_table(self) -> bool:
        """Stop processes of pipelines stopped, deleted or updated; adopt new ones."""
        did = False
        wants = self._wanted()
        for key, p in list(self.procs.items()):
            w = wants.get(key)
            if w is not None and (w.pipeline_id, w.version) == (p.want.pipeline_id, p.want.version):
                continue
            why = ("pipeline stopped or deleted" if w is None
                   else f"pipeline updated to version {w.version}")
            self._stop(p, why)
            del self.procs[key]
            if w is None:
                self._set_reason(p.want, f"{p.want.kind} stopped" + self._history(p))
            did = True
        for key, w in wants.items():
            if key not in self.procs:
                self.procs[key] = _Proc(w)
        return did

    def _follow_inputs(self) -> bool:
        """Restart each service whose input moved to a new finished commit."""
        did = False
        for p in self.procs.values():
            if p.want.kind != "service" or p.popen is None:
                continue
            try:
                heads = self._heads(p.want.spec, files=False)
            except NotFound:
                continue  # the input went away: keep serving what we have
            if tuple((name, cid) for name, cid, _ in heads) != p.served:
                self._log(p, f"input changed; restarting on {self._describe(heads)}")
                self._stop(p, "input changed")
                p.next_start = 0.0  # not a crash: start again at once, on the new data
                did = True
        return did

    # -- starting -----------------------------------------------------------------------------

    def _start(self, p: _Proc) -> None:
        w = p.want
        log = log_file(self.root, w.project, w.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        if log.exists() and log.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(log, log.with_name(log.name + ".1"))
        work = self.root / "work" / "supervised" / w.project / f"{w.name}-{uuid.uuid4().hex[:8]}"
        ws = Workspace(work)
        ws.out.mkdir(parents=True)
        ws.tmp.mkdir(parents=True)
        try:
            runtime = self.runtimes.for_pipeline(w.spec)
            inv, served = self._prepare(w, ws, runtime)
        except (NotFound, FailedPrecondition) as e:
            shutil.rmtree(work, ignore_errors=True)
            self._failed_start(p, f"cannot start: {e}")
            return
        # The user's code must not run before its record is on disk: a controller killed in
        # between would leave a process no record names, and the next one would start a second
        # copy. The runtime holds the command at a gate until we say go; if we die first, the
        # pipe closes and it exits instead.
        gate_r, gate_w = os.pipe()
        try:
            with open(log, "ab") as out:
                out.write(self._line(f"starting {w.kind} {w.name} (version {w.version},"
                                     f" {runtime.name}): {shlex.join(w.spec.transform.cmd)}"))
                out.flush()
                try:
                    popen = runtime.start(ws, inv, out, gate_r)
                except OSError as e:
                    shutil.rmtree(work, ignore_errors=True)
                    # The command itself is exec'd behind the gate; this is the working directory.
                    where = e.filename or inv.working_dir or "/pfs"
                    self._failed_start(p, f"cannot start in {where}: {e.strerror or e}", out)
                    return
            p.popen, p.start, p.started_at = popen, start_time(popen.pid), time.monotonic()
            p.served, p.work = served, work
            self._record(p)
            os.write(gate_w, b"go\n")
        finally:
            os.close(gate_r)
            os.close(gate_w)  # without "go" written, the gate exits: nothing unrecorded runs
        self._set_reason(w, f"{w.kind} running (pid {popen.pid})" + self._history(p))
        self.say(f"{w.kind} {w.name}: started pid {popen.pid}")

    def _prepare(self, w: _Want, ws: Workspace, runtime: Runtime,
                 ) -> tuple[Invocation, tuple[tuple[str, str], ...]]:
        """What to run for a new process, and the input commits it serves.

        A spout (see ``Runtimes.for_pipeline``: always a runtime that reaches the root) writes
        into the root with the CLI (``TUSK_ROOT``), as a Pachyderm spout without auth reaches
        all of pachd. Either kind gets the user's environment from its runtime, never the
        controller's: no token, database URL or object-store key.
        """
        t = w.spec.transform
        env = {**t.env, "PACH_PIPELINE_NAME": w.name, "PPS_PIPELINE_NAME": w.name,
               "PPS_PROJECT_NAME": w.project, "TUSK_ROOT": str(self.root.resolve())}
        ports = w.spec.service
        if ports is None and w.spec.spout is not None:
            ports = w.spec.spout.get("service")  # a spout's embedded service
        for field, var in (("internal_port", "PACH_SERVICE_INTERNAL_PORT"),
                           ("external_port", "PACH_SERVICE_EXTERNAL_PORT")):
            if ports and ports.get(field) is not None:
                env[var] = str(ports[field])
        # A pipeline runs in its image when its runtime honours one, with its secrets.
        image = image_use.fetch(self.root, w.spec)[1] if runtime.capabilities.honours_image else None
        secret_env, secret_files = secrets.for_datum(secrets.SecretStore(self.root), w.spec)
        parts: dict[str, Any] = {"image": image, "user": str(t.extras.get("user") or ""),
                                 "secret_files": secret_files}
        if w.kind == "spout":
            return Invocation(list(t.cmd), list(t.stdin), {**env, **secret_env}, t.working_dir,
                              root=str(self.root.resolve()), **parts), ()
        heads = self._heads(w.spec)
        names: list[str] = []
        for name, cid, entries in heads:
            # Links into the shared cache only where the runtime shows inputs read-only.
            materialize(ws, name, entries, self._content_cache(),
                        link=runtime.capabilities.links_inputs)
            env[name] = f"/pfs/{name}"
            env[f"{name}_COMMIT"] = cid
            if name not in names:
                names.append(name)
        served = tuple((name, cid) for name, cid, _ in heads)
        return Invocation(list(t.cmd), list(t.stdin), {**env, **secret_env}, t.working_dir, None,
                          names, **parts), served

    def _content_cache(self) -> ContentCache:
        if self._cache is None:
            self._cache = ContentCache(self.root / "cache", self.b.reader())
        return self._cache

    def _heads(self, spec: PipelineSpec, files: bool = True) -> list[tuple[str, str, list[Any]]]:
        """(input name, commit ID, files) of each input's newest finished commit; without
        ``files`` the lists stay empty (the cheap check for a moved input).

        An open head (a commit being written, or a job still running upstream) is passed over:
        the service keeps serving complete data until the commit finishes.
        """
        out: list[tuple[str, str, list[Any]]] = []
        with self.b.db.read() as conn:
            for leaf in spec.input.walk() if spec.input else ():
                branch = "master" if isinstance(leaf, CronInput) else leaf.branch
                ref = CommitRef(RepoRef(leaf.project, leaf.repo), branch)
                row = self.pfs.newest_finished(conn, ref)
                if row is None:
                    out.append((leaf.name, "", []))
                else:
                    listing = list(self.pfs.view(conn, row)) if files else []
                    out.append((leaf.name, row.commit_id, listing))
        return out

    def _failed_start(self, p: _Proc, why: str, out: IO[bytes] | None = None) -> None:
        p.last_exit = why
        if out is not None:
            out.write(self._line(why))
        else:
            self._log(p, why)
        self._schedule_restart(p)

    # -- exits and stops ----------------------------------------------------------------------

    def _on_exit(self, p: _Proc) -> None:
        assert p.popen is not None
        ran = time.monotonic() - p.started_at
        # Whatever the leader left behind in its group goes too: a restart must not add a copy.
        _signal_group(p.popen.pid, signal.SIGKILL)
        code = p.popen.wait()
        p.last_exit = _describe_exit(code) + f" after {ran:.1f}s"
        self._log(p, f"exited: {p.last_exit}")
        self.say(f"{p.want.kind} {p.want.name}: {p.last_exit}")
        self._forget(p)
        if ran >= HEALTHY_AFTER:
            p.backoff = BACKOFF_FIRST
        self._schedule_restart(p)

    def _schedule_restart(self, p: _Proc) -> None:
        delay = p.backoff
        p.backoff = min(p.backoff * 2, BACKOFF_MAX)
        p.restarts += 1
        p.next_start = time.monotonic() + delay
        self._log(p, f"restarting in {delay:g}s")
        self._set_reason(p.want, f"{p.want.kind} not running; restarting in {delay:g}s"
                         + self._history(p))

    def _stop(self, p: _Proc, why: str) -> None:
        if p.popen is not None:
            self._log(p, f"stopping pid {p.popen.pid}: {why}")
            _kill_child(p.popen, p.start)
            self.say(f"{p.want.kind} {p.want.name}: stopped ({why})")
        self._forget(p)

    def _forget(self, p: _Proc) -> None:
        """Drop the record and workspace of a process that is gone."""
        if p.popen is not None:
            path = run_file(self.root, p.want.project, p.want.name)
            rec = _read_record(path)
            if rec is not None and rec.get("pid") == p.popen.pid:
                path.unlink(missing_ok=True)
        p.popen = None
        if p.work is not None:
            shutil.rmtree(p.work, ignore_errors=True)
            p.work = None

    def _record(self, p: _Proc) -> None:
        assert p.popen is not None
        path = run_file(self.root, p.want.project, p.want.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps({"pid": p.popen.pid, "start": p.start, "kind": p.want.kind,
                                   "version": p.want.version, "started_at": time.time()}))
        os.replace(tmp, path)

    def _reap_orphans(self) -> None:
        """Kill what a predecessor killed with SIGKILL left running. We hold the controller
        lock, so no recorded process belongs to a live controller."""
        run = self.root / "run"
        if not run.is_dir():
            return
        for path in sorted(run.glob("*/*.json")):
            rec = _read_record(path)
            if rec is not None and kill_recorded(rec["pid"], int(rec.get("start", 0))):
                self.say(f"killed orphaned {rec.get('kind', 'process')} {path.stem}"
                         f" (pid {rec['pid']}) left by an earlier controller")
            path.unlink(missing_ok=True)
        shutil.rmtree(self.root / "work" / "supervised", ignore_errors=True)

    # -- reporting ----------------------------------------------------------------------------

    def _history(self, p: _Proc) -> str:
        if not p.restarts:
            return ""
        return f"; restarts: {p.restarts}" + (f"; last exit: {p.last_exit}" if p.last_exit else "")

    def _set_reason(self, w: _Want, reason: str) -> None:
        p = s.pipelines
        with self.b.db.tx() as conn:
            conn.execute(update(p).where(p.c.id == w.pipeline_id, p.c.version == w.version)
                         .values(reason=reason))

    @staticmethod
    def _line(msg: str) -> bytes:
        return f"--- tusk {time.strftime('%Y-%m-%d %H:%M:%S')}: {msg}\n".encode()

    def _log(self, p: _Proc, msg: str) -> None:
        log = log_file(self.root, p.want.project, p.want.name)
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as f:
                f.write(self._line(msg))
        except OSError:
            pass  # the log is a courtesy; never let it stop supervision

    @staticmethod
    def _describe(heads: list[tuple[str, str, list[Any]]]) -> str:
        return ", ".join(f"{name}@{cid or '(empty)'}" for name, cid, _ in heads) or "no input"


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
