"""The image runtime: user code in its pipeline's image, run daemonless under bubblewrap.

The image's unpacked root (``tusk.images.store``) is the code's whole file system, read-only:
nothing of the host shows but the datum's inputs at ``/pfs/<name>`` (read-only), ``/pfs/out``
and ``/tmp`` (writable, in the workspace, bounded as in the sandbox), and a private ``/dev``
and ``/proc``. No container is started per datum: the cost is the sandbox's, a bwrap spawn.

The code gets the image's ``ENV`` under the spec's ``env`` and Pachyderm's variables, starts in
the spec's ``working_dir`` or else the image's ``WORKDIR`` (``/`` without one), and runs as the
spec's ``user`` or else the image's ``USER``, never as root and never with a capability: an
image that runs as root (most do) runs as ``TUSK_SANDBOX_UID`` (nobody) here, as the sandbox
does. Everything else (bounds, the gate, the PID namespace) is the sandbox's.
"""

from __future__ import annotations

import os
from typing import Any

from tusk.workers.base import Capabilities, ImageRoot, Invocation, Outcome, Workspace
from tusk.workers.runtimes import host_tools, view
from tusk.workers.runtimes.sandbox import SOCKET_INSIDE, SandboxRuntime, sandbox_uid

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Top-level directories of the image the runtime makes itself (over the image's, if any).
_OWN = {"pfs", "tmp", "dev", "proc", "run"}
class ImageRuntime(SandboxRuntime):
    """User code in its image's root file system, with the sandbox's bounds."""

    name = "image"
    capabilities = Capabilities(links_inputs=True, real_pfs=True, kills_tree=True,
                                honours_image=True, isolated=True, reaches_root=True,
                                socket_path_inside=SOCKET_INSIDE)

    def run(self, ws: Workspace, inv: Invocation, log: Any) -> Outcome:
        if inv.image is None:
            return Outcome(127, error="the image runtime was given no image (the job resolves"
                                      " transform.image when it starts)")
        return super().run(ws, inv, log)

    def prepare(self, ws: Workspace, inv: Invocation) -> None:
        super().prepare(ws, inv)
        if inv.image is None:
            return
        # A secret's mount path inside one of the image's (read-only) directories needs its
        # mount point in the unpacked root: an empty directory, made once, never a file of ours.
        root = os.path.realpath(inv.image.rootfs)
        for mount_path in inv.secret_files:
            target = os.path.join(root, mount_path.lstrip("/"))
            parent = os.path.realpath(os.path.dirname(target))
            if parent == root or not parent.startswith(root + "/"):
                continue  # at the top (bwrap makes it) or through a link out of the image
            os.makedirs(os.path.join(parent, os.path.basename(target)), exist_ok=True)

    def view(self, ws: Workspace, inv: Invocation) -> list[str]:
        image = _image(inv)
        root = image.rootfs
        args: list[str] = []
        for entry in sorted(os.listdir(root)):
            if entry in _OWN:
                continue
            path = root / entry
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), f"/{entry}"]
            else:
                args += ["--ro-bind", str(path), f"/{entry}"]
        drop = host_tools.setpriv()
        extra = list(drop[0]) if drop is not None else []
        if inv.root is not None:  # a spout: the whole tusk command, and the root it writes
            extra += host_tools.tusk_command() or ()
        elif inv.binds:  # datum batching: the code asks for datums with 'tusk next datum'
            extra += host_tools.batching_client() or ()
        shown = {inside: host for host, inside in extra}  # one bind per path in the view
        args += view.parents(shown)  # 0755, so the code's user can reach what is bound
        for inside, host in shown.items():
            args += ["--ro-bind", host, inside]
        if inv.root is not None:
            args += ["--bind", inv.root, host_tools.ROOT]
        return [*args, "--bind", str(ws.tmp), "/tmp"]

    def setpriv_argv(self) -> list[str] | None:
        drop = host_tools.setpriv()
        return drop[1] if drop is not None else None

    def working_dir(self, inv: Invocation) -> str:
        return inv.working_dir or _image(inv).working_dir or "/"

    def run_as(self, inv: Invocation) -> tuple[int, int] | None:
        base = sandbox_uid()
        if base is None:
            return None  # not root: bubblewrap's user namespace, as in the sandbox
        if inv.root is not None:
            # A spout writes into the root, which tusk's user owns: it runs as that user (with
            # no capability), as a spout in the process runtime does (with all of them).
            return os.getuid(), os.getgid()
        if inv.image is None:
            return base, base
        ids = _ids(inv.image, inv.user or inv.image.user)
        if ids is None or ids[0] == 0:
            return base, base  # root in the image is nobody here: no capability, ever
        return ids

    def environment(self, inv: Invocation) -> dict[str, str]:
        env = {"PATH": DEFAULT_PATH, "HOME": "/tmp"}
        for line in _image(inv).env:
            key, sep, value = line.partition("=")
            if sep and key:
                env[key] = value
        env.update(inv.env)
        if inv.root is not None:
            env["PATH"] = f"{env['PATH']}:{host_tools.BIN}"  # 'tusk put file'
            # The controller supervising the spout is up: its commands need not start one.
            env.update(TUSK_ROOT=host_tools.ROOT, TUSK_NO_CONTROLLER="1")
        elif inv.binds and host_tools.batching_client() is not None:
            env["PATH"] = f"{env['PATH']}:{host_tools.BIN}"  # 'tusk next datum'
            env["PYTHONPATH"] = ":".join(p for p in (env.get("PYTHONPATH", ""), host_tools.PKG) if p)
        return env


def _image(inv: Invocation) -> ImageRoot:
    assert inv.image is not None, "checked by run() and start()"
    return inv.image


def _ids(image: ImageRoot, user: str) -> tuple[int, int] | None:
    """(uid, gid) for ``user`` ("1000", "1000:1000", "app", "app:staff") as the image's
    ``/etc/passwd`` and ``/etc/group`` say; None when no user is named or it is unknown."""
    if not user:
        return None
    name, _, group = user.partition(":")
    uid = _lookup(image.rootfs / "etc" / "passwd", name, 2)
    if uid is None:
        return None
    gid: int | None
    if group:
        gid = _lookup(image.rootfs / "etc" / "group", group, 2)
    else:
        gid = _lookup(image.rootfs / "etc" / "passwd", name, 3)
    return uid, gid if gid is not None else uid


def _lookup(table: Any, name: str, field: int) -> int | None:
    if name.isdigit():
        if field == 2:
            return int(name)
        name = _name_of(table, name)
    try:
        lines = table.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":")
        if len(parts) > field and parts[0] == name and parts[field].isdigit():
            return int(parts[field])
    return None


def _name_of(table: Any, uid: str) -> str:
    try:
        for line in table.read_text(errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) > 2 and parts[2] == uid:
                return parts[0]
    except OSError:
        pass
    return uid
