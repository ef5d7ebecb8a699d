"""Datum batching from inside user code: ask the job for the next datum (``tusk next datum``).

With ``transform.datum_batching: true`` the user's command starts once per worker slot instead
of once per datum, and loops::

    while eval "$(tusk next datum)"; do cp "$in" /pfs/out/; done      # shell

    @tusk.batch_all_datums                                              # Python
    def process() -> None: ...

The protocol (the job side is ``tusk.pps.batching``): the job listens on a Unix stream socket
whose path is in ``$TUSK_DATUM_SOCKET``; every request is one connection carrying one JSON
line, answered by one JSON line::

    -> {"v": 1, "op": "next", "error": null}       # or "error": "why the previous datum failed"
    <- {"datum": "<id>", "env": {...}, "unset": [...]}
    <- {"done": true, "unset": [...]}               # no more datums: exit now
    <- {"fail": "message"}                          # the request was refused

Asking for the next datum also reports how the previous one went: the job finalises it
(harvests ``/pfs/out`` on success) before it answers, so the answer may take a while.
``env`` is the datum's environment (``PACH_DATUM_ID``, ``<input>``, ``<input>_COMMIT``, ...);
``unset`` names the previous datum's variables that this one does not set.

This module imports only the standard library: it runs inside user code, per datum.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

SOCKET_ENV = "TUSK_DATUM_SOCKET"
PROTOCOL = 1
# 'tusk next datum' exits with this when the job has no more datums for the process.
NO_MORE_DATUMS = 10
# 'tusk next datum' exits with this when not in a batching pipeline (FailedPrecondition's code).
NOT_BATCHING = 5
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# sun_path holds 108 bytes; longer paths are reached through a directory descriptor instead.
_SUN_PATH_MAX = 100

F = TypeVar("F", bound=Callable[..., Any])


class BatchingError(Exception):
    """Not in a batching pipeline, or the job's socket cannot be used. ``str`` is one line."""


def short_path(path: str) -> tuple[str, int | None]:
    """A path usable as a socket address, and a directory descriptor to close afterwards.

    Deep roots (pytest's temporary directories) exceed ``sun_path``; ``/proc/self/fd/N/name``
    names the same file through an open descriptor of its directory and is always short.
    """
    if len(path.encode()) <= _SUN_PATH_MAX:
        return path, None
    head, name = os.path.split(path)
    fd = os.open(head or ".", os.O_PATH | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{name}", fd


def request(message: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    """Send one request to the job's datum socket and return its answer."""
    path = path or os.environ.get(SOCKET_ENV, "")
    if not path:
        raise BatchingError(f"not inside a datum_batching pipeline (${SOCKET_ENV} is not set);"
                            " 'next datum' only works in user code with transform.datum_batching")
    address, fd = None, None
    try:
        address, fd = short_path(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(address)
            conn.sendall(json.dumps(message).encode() + b"\n")
            conn.shutdown(socket.SHUT_WR)
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        raise BatchingError(f"cannot reach the job's datum socket {path}: {e.strerror or e}"
                            " (has the job ended?)") from None
    finally:
        if fd is not None:
            os.close(fd)
    try:
        answer = json.loads(data)
    except ValueError:
        raise BatchingError(f"the job closed the datum socket {path} without an answer") from None
    if not isinstance(answer, dict):
        raise BatchingError(f"unexpected answer on the datum socket: {answer!r}")
    if "fail" in answer:
        raise BatchingError(str(answer["fail"]))
    return answer


def ask_next(error: str | None = None, path: str | None = None) -> dict[str, Any]:
    """Report the previous datum (``error`` None means success) and get the next answer."""
    return request({"v": PROTOCOL, "op": "next", "error": error}, path)


def next_datum(error: str | None = None) -> dict[str, str] | None:
    """Finish the previous datum and move to the next one, as ``tusk next datum`` does.

    ``error`` marks the previous datum as failed with that message; otherwise its ``/pfs/out``
    is kept as its output. Returns the next datum's environment, already applied to
    ``os.environ`` (so ``os.environ["in"]`` is its input path), or None when there are no more
    datums, after which the program should exit.
    """
    try:
        answer = ask_next(error)
    except BatchingError as e:
        from tusk.errors import FailedPrecondition

        raise FailedPrecondition(str(e)) from None
    for name in answer.get("unset", ()):
        os.environ.pop(name, None)
    if answer.get("done"):
        return None
    env = {str(k): str(v) for k, v in answer.get("env", {}).items()}
    os.environ.update(env)
    return env


def batch_all_datums(fn: F) -> F:
    """Call ``fn`` once per datum of the job, in this one process.

    Load models and such before calling the decorated function: that is what batching is for.
    An exception from ``fn`` fails that datum (its traceback goes to stderr, so to the datum's
    log) and the loop goes on with the next datum. Returns None once all datums are done.
    """

    @functools.wraps(fn)
    def loop(*args: Any, **kwargs: Any) -> None:
        error: str | None = None
        while next_datum(error) is not None:
            error = None
            try:
                fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - any failure of user code fails the datum
                traceback.print_exc(file=sys.stderr)
                error = f"{type(e).__name__}: {e}".splitlines()[0]

    return loop  # type: ignore[return-value]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def shell_lines(answer: dict[str, Any]) -> list[str]:
    """An answer as shell lines: ``unset`` the previous datum's variables, ``export`` the next
    one's (a name the shell cannot hold is noted, not exported)."""
    lines = [f"unset {name}" for name in answer.get("unset", ()) if _SHELL_NAME.fullmatch(name)]
    if answer.get("done"):
        return lines
    for name, value in answer.get("env", {}).items():
        if _SHELL_NAME.fullmatch(name):
            lines.append(f"export {name}={_quote(str(value))}")
        else:  # an input name the shell cannot hold; still there through the Python SDK
            lines.append(f"# not a shell variable name: {name}")
    return lines


def main(argv: list[str]) -> int:
    """``tusk next datum [--error MSG]`` with nothing but the standard library: the client an
    image's user code gets (tusk's own CLI is not inside the image)."""
    if argv[:2] != ["next", "datum"] or len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--error"):
        print("usage: tusk next datum [--error MSG]  (inside an image, only this command)",
              file=sys.stderr)
        return 2
    try:
        answer = ask_next(argv[3] if len(argv) == 4 else None)
    except BatchingError as e:
        print(f"tusk: {e}", file=sys.stderr)
        if not sys.stdout.isatty():
            print(f"(exit {NOT_BATCHING})")
        return NOT_BATCHING
    lines = shell_lines(answer)
    if answer.get("done"):
        if not sys.stdout.isatty():
            lines.append(f"(exit {NO_MORE_DATUMS})")  # so that 'eval' fails too
        print("\n".join(lines))
        return NO_MORE_DATUMS
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
