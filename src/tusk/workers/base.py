"""The Runtime interface: what every runtime receives, returns and declares it can do.

A runtime executes one datum attempt: the user's ``cmd`` with ``stdin`` fed, inside a view in
which the datum's inputs appear at ``/pfs/<name>`` and an empty ``/pfs/out`` collects output.
The job code prepares the workspace (``Workspace``) and harvests ``out`` afterwards; a runtime
only decides how the process sees those directories. It also starts the long-lived processes
of services, spouts and datum batching. Its ``Capabilities`` say what it guarantees, and are
what the code above it decides from (links or copies, rewritten paths, sockets): which runtime
runs a pipeline is chosen in ``tusk.workers.runtimes``.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

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


@dataclass(frozen=True)
class ImageRoot:
    """An image's unpacked root file system and what its config says about running in it
    (``ENV`` as ``K=V`` lines, ``WORKDIR``, ``USER``), and the digest it was resolved to."""

    rootfs: Path
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    digest: str = ""


@dataclass
class Invocation:
    """One attempt at running user code for a datum, or a long-lived process's command."""

    cmd: list[str]
    stdin: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # already includes PACH_* and input vars
    working_dir: str | None = None
    timeout: float | None = None
    inputs: list[str] = field(default_factory=list)  # input names mounted under /pfs
    attempt: int = 1  # recorded with every log line, so retries can be told apart
    # Set by whoever stops the job (stop pipeline/job): the runtime kills the process group
    # within a polling tick (0.1 s) and returns an Outcome with ``cancelled``.
    cancel: threading.Event | None = None
    # Extra host files the code must reach, path in its view -> host path (datum batching's
    # socket lives under the root, which an isolated runtime hides): a runtime with a
    # ``socket_path_inside`` shows each read-only at its view path; others need nothing.
    binds: dict[str, str] = field(default_factory=dict)
    # Where to log instead of opening ``log`` (a ``tusk.pps.logs.DatumLog``): datum batching
    # switches it from one datum's log to the next while one process serves many datums.
    log_sink: Any = None
    # Bounds on memory, processes, cpu, /tmp and /pfs/out (``tusk.workers.limits``); None
    # means the defaults.
    limits: Limits | None = None
    # The image the code runs in, for a runtime that ``honours_image`` (others ignore it).
    image: ImageRoot | None = None
    # Who the code runs as, as the spec's ``transform.user`` names it ("" : the image's USER).
    user: str = ""
    # Secrets shown as files: mount path -> file name -> content (read-only, for this code).
    secret_files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    # The tusk root, for code that writes into it with ``tusk put file`` (a spout): a runtime
    # that ``reaches_root`` but has a view of its own shows it there, with the command.
    root: str | None = None


@dataclass
class Outcome:
    returncode: int
    timed_out: bool = False
    error: str = ""  # could not start at all (missing binary, ...)
    cancelled: bool = False  # killed because ``Invocation.cancel`` was set
    stderr_tail: list[str] = field(default_factory=list)  # last stderr lines, for reasons
    limit: str = ""  # the bound that stopped it, in words ("it ran out of memory: ...")


@dataclass(frozen=True)
class Capabilities:
    """What a runtime guarantees about the code it runs. Everything above the runtimes decides
    from these (or by asking the runtime), never from a runtime's name."""

    # Inputs may be hard links into the shared content cache: the runtime shows them read-only,
    # so user code cannot write through a link into the cache. Otherwise it gets copies.
    links_inputs: bool
    # User code sees a real ``/pfs``: paths handed to it (datum variables) need no rewriting.
    real_pfs: bool
    # Stopping the code kills everything it started, even what left its process group.
    kills_tree: bool
    # ``transform.image`` decides the files the code sees (not the host's).
    honours_image: bool
    # The code sees none of the host's users' files, tusk roots or credentials.
    isolated: bool
    # The code can write into the tusk root (a spout's ``tusk put file`` needs that).
    reaches_root: bool
    # Where a host socket given in ``Invocation.binds`` appears to the code; None: at its host
    # path, which the code can reach as it is.
    socket_path_inside: str | None = None


class Runtime(Protocol):
    """Runs user code: one datum attempt (``run``) or a long-lived process (``start``)."""

    name: str  # for messages only ("sandbox", "process"): decide from ``capabilities``

    @property
    def capabilities(self) -> Capabilities: ...

    def run(self, ws: Workspace, inv: Invocation, log: Path) -> Outcome:
        """Run ``inv`` against workspace ``ws``; append its stdout and stderr to the datum log
        ``log`` line by line with timestamps (the format is in ``tusk.pps.logs``)."""

    def start(self, ws: Workspace, inv: Invocation, out: IO[bytes], hold: int,
              ) -> subprocess.Popen[bytes]:
        """Start ``inv`` as a long-lived process (a service, a spout) in a session of its own,
        stdout and stderr to ``out``, stdin fed from ``inv.stdin``. Nothing of the user's code
        runs before a line is written to the pipe whose read end is ``hold``; if that pipe is
        closed first, the process exits (code 111) having run nothing. Raises ``OSError`` when
        it cannot be started at all (say, a missing working directory)."""

    def in_view(self, ws: Workspace, text: str) -> str:
        """``text`` (a ``/pfs`` path, or a variable holding some) as the code under this
        runtime must be given it: unchanged where it sees a real ``/pfs``."""


Runner = Runtime  # the name before runtimes declared capabilities


def which(cmd: str) -> str | None:
    return shutil.which(cmd)
