"""The process runner: user code as a plain subprocess, without a mount namespace.

Used where bubblewrap is missing (macOS, minimal containers). ``/pfs`` cannot be created, so
every ``/pfs`` prefix in the command, stdin and environment is rewritten to the datum's scratch
``pfs`` directory. Code that builds ``/pfs`` paths at run time from other strings will not see
them; that is the documented limit of this runner.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tusk.runners.base import Invocation, Outcome, Workspace

# "/pfs" as a whole path component at the start of a path ("/pfs", "/pfs/x", "'/pfs/x'"), not
# "/data/pfs" or "/pfsx". One pass, so the replacement (which itself ends in "/pfs") is never
# rewritten again.
_PFS = re.compile(r"(?<![\w.~/-])/pfs(?![\w.~-])")


def _rewrite(text: str, pfs: str) -> str:
    return _PFS.sub(lambda _m: pfs, text) if "/pfs" in text else text


class ProcessRunner:
    name = "process"

    def run(self, ws: Workspace, inv: Invocation, log: Path) -> Outcome:
        pfs = str(ws.pfs)
        cmd = [_rewrite(c, pfs) for c in inv.cmd]
        stdin = "".join(_rewrite(line, pfs) + "\n" for line in inv.stdin)
        env = {**os.environ, **{k: _rewrite(v, pfs) for k, v in inv.env.items()}}
        ws.tmp.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(ws.tmp)
        cwd = _rewrite(inv.working_dir, pfs) if inv.working_dir else pfs
        return run_logged(cmd, stdin, env, cwd, inv.timeout, log)


def run_logged(
    cmd: list[str], stdin: str, env: dict[str, str], cwd: str, timeout: float | None, log: Path
) -> Outcome:
    """Run a command with stdout+stderr appended to ``log``; kill its process group on timeout."""
    with open(log, "ab") as out:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
            msg = f"cannot run {cmd[0]!r}: {e.strerror or e}"
            out.write((msg + "\n").encode())
            return Outcome(returncode=127, error=msg)
        try:
            proc.communicate(stdin.encode() if stdin else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
            out.write(f"datum timed out after {timeout:g}s\n".encode())
            return Outcome(returncode=proc.returncode, timed_out=True)
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        return Outcome(returncode=proc.returncode)


def _kill_group(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
