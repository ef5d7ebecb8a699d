"""The datum-batching protocol without a job: a scripted server on a real Unix socket, and the
clients (``tusk.next_datum``, ``batch_all_datums``, ``tusk next datum`` in a shell loop)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tusk
from tusk.batching import NO_MORE_DATUMS, SOCKET_ENV, ask_next, short_path
from tusk.errors import FailedPrecondition
from tusk.pps.batching import SwitchingLog, _listen, _read_request, _reply
from tusk.pps.logs import read_records

TUSK = str(Path(sys.executable).parent / "tusk")


class Scripted:
    """Answers requests with datums named in ``names``, then "done"; records the requests."""

    def __init__(self, path: Path, names: list[str]) -> None:
        self.server = _listen(path)
        self.names = list(names)
        self.requests: list[dict[str, Any]] = []
        self._prev: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                req = _read_request(conn)
                if req is None:
                    _reply(conn, {"fail": "bad request"})
                    continue
                self.requests.append(req)
                if not self.names:
                    _reply(conn, {"done": True, "unset": sorted(self._prev)})
                    self._prev = set()
                    continue
                name = self.names.pop(0)
                env = {"PACH_DATUM_ID": name, "in": f"/pfs/in/{name}", "QUOTED": "it's $x"}
                _reply(conn, {"datum": name, "env": env, "unset": sorted(self._prev - env.keys())})
                self._prev = set(env)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


@pytest.fixture(name="sock")
def sock_fixture(tmp_path: Path) -> Iterator[Path]:
    # Deeper than sun_path's 108 bytes: both ends must go through a directory descriptor.
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    yield deep / "next.sock"


def test_long_socket_path_and_error_reports(sock: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(str(sock)) > 108
    srv = Scripted(sock, ["a", "b"])
    monkeypatch.setenv(SOCKET_ENV, str(sock))
    monkeypatch.delenv("QUOTED", raising=False)
    try:
        assert tusk.next_datum() == {"PACH_DATUM_ID": "a", "in": "/pfs/in/a", "QUOTED": "it's $x"}
        assert os.environ["in"] == "/pfs/in/a"
        assert tusk.next_datum("broke") is not None
        assert os.environ["PACH_DATUM_ID"] == "b"
        assert tusk.next_datum() is None
        assert "QUOTED" not in os.environ  # the last datum's variables are taken back
    finally:
        srv.close()
    assert [r["error"] for r in srv.requests] == [None, "broke", None]


def test_batch_all_datums_reports_exceptions(sock: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = Scripted(sock, ["a", "bad", "c"])
    monkeypatch.setenv(SOCKET_ENV, str(sock))
    seen: list[str] = []

    @tusk.batch_all_datums
    def work() -> None:
        seen.append(os.environ["PACH_DATUM_ID"])
        if os.environ["PACH_DATUM_ID"] == "bad":
            raise ValueError("no good\nsecond line")

    try:
        assert work() is None
    finally:
        srv.close()
    assert seen == ["a", "bad", "c"]
    assert [r["error"] for r in srv.requests] == [None, None, "ValueError: no good", None]


def test_shell_loop_with_the_cli(sock: Path, tmp_path: Path) -> None:
    srv = Scripted(sock, ["a", "b"])
    env = {**os.environ, SOCKET_ENV: str(sock)}
    script = (f'while eval "$({TUSK} next datum)"; do echo "$PACH_DATUM_ID $in $QUOTED"; done;'
              " echo end")
    try:
        r = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                           timeout=30, check=False)
        done = subprocess.run([TUSK, "next", "datum"], env=env, capture_output=True, text=True,
                              timeout=30, check=False)
    finally:
        srv.close()
    assert r.stdout.splitlines() == ["a /pfs/in/a it's $x", "b /pfs/in/b it's $x",
                                     "end"], r.stderr
    assert done.returncode == NO_MORE_DATUMS and done.stdout.strip() == f"(exit {NO_MORE_DATUMS})"


def test_without_a_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(SOCKET_ENV, raising=False)
    with pytest.raises(FailedPrecondition, match="datum_batching"):
        tusk.next_datum()
    monkeypatch.setenv(SOCKET_ENV, str(tmp_path / "gone.sock"))
    with pytest.raises(FailedPrecondition, match="cannot reach"):
        tusk.next_datum()


def test_malformed_request_is_refused(sock: Path) -> None:
    srv = Scripted(sock, ["a"])
    try:
        with socket.socket(socket.AF_UNIX) as c:
            address, fd = short_path(str(sock))
            c.connect(address)
            if fd is not None:
                os.close(fd)
            c.sendall(b'{"op": "dance"}\n')
            assert "fail" in json.loads(c.makefile().readline())
        assert ask_next(path=str(sock))["datum"] == "a"
    finally:
        srv.close()


def test_switching_log_moves_lines_between_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    log = SwitchingLog(a)
    log.feed("stdout", b"one\npart")
    log.feed("stderr", b"err a\n")
    log.retarget(b, 2)
    assert log.tail() == []  # a failure of the next datum quotes only its own stderr
    log.feed("stdout", b"two\n")
    log.close()
    log.retarget(a, 3)  # after close: nothing reopened
    assert [r["line"] for r in read_records(a)[0]] == ["one", "err a", "part"]
    recs = read_records(b)[0]
    assert [(r["line"], r["attempt"]) for r in recs] == [("two", 2)]
