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

import functools
import os
import shutil
import subprocess
from typing import Any

from tusk.workers.base import Capabilities, ImageRoot, Invocation, Outcome, Workspace
from tusk.workers.runtimes.sandbox import SOCKET_INSIDE, SandboxRuntime, sandbox_uid

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Top-level directories of the image the runtime makes itself (over the image's, if any).
_OWN = {"pfs", "tmp", "dev", "proc"}
HOST = "/.tusk/host"  # where the host's setpriv and the libraries it needs are shown


@functools.cache
def host_setpriv() -> tuple[tuple[str, str], ...] | None:
    """(host path, path in the view) of the host's ``setpriv``, its libraries and its loader.

    Dropping root happens inside the view, where the image's own files are all there is: the
    host's ``setpriv`` is shown at ``/.tusk/host`` with the libraries it links (``ldd``), and
    started through the host's loader, so nothing of the image's libraries is involved. It
    then executes the user's command, which runs on the image's own loader and libraries."""
    exe = shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if exe is None:
        return None
    try:
        out = subprocess.run(["ldd", exe], capture_output=True, text=True, timeout=10,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = [(os.path.realpath(exe), f"{HOST}/setpriv")]
    loader = None
    for line in out.splitlines():
        words = line.split()
        path = words[2] if "=>" in words and len(words) > 2 else (words[0] if words else "")
        if not path.startswith("/"):
            continue
        real = os.path.realpath(path)
        name = os.path.basename(path)
        if "=>" not in words:
            loader = f"{HOST}/lib/{name}"
        files.append((real, f"{HOST}/lib/{name}"))
    if loader is None:
        return None
    return tuple(files) + (("", loader),)


class ImageRuntime(SandboxRuntime):
    """User code in its image's root file system, with the sandbox's bounds."""

    name = "image"
    capabilities = Capabilities(links_inputs=True, real_pfs=True, kills_tree=True,
                                honours_image=True, isolated=True, reaches_root=False,
                                socket_path_inside=SOCKET_INSIDE)

    def run(self, ws: Workspace, inv: Invocation, log: Any) -> Outcome:
        if inv.image is None:
            return Outcome(127, error="the image runtime was given no image (the job resolves"
                                      " transform.image when it starts)")
        return super().run(ws, inv, log)

    def prepare(self, ws: Workspace, inv: Invocation | None = None) -> None:
        super().prepare(ws, inv)
        if inv is None or inv.image is None:
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
        for host, inside in (host_setpriv() or ())[:-1]:
            args += ["--ro-bind", host, inside]
        return [*args, "--bind", str(ws.tmp), "/tmp"]

    def setpriv_argv(self) -> list[str] | None:
        shown = host_setpriv()
        if shown is None:
            return None
        return [shown[-1][1], "--library-path", f"{HOST}/lib", f"{HOST}/setpriv"]

    def working_dir(self, inv: Invocation) -> str:
        return inv.working_dir or _image(inv).working_dir or "/"

    def run_as(self, inv: Invocation) -> tuple[int, int] | None:
        base = sandbox_uid()
        if base is None:
            return None  # not root: bubblewrap's user namespace, as in the sandbox
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
        return {**env, **inv.env}


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
