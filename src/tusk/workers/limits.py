"""Bounds on one datum's use of the machine, and the words for the bound it hit.

A datum must not take the machine down. Each attempt gets:

* **memory** and **processes**: a cgroup of its own (cgroup v1 ``memory``/``pids``, or v2 when
  the controller's cgroup delegates them) where tusk may create one, else ``RLIMIT_AS`` and
  ``RLIMIT_NPROC`` (in the sandbox's user namespace the process count is per sandbox);
* **cpu**, from ``resource_limits.cpu``: a CFS quota where a cgroup is available (otherwise it
  has no effect, as the documentation says);
* **/tmp** and **/pfs/out**: their total size, checked while the datum runs (every
  ``CHECK_EVERY`` seconds; the datum is killed when one is over), and ``RLIMIT_FSIZE`` so that
  no single file can outgrow the larger bound between two checks;
* no core dumps (``RLIMIT_CORE`` 0): a crashing program must not fill ``/pfs/out``.

Defaults (each overridable by an environment variable of the controller, and by the spec's
``resource_limits``): memory half the machine's RAM (``TUSK_SANDBOX_MEMORY``), 1024 processes
(``TUSK_SANDBOX_PIDS``), 2 GiB of ``/tmp`` (``TUSK_SANDBOX_TMP``) and 16 GiB of ``/pfs/out``
(``TUSK_SANDBOX_OUT``); ``resource_limits.disk`` bounds ``/tmp`` and ``/pfs/out`` each.
"""

from __future__ import annotations

import atexit
import errno
import functools
import itertools
import os
import re
import resource
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tusk.errors import InvalidArgument

CHECK_EVERY = 0.25  # seconds between two measurements of /tmp and /pfs/out
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "m": 0.001}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")


