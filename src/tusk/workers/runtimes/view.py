"""What of the host a sandboxed datum sees: the read-only binds and the masks over them.

User code is untrusted. It sees the host's *system* directories (``/usr``, ``/etc``, ``/opt``,
...), read-only, so interpreters and tools installed the ordinary way work as they would in a
Pachyderm image. It never sees home directories, ``/tmp``, ``/run``, ``/var`` or any tusk root:
those hold other repos' data, tusk's metadata and credentials. Three things are added, each
read-only:

* tusk's own runtime (its interpreter's installation and the ``tusk`` package), so user code can
  call ``tusk next datum`` (datum batching) through a shim directory at the end of ``$PATH``;
* host paths the spec names itself: absolute paths in ``cmd``, ``stdin`` and ``working_dir``
  (a script under ``/tmp``, an interpreter under a home directory), and ``TUSK_SANDBOX_BIND``;
* nothing else: the controller's working directory and ``sys.path`` are not bound.

Any tusk root that lies under something bound is covered by an empty tmpfs, so even a root
inside a bound directory is invisible. The view is computed per invocation from the spec; the
fixed part is computed once per process.
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

# Top-level host directories that hold installed software and configuration, never user data.
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt", "srv",
               "nix", "snap")
# Directories an explicit bind may not be: they would expose everything below them.
_TOO_WIDE = {"/", "/home", "/root", "/tmp", "/var", "/var/tmp", "/run", "/proc", "/sys", "/dev"}
SHIM_DIR = "/.tusk/bin"  # where the sandbox sees the directory holding only ``tusk``
_ENV_BINDS = "TUSK_SANDBOX_BIND"  # colon-separated host paths the user adds to every sandbox


def _visible_system(path: str) -> bool:
    """``path`` (absolute, resolved) lies under a system directory the sandbox binds."""
    top = path.split("/")[1] if path.startswith("/") else ""
    return top in SYSTEM_DIRS


@functools.cache
def system_binds() -> tuple[str, ...]:
    """bwrap arguments for the host's system directories (links kept as links)."""
    args: list[str] = []
    for name in SYSTEM_DIRS:
        path = "/" + name
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return tuple(args)


def _install_root(exe: str) -> str:
    """The installation an executable belongs to: ``/x/y`` for ``/x/y/bin/prog``, else its
    directory (a script beside its modules)."""
    parent = os.path.dirname(exe)
    if os.path.basename(parent) in ("bin", "sbin", "shims", "Scripts"):
        return os.path.dirname(parent)
    return parent


def _venv_home(root: str) -> list[str]:
    """A virtualenv's base interpreter installation (``home`` in its ``pyvenv.cfg``)."""
    cfg = os.path.join(root, "pyvenv.cfg")
    try:
        with open(cfg, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    return [os.path.dirname(os.path.realpath(value.strip()))]
    except OSError:
        pass
    return []


def _paths_for(path: str) -> list[str]:
    """What to bind so that ``path`` (named by a spec) works inside the sandbox."""
    if not os.path.isabs(path) or path == "/pfs" or path.startswith("/pfs/"):
        return []
    try:
        exists = os.path.exists(path)
    except (OSError, ValueError):
        return []
    if not exists:
        return []
    found: list[str] = []
    for p in dict.fromkeys((os.path.abspath(path), os.path.realpath(path))):
        if os.path.isdir(p):
            found.append(p)
            continue
        root = _install_root(p)
        if os.path.isfile(p) and os.access(p, os.X_OK) and root != os.path.dirname(p):
            found += [root, *_venv_home(root)]  # an interpreter or tool in an installation
        elif os.path.dirname(p) in _TOO_WIDE or os.path.dirname(p) in _home_dirs():
            found.append(p)  # a file directly in a home or /tmp: just the file
        else:
            found.append(os.path.dirname(p))  # a script, with the modules beside it
    return [f for f in found if f not in _TOO_WIDE and f not in _home_dirs()
            and not _visible_system(f)]


@functools.cache
def _home_dirs() -> frozenset[str]:
    homes = {os.path.expanduser("~")}
    for base in ("/home",):
        try:
            homes.update(os.path.join(base, n) for n in os.listdir(base))
        except OSError:
            pass
    return frozenset(homes)


def spec_paths(cmd: Iterable[str], stdin: Iterable[str], working_dir: str | None) -> list[str]:
    """Host paths named by a spec's command, stdin lines and working directory."""
    words = list(cmd)
    for line in stdin:
        try:
            words += shlex.split(line, comments=True)
        except ValueError:
            words += line.split()
    if working_dir:
        words.append(working_dir)
    out: list[str] = []
    for w in words:
        # "--flag=/path" and "a:/b" name paths too
        for part in w.replace("=", " ").replace(":", " ").split():
            if part.startswith("/"):
                out += _paths_for(part)
    for extra in os.environ.get(_ENV_BINDS, "").split(":"):
        if extra.startswith("/"):
            out += [p for p in _paths_for(extra)]
    return out


@functools.cache
def runtime_paths() -> tuple[str, ...]:
    """tusk's interpreter installation and package, for ``tusk next datum`` in user code.

    Deliberately not ``sys.path``: its first entry can be the controller's working directory.
    """
    import tusk

    wanted = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
              str(Path(tusk.__file__).resolve().parent.parent)]
    out = []
    for p in wanted:
        real = os.path.realpath(p)
        if os.path.isdir(real) and not _visible_system(real) and real not in _TOO_WIDE:
            out.append(real)
    return tuple(dict.fromkeys(out))


def known_roots(root: Path | None) -> list[str]:
    """Tusk roots this process knows of: its own, ``$TUSK_ROOT`` and the default ``~/.tusk``."""
    roots = [str(root)] if root is not None else []
    if os.environ.get("TUSK_ROOT"):
        roots.append(os.environ["TUSK_ROOT"])
    roots.append(os.path.expanduser("~/.tusk"))
    return list(dict.fromkeys(os.path.realpath(r) for r in roots))


def binds(paths: Iterable[str], masks: Iterable[str]) -> list[str]:
    """bwrap arguments binding ``paths`` read-only (outermost first, nested ones dropped) and
    covering each of ``masks`` that lies inside one of them with an empty tmpfs."""
    chosen: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(_under(p, c) for c in chosen):
            chosen.append(p)
    masks = list(masks)
    # A path inside a root is never shown: only the datum's own inputs come from a root, and
    # the runner binds those itself.
    chosen = [c for c in chosen if not any(_under(c, m) for m in masks)]
    args = parents([*chosen, SHIM_DIR])
    for p in chosen:
        args += ["--ro-bind", p, p]
    for m in masks:
        if any(_under(m, c) for c in chosen) and os.path.isdir(m):
            args += ["--tmpfs", m]
    return args


def parents(targets: Iterable[str]) -> list[str]:
    """``--dir`` arguments for the ancestors of bind targets, so they are made 0755: bwrap
    makes missing parents 0700, which a sandbox user other than root could not enter."""
    seen: list[str] = []
    for t in targets:
        parts = t.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            if d not in seen and not _visible_system(d):
                seen.append(d)
    return [a for d in seen for a in ("--dir", d)]


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def sandbox_path(user_path: str) -> str:
    """``$PATH`` for sandboxed user code: the entries it can see, then the ``tusk`` shim."""
    keep = [p for p in user_path.split(":") if p and _visible_system(os.path.realpath(p))]
    return ":".join([*dict.fromkeys(keep), SHIM_DIR])
