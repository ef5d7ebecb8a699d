"""What every runner receives and returns, and how one is chosen.

A runner executes one datum attempt: the user's ``cmd`` with ``stdin`` fed, inside a view in
which the datum's inputs appear at ``/pfs/<name>`` and an empty ``/pfs/out`` collects output.
The job code prepares the workspace (``Workspace``) and harvests ``out`` afterwards; a runner
only decides how the process sees those directories.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tusk.workers.limits import Limits


@dataclass
class Workspace:
    """A datum's scratch area on the host: ``pfs/<input name>/...`` and ``pfs/out``."""

    root: Path

    @property
    def pfs(self) -> Path:
        return self.root / "pfs"

    @property
    def out(self) -> Path:
        return self.root / "pfs" / "out"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"


@dataclass
class Invocation:
    """One attempt at running user code for a datum."""

    cmd: list[str]
    stdin: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # already includes PACH_* and input vars
    working_dir: str | None = None
    timeout: float | None = None
    inputs: list[str] = field(default_factory=list)  # input names mounted under /pfs
    attempt: int = 1  # recorded with every log line, so retries can be told apart
    # Set by whoever stops the job (stop pipeline/job): the runner kills the process group
    # within a polling tick (0.1 s) and returns an Outcome with ``cancelled``.
    cancel: threading.Event | None = None
    # Extra read-only files for the sandbox, sandbox path -> host path (datum batching's
    # socket lives under the root, which may be under /tmp, which the sandbox replaces).
    binds: dict[str, str] = field(default_factory=dict)
    # Where to log instead of opening ``log`` (a ``tusk.pps.logs.DatumLog``): datum batching
    # switches it from one datum's log to the next while one process serves many datums.
    log_sink: Any = None
    # Bounds on memory, processes, cpu, /tmp and /pfs/out (``tusk.workers.limits``); None
    # means the defaults.
    limits: Limits | None = None


@dataclass
class Outcome:
    returncode: int
    timed_out: bool = False
    error: str = ""  # could not start at all (missing binary, ...)
    cancelled: bool = False  # killed because ``Invocation.cancel`` was set
    stderr_tail: list[str] = field(default_factory=list)  # last stderr lines, for reasons
    limit: str = ""  # the bound that stopped it, in words ("it ran out of memory: ...")


class Runner(Protocol):
    name: str

    def run(self, ws: Workspace, inv: Invocation, log: Path) -> Outcome:
        """Run ``inv`` against workspace ``ws``; append its stdout and stderr to the datum log
        ``log`` line by line with timestamps (the format is in ``tusk.pps.logs``)."""


_said_fallback = False


def choose_runner(preferred: str | None = None, root: Path | None = None) -> Runner:
    """The sandbox when bubblewrap is usable, else the process runner (said once)."""
    global _said_fallback
    from tusk.workers.runtimes.process import ProcessRunner
    from tusk.workers.runtimes.sandbox import SandboxRunner, bwrap_usable

    if preferred == "process":
        return ProcessRunner()
    if bwrap_usable():
        return SandboxRunner(root)
    if preferred == "sandbox":
        from tusk.errors import FailedPrecondition

        raise FailedPrecondition("the sandbox runner needs bubblewrap: apt-get install bubblewrap")
    if not _said_fallback:
        import sys

        print("tusk: bubblewrap (bwrap) not found; running user code without a sandbox "
              "(/pfs paths are rewritten to a scratch directory)", file=sys.stderr)
        _said_fallback = True
    return ProcessRunner()


def which(cmd: str) -> str | None:
    return shutil.which(cmd)