class QuantityError(InvalidArgument):
    """A bound that is not a quantity; ``field`` names where it was written."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


def parse_quantity(value: Any, what: str) -> float:
    """A Kubernetes quantity ("256Mi", "1G", "0.5", 2) as a number."""
    if isinstance(value, bool):
        raise QuantityError(what, f'expected a quantity such as "512Mi", got {value!r}')
    if isinstance(value, (int, float)):
        if not 0 < value < 2**63:
            raise QuantityError(what, f"must be a positive quantity, got {value!r}")
        return float(value)
    m = _QUANTITY.match(str(value))
    if m is None or m.group(2) not in _UNITS:
        raise QuantityError(what, f'expected a quantity such as "512Mi" or "2G", got {value!r}')
    number = float(m.group(1)) * _UNITS[m.group(2)]
    if not 0 < number < 2**63:
        raise QuantityError(what, f"must be a positive quantity, got {value!r}")
    return number


def human(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:g} {unit}" if (n / size) % 1 == 0 else f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


@dataclass(frozen=True)
class Limits:
    """What one datum attempt may use; None means unbounded."""

    memory: int | None = None
    pids: int | None = None
    cpu: float | None = None
    tmp: int | None = None
    out: int | None = None
    source: str = "default"  # said in reasons: "resource_limits.memory" or the default's name



def _env_quantity(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw in ("0", "none", "unlimited"):
        return None
    return parse_quantity(raw, name)


def _ram() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 * 2**30


def limits_for(resource_limits: dict[str, Any] | None) -> Limits:
    """The bounds of a pipeline's datums: the defaults, overridden by its ``resource_limits``."""
    rl = resource_limits or {}
    memory = _env_quantity("TUSK_SANDBOX_MEMORY", _ram() // 2)
    pids = _env_quantity("TUSK_SANDBOX_PIDS", 1024)
    tmp = _env_quantity("TUSK_SANDBOX_TMP", 2 * 2**30)
    out = _env_quantity("TUSK_SANDBOX_OUT", 16 * 2**30)
    cpu = None
    if rl.get("memory") not in (None, ""):
        memory = parse_quantity(rl["memory"], "resource_limits.memory")
    if rl.get("cpu") not in (None, "", 0):
        cpu = parse_quantity(rl["cpu"], "resource_limits.cpu")
    if rl.get("disk") not in (None, ""):
        tmp = out = parse_quantity(rl["disk"], "resource_limits.disk")
    return Limits(memory=int(memory) if memory else None, pids=int(pids) if pids else None,
                  cpu=cpu, tmp=int(tmp) if tmp else None, out=int(out) if out else None,
                  source="resource_limits" if rl else "default")


# -- cgroups ----------------------------------------------------------------------------------

_V1_ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count()


def _own_cgroups() -> dict[str, str]:
    """controller -> this process's cgroup path (v1 lines), or {"": path} for v2."""
    out: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path
    except OSError:
        pass
    return out


@functools.cache
def _cgroup_bases() -> dict[str, Path] | None:
    """Where this process may create per-datum cgroups: controller -> directory, or None.

    v1: a ``tusk-<pid>`` directory under our own cgroup in the ``memory``, ``pids`` and ``cpu``
    hierarchies. v2: our own cgroup, when it delegates ``memory`` and ``pids`` to children.
    Tried once per process; anything short of memory and pids means "use rlimits".
    """
    own = _own_cgroups()
    bases: dict[str, Path] = {}
    if "memory" in own and "pids" in own and (_V1_ROOT / "memory").is_dir():
        for ctrl in ("memory", "pids", "cpu"):
            if ctrl not in own or not (_V1_ROOT / ctrl).is_dir():
                continue
            parent = _V1_ROOT / ctrl / own[ctrl].lstrip("/")
            _remove_stale(parent)
            base = parent / f"tusk-{os.getpid()}"
            try:
                base.mkdir(exist_ok=True)
            except OSError:
                continue
            bases[ctrl] = base
            atexit.register(_remove_tree, base)
        return bases if "memory" in bases and "pids" in bases else None
    if "" in own and (_V1_ROOT / "cgroup.controllers").exists():
        mine = _V1_ROOT / own[""].lstrip("/")
        try:
            delegated = (mine / "cgroup.subtree_control").read_text().split()
        except OSError:
            return None
        if "memory" in delegated and "pids" in delegated:
            return {"v2": mine}
    return None


class Confinement:
    """The bounds of one datum attempt on one process tree, and what they stopped.

    Made before the process starts; ``attach(pid)`` before the user's code runs (the sandbox
    holds it at a gate meanwhile); ``check()`` while it runs; ``verdict(...)`` once it exited;
    ``close()`` always.

    With cgroup v1 the cgroups belong to the *thread* that runs datums (a slot): the thread is
    moved into them once, and every process it starts is born inside, so no datum pays for a
    migration (a few ms each) and none can run a moment unbounded. A thread that is in a
    cgroup counts as one of its tasks, hence ``pids + 1``. With v2 (where a process's threads
    share one cgroup), each attempt gets a cgroup of its own and its first process is moved in.
    """

    def __init__(self, limits: Limits, dirs: dict[str, Path]) -> None:
        self.limits = limits
        self.dirs = dirs  # directory -> what it is called in reasons ("/tmp", "/pfs/out")
        self.groups: dict[str, Path] = {}
        self._own = False  # the groups were made for this attempt (v2), not the thread's
        self._base: dict[str, int] = {}
        self.over = ""  # set by check() when a directory grew past its bound
        self._next_check = time.monotonic() + CHECK_EVERY
        bases = _cgroup_bases()
        if bases is None:
            return
        try:
            if "v2" in bases:
                self.groups, self._own = _make(bases), True
            else:
                self.groups = _thread_groups(bases)
            for ctrl, g in self.groups.items():
                _set_limits(ctrl, g, limits, self._own)
            # Counters only grow: what this attempt did is the difference from now.
            self._base = {str(f): _v1_counter(f, key) for f, key in self._counters()}
        except OSError:
            self._drop()  # fall back to rlimits for this attempt

    @property
    def uses_cgroups(self) -> bool:
        return bool(self.groups)

    def attach(self, pid: int) -> None:
        """Put ``pid`` (not yet running user code) under the bounds; its children inherit."""
        lim = self.limits
        if self._own:
            for g in self.groups.values():
                (g / "cgroup.procs").write_text(str(pid))
        pairs: list[tuple[int, int]] = [(resource.RLIMIT_CORE, 0)]
        if self._file_bound():
            pairs.append((resource.RLIMIT_FSIZE, self._file_bound()))
        if not self.groups:
            if lim.memory:
                pairs.append((resource.RLIMIT_AS, lim.memory))
            if lim.pids:
                pairs.append((resource.RLIMIT_NPROC, lim.pids))
        for which, value in pairs:
            try:
                resource.prlimit(pid, which, (value, value))
            except (OSError, ValueError):
                pass  # the process already exited, or the hard limit is lower already

    def check(self, final: bool = False) -> str:
        """Measure /tmp and /pfs/out now and then (always when ``final``); the reason to stop
        the datum, or ""."""
        now = time.monotonic()
        if self.over or (now < self._next_check and not final):
            return self.over
        self._next_check = now + CHECK_EVERY
        for path, name in self.dirs.items():
            bound = self.limits.out if name == "/pfs/out" else self.limits.tmp
            if bound and _usage(path, bound) > bound:
                self.over = f"it wrote more than {human(bound)} to {name} ({self._src('disk')})"
                return self.over
        return ""

    def _counters(self) -> list[tuple[Path, str]]:
        out = []
        if "memory" in self.groups:
            out.append((self.groups["memory"] / "memory.oom_control", "oom_kill"))
        if "pids" in self.groups:
            out.append((self.groups["pids"] / "pids.events", "max"))
        if "v2" in self.groups:
            out += [(self.groups["v2"] / "memory.events", "oom_kill"),
                    (self.groups["v2"] / "pids.events", "max")]
        return out

    def verdict(self, returncode: int | None, stderr_tail: list[str]) -> str:
        """Which bound ended a failed attempt, in words; "" when none did."""
        if self.over:
            return self.over
        for f, key in self._counters():
            if _v1_counter(f, key) > self._base.get(str(f), 0):
                return self._memory() if key == "oom_kill" else self._pids()
        if returncode in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            return f"a file it wrote reached the file size limit of {human(self._file_bound())}"
        tail = "\n".join(stderr_tail)
        if not self.groups and self.limits.memory and any(
                s in tail for s in ("MemoryError", "Cannot allocate memory", "bad_alloc",
                                    "out of memory")):
            return self._memory() + " (as address space)"
        return ""

    def _file_bound(self) -> int:
        """RLIMIT_FSIZE: a little over the larger directory bound, so that one file crossing a
        bound is caught by the directory's measurement, which names the directory."""
        files = max(self.limits.tmp or 0, self.limits.out or 0)
        return files + 2**20 if files else 0

    def _memory(self) -> str:
        return f"it ran out of memory: limit {human(self.limits.memory or 0)} " \
               f"({self._src('memory')})"

    def _pids(self) -> str:
        return f"it reached the process limit of {self.limits.pids} ({self._src('processes')})"

    def _src(self, what: str) -> str:
        if self.limits.source == "resource_limits" and what in ("memory", "disk"):
            return f"resource_limits.{what}"
        env = {"memory": "TUSK_SANDBOX_MEMORY", "processes": "TUSK_SANDBOX_PIDS",
               "disk": "TUSK_SANDBOX_TMP / TUSK_SANDBOX_OUT"}[what]
        return f"the default; set resource_limits or {env} to change it"

    def close(self) -> None:
        """Kill whatever the attempt left running in its cgroups (a background process of the
        process runtime, say), and remove cgroups made for this attempt alone."""
        me = str(threading.get_native_id())
        for g in self.groups.values():
            _kill_members(g, spare=me)
        if self._own:
            for g in self.groups.values():
                _rmdir(g)
        self.groups = {}

    def _drop(self) -> None:
        if self._own:
            for g in self.groups.values():
                _rmdir(g)
        self.groups = {}


_THREADS = threading.local()
_THREADS_LOCK = threading.Lock()
_applied: dict[Path, tuple[Limits, bool]] = {}  # the bounds a cgroup was last given


def _thread_groups(bases: dict[str, Path]) -> dict[str, Path]:
    """The calling thread's own cgroups (v1), made and entered on first use.

    Groups of threads that have exited are removed on the way (they are empty by then), so a
    long-lived controller does not collect one per thread it ever ran.
    """
    groups: dict[str, Path] | None = getattr(_THREADS, "groups", None)
    if groups is not None:
        return groups
    tid = threading.get_native_id()
    with _THREADS_LOCK:
        for base in bases.values():
            for old in base.glob("t*"):
                if old.is_dir() and not _members(old):
                    _rmdir(old, tries=1)
                    _applied.pop(old, None)
        groups = {}
        try:
            for ctrl, base in bases.items():
                g = base / f"t{tid}-{next(_counter)}"
                g.mkdir()
                groups[ctrl] = g
                (g / "tasks").write_text(str(tid))
        except OSError:
            for g in groups.values():
                _rmdir(g, tries=1)
            raise
    _THREADS.groups = groups
    return groups


def _make(bases: dict[str, Path]) -> dict[str, Path]:
    g = bases["v2"] / f"d{os.getpid()}-{next(_counter)}"
    g.mkdir()
    return {"v2": g}


def _set_limits(ctrl: str, g: Path, lim: Limits, own: bool) -> None:
    """Write every bound of ``ctrl`` (unbounded ones too: a thread's group keeps old values)."""
    if _applied.get(g) == (lim, own):
        return
    _applied.pop(g, None)
    pids = (lim.pids + (0 if own else 1)) if lim.pids else None  # the thread is a task too
    if ctrl == "v2":
        (g / "memory.max").write_text(str(lim.memory) if lim.memory else "max")
        if (g / "memory.swap.max").exists():
            (g / "memory.swap.max").write_text("0" if lim.memory else "max")  # no escape to swap
        (g / "pids.max").write_text(str(pids) if pids else "max")
        if (g / "cpu.max").exists():
            (g / "cpu.max").write_text(f"{int(lim.cpu * 100000)} 100000" if lim.cpu else "max")
    elif ctrl == "memory":
        value = str(lim.memory) if lim.memory else "-1"
        mem, sw = g / "memory.limit_in_bytes", g / "memory.memsw.limit_in_bytes"
        # memsw may never be below the memory limit: the order of the two writes depends on
        # whether the bound goes up or down, so try one order, then the other.
        try:
            mem.write_text(value)
            if sw.exists():
                sw.write_text(value)  # no escape into swap
        except OSError:
            if not sw.exists():
                raise
            sw.write_text(value)
            mem.write_text(value)
    elif ctrl == "pids":
        (g / "pids.max").write_text(str(pids) if pids else "max")
    elif ctrl == "cpu":
        (g / "cpu.cfs_period_us").write_text("100000")
        (g / "cpu.cfs_quota_us").write_text(str(max(1000, int(lim.cpu * 100000))) if lim.cpu
                                            else "-1")
    _applied[g] = (lim, own)


def _members(g: Path) -> list[str]:
    try:
        return (g / "tasks").read_text().split()
    except OSError:
        return []


def _rmdir(g: Path, tries: int = 50) -> None:
    for _ in range(tries):  # a killed tree can take a moment to leave its cgroup
        try:
            g.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                return
            _kill_members(g)
            time.sleep(0.02)


def _remove_stale(parent: Path) -> None:
    """Remove the per-datum cgroups of tusk processes that died without cleaning up."""
    try:
        stale = [d for d in parent.glob("tusk-*") if not _alive(d.name[5:])]
    except OSError:
        return
    for d in stale:
        _remove_tree(d, tries=1)  # no waiting at start-up: what is still busy stays for later


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _remove_tree(base: Path, tries: int = 5) -> None:
    """Remove a cgroup and the groups under it, deepest first (a process started from a
    datum, e.g. a tusk command the user code ran, may have made groups of its own there)."""
    try:
        for child in base.iterdir():
            if child.is_dir():
                _remove_tree(child, tries)
                _kill_members(child)
                _rmdir(child, tries=tries)
        base.rmdir()
    except OSError:
        pass


def _kill_members(group: Path, spare: str = "") -> None:
    """SIGKILL every task of ``group`` that is not a thread of this process (the slot thread
    that owns the group, and threads it started, are members too)."""
    try:
        ours = set(os.listdir("/proc/self/task"))
    except OSError:
        ours = set()
    for pid in _members(group):
        if pid == spare or pid in ours:
            continue
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError, PermissionError):
            pass


def _v1_counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except (OSError, ValueError):
        pass
    return 0


def _usage(root: str, bound: int) -> int:
    """Bytes allocated under ``root`` (links not followed), counting stops past ``bound``."""
    total = 0
    stack = [root]
    while stack:
        top = stack.pop()
        try:
            it = os.scandir(top)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += st.st_blocks * 512
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                if total > bound:
                    return total
    return total
