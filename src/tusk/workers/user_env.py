"""The environment user code starts with: the user's, never tusk's.

A Pachyderm worker gives user code its image's environment plus the spec's ``env`` and the
``PACH_*`` variables. Locally the closest thing is a short list of the variables that describe
the user's session (locale, time zone, ``$PATH``), and nothing else: the controller's own
environment carries tusk's credentials (``TUSK_AUTH_TOKEN``, database URLs, object-store keys)
and its virtualenv, and none of that reaches user code.

``$PATH`` is the user's with tusk's own virtualenv taken out (so ``python3`` in a spec is the
user's interpreter, not the one tusk runs on), followed by a directory holding only the
``tusk`` command, for ``tusk next datum``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

# Variables passed through from the controller's environment (the user's session).
PASSED = ("LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def _tusk_bin() -> str | None:
    """The bin directory of the virtualenv tusk runs from, if it runs from one."""
    if sys.prefix == sys.base_prefix:
        return None
    return os.path.realpath(os.path.join(sys.prefix, "bin"))


def user_path(shim: str | None) -> str:
    """The user's ``$PATH`` without tusk's virtualenv, then ``shim`` (the ``tusk`` command)."""
    own = _tusk_bin()
    entries = [p for p in os.environ.get("PATH", DEFAULT_PATH).split(":")
               if p and (own is None or os.path.realpath(p) != own)]
    if shim:
        entries.append(shim)
    return ":".join(dict.fromkeys(entries))


def session_env() -> dict[str, str]:
    """Locale and session variables of the user, passed to user code as they are."""
    return {k: v for k, v in os.environ.items() if k in PASSED or k.startswith("LC_")}


def own_temp_dir(prefix: str, key: str) -> Path:
    """``<tmp>/<prefix>-<uid>-<hash of key>``, a 0755 directory this user made: the same one
    for the same key. If someone else made it (the temporary directory is shared), never
    trust it: a fresh one instead."""
    tag = hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
    d = Path(tempfile.gettempdir()) / f"{prefix}-{os.getuid()}-{tag}"
    try:
        d.mkdir(mode=0o755)
    except FileExistsError:
        st = os.lstat(d)
        if st.st_uid != os.getuid() or not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o022:
            d = Path(tempfile.mkdtemp(prefix=f"{prefix}-{os.getuid()}-"))
            os.chmod(d, 0o755)
    return d


@functools.cache
def tusk_shim() -> str:
    """A directory holding only a ``tusk`` link to this installation's command.

    One per installation and user, under the temporary directory: it holds nothing but the
    link, so it needs no cleaning, and a sandbox can bind it without seeing anything else.
    """
    target = Path(sys.executable).parent / "tusk"
    if not target.exists():
        found = shutil.which("tusk")
        target = Path(found) if found else target
    shim = own_temp_dir("tusk-shim", str(target))
    link = shim / "tusk"
    if not (link.is_symlink() and os.readlink(link) == str(target)):
        tmp = shim / f".tusk.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    return str(shim)
