"""Scratch files and the processes that own them: what garbage collection may reclaim.

A writer stages bytes in the object store's scratch directory (packs being filled, sealed packs
a bulk put has not published yet, temp files of an atomic write) and publishes them by rename.
A writer killed part-way leaves its scratch behind, and only the writer knows whether a scratch
file is still wanted. So every scratch file, and every pack ID, carries its *owner token*: the
PID of the process that will publish or index it plus that process's start time (so a recycled
PID is not mistaken for the owner). Garbage collection then decides without guessing:

* the owner is alive: the file is never touched, however old it is;
* the owner is dead: the file can never be published, and is reclaimed at once;
* no owner in the name (written by an older tusk): reclaimed only once older than a grace
  period, the one case where age is all there is to go on.

Tokens are read from ``/proc``; where there is none, a signal-0 probe of the PID stands in (a
recycled PID then keeps a dead writer's file until that process exits too, which is safe).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tusk.procinfo import proc_stat

_TOKEN = re.compile(r"^w(\d+)\.(\d+)$")
_cache: tuple[int, str] | None = None


def _start_time(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot, or None if it is gone."""
    st = proc_stat(pid)
    return None if st is None else st[2]

def owner_token(pid: int | None = None) -> str:
    """The token naming this process (or ``pid``) as an owner: ``w<pid>.<start time>``."""
    global _cache
    me = os.getpid()
    pid = me if pid is None else pid
    if pid == me and _cache is not None and _cache[0] == me:  # a forked child is a new owner
        return _cache[1]
    started = _start_time(pid) if os.path.exists("/proc/self/stat") else 0
    token = f"w{pid}.{started or 0}"
    if pid == me:
        _cache = (me, token)
    return token


def owner_alive(token: str) -> bool | None:
    """Whether the owner named by ``token`` still runs; None if ``token`` names no owner."""
    m = _TOKEN.match(token)
    if m is None:
        return None
    pid, started = int(m.group(1)), int(m.group(2))
    if os.path.exists("/proc/self/stat"):
        return _start_time(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def scratch_name(kind: str, owner: str | None = None) -> str:
    """A fresh scratch file name owned by ``owner`` (default: this process)."""
    return f"{owner or owner_token()}-{kind}-{uuid.uuid4().hex}"


def owner_of_scratch(name: str) -> str:
    """The owner part of a scratch file's name (the text before the first '-')."""
    return name.split("-", 1)[0]


def new_pack_id(owner: str | None = None) -> str:
    """A pack ID: random, then its owner, so an unindexed pack's writer can be asked about."""
    return f"{uuid.uuid4().hex}.{owner or owner_token()}"


def owner_of_pack(key: str) -> str:
    """The owner part of a pack key (empty for packs named by an older tusk)."""
    name = key.rsplit("/", 1)[-1]
    return name.split(".", 1)[1] if "." in name else ""


def reclaimable(owner: str, age: float, grace: float) -> bool:
    """Whether a file whose name carries ``owner`` and which is ``age`` seconds old is garbage."""
    alive = owner_alive(owner)
    if alive is None:  # no owner recorded: only age can tell
        return age >= grace
    return not alive


@dataclass(frozen=True)
class ScratchFile:
    path: Path
    size: int
    age: float
    owner: str


def survey(directory: Path) -> list[ScratchFile]:
    """Every file in a scratch directory (nothing recursive: writers never make subdirectories)."""
    now = time.time()
    out: list[ScratchFile] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return out
    for e in entries:
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            st = e.stat(follow_symlinks=False)
        except FileNotFoundError:  # published or removed by its writer meanwhile
            continue
        out.append(ScratchFile(Path(e.path), st.st_size, now - st.st_mtime, owner_of_scratch(e.name)))
    return sorted(out, key=lambda f: f.path.name)


def abandoned(directory: Path, grace: float) -> list[ScratchFile]:
    """The scratch files no live writer can still want (see the module docstring)."""
    return [f for f in survey(directory) if reclaimable(f.owner, f.age, grace)]
