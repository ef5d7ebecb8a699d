"""The sandbox runtime: user code under bubblewrap, seeing Pachyderm's ``/pfs`` for real.

What the code sees (``tusk.workers.runtimes.view``): the host's system directories read-only, its
datum's inputs read-only at ``/pfs/<input>``, ``/pfs/out`` and ``/tmp`` writable (both in the
workspace on the host, so their size can be bounded and measured), a private ``/dev`` and
``/proc``, and nothing of any tusk root, home directory or the controller's working directory.

Who it runs as: never with a capability. When tusk runs as root, bubblewrap sets up the mounts
as root, without a user namespace, then ``setpriv`` drops to ``TUSK_SANDBOX_UID`` (default
65534, nobody) before the user's command: the code owns nothing it was given, and the kernel
keeps it from remounting anything. When tusk runs as another user, bubblewrap makes a user
namespace, drops every capability and forbids nested user namespaces.

Bounds (``tusk.workers.limits``) are put on the sandbox's first process while bubblewrap holds
it at a gate (``--block-fd``), so no user code runs unbounded. The network is shared, as a
Pachyderm worker pod has one; ``TUSK_SANDBOX_NETWORK=none`` cuts it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from typing import IO, Any

from tusk.workers.base import Capabilities, Invocation, Outcome, Workspace, which
from tusk.workers.limits import Confinement, limits_for
from tusk.workers.running import run_logged, start_gated
from tusk.workers.runtimes import view
from tusk.workers.user_env import session_env, tusk_shim, user_path

_NOBODY = 65534
SOCKET_INSIDE = "/run/tusk/next.sock"  # where the code sees a socket given in Invocation.binds


@functools.cache
def bwrap_usable() -> bool:
    """bwrap is installed and can create namespaces here (it cannot in some containers)."""
    exe = which("bwrap")
    if exe is None:
        return False
    try:
        r = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-pid", "true"],
                           capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def sandbox_uid() -> int | None:
    """The uid user code runs as when tusk runs as root; None when tusk is not root."""
    if os.geteuid() != 0:
        return None
    raw = os.environ.get("TUSK_SANDBOX_UID", "")
    return int(raw) if raw.isdigit() and int(raw) != 0 else _NOBODY


@functools.cache
def _setpriv() -> str | None:
    found = shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")
    return found if found and view._visible_system(os.path.realpath(found)) else None


def network_shared() -> bool:
    return os.environ.get("TUSK_SANDBOX_NETWORK", "").lower() not in ("none", "off", "0")


class SandboxRuntime:
    """User code under bubblewrap: read-only host system, read-only inputs, bounded."""

    name = "sandbox"
    # Inputs are bound read-only, so they may be links into the cache; the PID namespace dies
    # with bubblewrap, taking every process the code started with it.
    capabilities = Capabilities(links_inputs=True, real_pfs=True, kills_tree=True,
                                honours_image=False, isolated=True, reaches_root=False,
                                socket_path_inside=SOCKET_INSIDE)

    def __init__(self, root: Any = None) -> None:
        self.bwrap = which("bwrap") or "bwrap"
        self.root = root  # the tusk root, hidden from user code like every other root

    def in_view(self, ws: Workspace, text: str) -> str:
        return text  # /pfs is real

    def start(self, ws: Workspace, inv: Invocation, out: IO[bytes], hold: int,
              ) -> subprocess.Popen[bytes]:
        """A service in the sandbox (no bounds of ``tusk.workers.limits``: those are per datum
        attempt and belong to a slot's thread; a service outlives both)."""
        self.prepare(ws, inv)
        return start_gated(self.command(ws, inv), self.environment(inv), str(ws.root), ws,
                           list(inv.stdin), out, hold)

    def command(self, ws: Workspace, inv: Invocation, gate: tuple[int, int] | None = None,
                ) -> list[str]:
        """bwrap's argv for ``inv``; ``gate`` is (info fd, block fd) for ``run``."""
        uid = self.run_as(inv)
        args = [self.bwrap, *self.view(ws, inv), "--dev", "/dev", "--proc", "/proc", "--dir", "/pfs"]
        for name in inv.inputs:
            src = ws.pfs / name
            if src.exists():
                args += ["--ro-bind", str(src), f"/pfs/{name}"]
        args += ["--bind", str(ws.out), "/pfs/out"]
        args += view.parents(inv.binds)
        for inside, host in inv.binds.items():
            args += ["--ro-bind", host, inside]
        for i, mount_path in enumerate(inv.secret_files):
            args += [*view.parents([mount_path]), "--ro-bind", str(_secret_dir(ws, i)), mount_path]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                 "--die-with-parent", "--new-session", "--chdir", self.working_dir(inv)]
        if not network_shared():
            args.append("--unshare-net")
        if gate is not None:
            args += ["--info-fd", str(gate[0]), "--block-fd", str(gate[1])]
        if uid is None:
            # Not root: bubblewrap makes a user namespace; no capability survives into it and
            # the code may not make another one (where it could hold capabilities again).
            args += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL", "--", *inv.cmd]
            return args
        setpriv = self.setpriv_argv()
        if setpriv is None or uid[0] == 0:
            # Without setpriv (or asked to stay tusk's own root, for a spout that writes into
            # the root it owns) the code keeps uid 0, but with no capability at all.
            return [*args, "--cap-drop", "ALL", "--", *inv.cmd]
        # Root: the mounts are made by root with no user namespace, so nothing inside can
        # ever change them; setpriv then gives up root for good. Changing to a non-zero uid
        # clears the permitted and effective capabilities, and no_new_privs (set by bwrap)
        # keeps set-uid programs and file capabilities from giving any back.
        return [*args, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                "--", *setpriv, f"--reuid={uid[0]}", f"--regid={uid[1]}", "--clear-groups", "--",
                *inv.cmd]

    def view(self, ws: Workspace, inv: Invocation) -> list[str]:
        """bwrap arguments for the file system the code sees, besides ``/pfs``, ``/dev`` and
        ``/proc``: the host's system directories and what the spec names, and ``/tmp``."""
        named = view.spec_paths(inv.cmd, inv.stdin, inv.working_dir)
        shown = view.binds([*view.runtime_paths(), *named], view.known_roots(self.root))
        # /tmp first: host paths a spec names under /tmp are bound inside it afterwards.
        return [*view.system_binds(), "--bind", str(ws.tmp), "/tmp", *shown,
                "--ro-bind", tusk_shim(), view.SHIM_DIR,
                "--dir", "/var", "--symlink", "../tmp", "/var/tmp"]

    def working_dir(self, inv: Invocation) -> str:
        return inv.working_dir or "/pfs"

    def setpriv_argv(self) -> list[str] | None:
        """How the code's view runs ``setpriv`` (None: it cannot)."""
        found = _setpriv()
        return [found] if found else None

    def run_as(self, inv: Invocation) -> tuple[int, int] | None:
        """(uid, gid) the code runs as when tusk runs as root; None when tusk is not root."""
        uid = sandbox_uid()
        return None if uid is None else (uid, uid)

    def prepare(self, ws: Workspace, inv: Invocation) -> None:
        """Make the writable directories writable by the code's user, and its secret files."""
        ids = self.run_as(inv)
        for d in (ws.out, ws.tmp):
            d.mkdir(parents=True, exist_ok=True)
            if ids is not None:
                os.chown(d, *ids)
        for i, files in enumerate(inv.secret_files.values()):
            _write_secrets(_secret_dir(ws, i), files, ids)

    def environment(self, inv: Invocation) -> dict[str, str]:
        return {"HOME": "/tmp", **session_env(), "PATH": view.sandbox_path(user_path(None)),
                "TMPDIR": "/tmp", **inv.env}

    def run(self, ws: Workspace, inv: Invocation, log: Any) -> Outcome:
        self.prepare(ws, inv)
        stdin = "".join(line + "\n" for line in inv.stdin)
        confine = Confinement(inv.limits or limits_for(None),
                              {str(ws.out): "/pfs/out", str(ws.tmp): "/tmp"})
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        fds = {info_r, info_w, block_r, block_w}

        def close(fd: int) -> None:
            if fd in fds:  # never twice: another thread may have the number by then
                fds.discard(fd)
                os.close(fd)

        def open_gate(proc: Any) -> None:
            # bwrap says which process will run the command, and waits for a byte before it
            # does: the bounds are in place before any user code runs.
            close(info_w)
            close(block_r)
            pid = _child_pid(info_r)
            if pid is not None:
                confine.attach(pid)
            try:
                os.write(block_w, b"1")
            except OSError:
                pass  # bwrap already failed; its exit code and stderr say why

        try:
            # On timeout or cancel run_logged kills bwrap's process group; the sandboxed process
            # then dies with it (--die-with-parent), and with it the whole PID namespace.
            return run_logged(self.command(ws, inv, (info_w, block_r)), stdin,
                              self.environment(inv), str(ws.root), inv, log, confine=confine,
                              on_start=open_gate, pass_fds=(info_w, block_r))
        finally:
            for fd in sorted(fds):  # a copy: close() removes from fds
                close(fd)


SandboxRunner = SandboxRuntime  # the name before runtimes declared capabilities


def _secret_dir(ws: Workspace, i: int) -> Any:
    return ws.root / "secrets" / str(i)


def _write_secrets(d: Any, files: dict[str, bytes], ids: tuple[int, int] | None) -> None:
    """A secret's keys as files readable by the code's user only (a fresh directory)."""
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True, mode=0o700)
    os.chmod(d.parent, 0o700)
    for key, value in files.items():
        fd = os.open(d / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as f:
            f.write(value)
        if ids is not None:
            os.chown(d / key, *ids)
    os.chmod(d, 0o500)
    if ids is not None:
        os.chown(d, *ids)


def _child_pid(fd: int) -> int | None:
    """The ``child-pid`` bwrap writes to its info fd (None if it exited first)."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError):
            continue
