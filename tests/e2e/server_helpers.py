"""Helpers for the server end-to-end tests: run a real ``tusk serve`` subprocess on a free port.

``running_server(tusk)`` starts ``tusk serve`` over the fixture's root, waits until
``/v1/health`` answers and kills the server on exit. ``remote_tusk(tusk, server)`` is a
``conftest.Tusk`` whose commands go to that server (``TUSK_ADDRESS``), with a different,
empty ``TUSK_ROOT``, so a command that quietly used a local root would find nothing.
"""

from __future__ import annotations

import copy
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

TOKEN = "test-token-123"


class Server(NamedTuple):
    proc: subprocess.Popen
    url: str
    token: str | None
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"tusk serve exited ({proc.returncode}): {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/v1/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"tusk serve did not answer in {timeout}s: {log.read_text()}")


@contextmanager
def running_server(tusk: Any, token: str | None = TOKEN, args: tuple[str, ...] = ()) -> Iterator[Server]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tusk.cwd) / f"serve-{port}.log"
    cmd = [tusk.exe, "serve", "--address", f"127.0.0.1:{port}", *args]
    if token is not None:
        cmd += ["--auth-token", token]
    elif "--no-auth" not in args:
        pass  # the server makes a token and prints it
    env = dict(tusk.env)
    env.pop("TUSK_ADDRESS", None)
    env.pop("TUSK_AUTH_TOKEN", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tusk.cwd)
    try:
        wait_until_up(url, proc, log)
        yield Server(proc, url, token, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def remote_tusk(tusk: Any, server: Server) -> Any:
    """A copy of the ``tusk`` fixture whose commands go to ``server``."""
    r = copy.copy(tusk)
    r.env = dict(tusk.env)
    r.env["TUSK_ROOT"] = str(Path(tusk.cwd) / "not-the-root")
    r.env["TUSK_ADDRESS"] = server.url
    r.env["TUSK_CONFIG"] = str(Path(tusk.cwd) / "user-config.json")
    if server.token:
        r.env["TUSK_AUTH_TOKEN"] = server.token
    return r


def vm_hwm_kb(pid: int | str) -> int:
    """Peak resident memory of a process, from /proc/<pid>/status (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")
