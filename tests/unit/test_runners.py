"""Runtimes in isolation: line-by-line logs with timestamps and streams, timeouts, cancellation,
and long-lived processes held at a gate.

Each test runs one invocation against a scratch workspace with the process runtime and, where
bubblewrap can make namespaces here, the sandbox runtime too.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tusk.pps.logs import read_records, with_stderr
from tusk.workers.base import Invocation, Runtime, Workspace
from tusk.workers.running import GATE_CLOSED
from tusk.workers.runtimes.process import ProcessRuntime
from tusk.workers.runtimes.sandbox import SandboxRuntime, bwrap_usable

RUNNERS = ["process", pytest.param("sandbox", marks=pytest.mark.skipif(
    not bwrap_usable(), reason="bubblewrap cannot create namespaces here"))]


def make(kind: str) -> Runtime:
    return ProcessRuntime() if kind == "process" else SandboxRuntime()


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "ws")
    w.out.mkdir(parents=True)
    return w


def lines(log: Path) -> list[dict]:
    return [r for r in read_records(log)[0] if "line" in r]


@pytest.mark.parametrize("kind", RUNNERS)
def test_lines_are_logged_with_stream_time_and_attempt(kind: str, ws: Workspace,
                                                       tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    before = time.time()
    script = "echo one; echo two >&2; printf 'no newline'; cat >&2"
    inv = Invocation(["bash", "-c", script], stdin=["from stdin"], attempt=2)
    out = make(kind).run(ws, inv, log)
    assert out.returncode == 0 and not out.cancelled and not out.timed_out
    recs = lines(log)
    got = sorted((r["stream"], r["line"]) for r in recs)
    assert got == [("stderr", "from stdin"), ("stderr", "two"), ("stdout", "no newline"),
                   ("stdout", "one")]
    assert all(r["attempt"] == 2 and before <= r["ts"] <= time.time() for r in recs)
    # Each stream keeps its own order.
    assert [r["line"] for r in recs if r["stream"] == "stdout"] == ["one", "no newline"]
    assert out.stderr_tail == ["two", "from stdin"]


@pytest.mark.parametrize("kind", RUNNERS)
def test_timeout_kills_and_says_so(kind: str, ws: Workspace, tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    t0 = time.monotonic()
    out = make(kind).run(ws, Invocation(["bash", "-c", "echo started; sleep 30"], timeout=0.5), log)
    assert time.monotonic() - t0 < 5
    assert out.timed_out and not out.cancelled
    recs = lines(log)
    assert ("stdout", "started") in [(r["stream"], r["line"]) for r in recs]
    assert recs[-1]["stream"] == "tusk" and "timed out" in recs[-1]["line"]


@pytest.mark.parametrize("kind", RUNNERS)
def test_cancel_kills_the_process_group_promptly(kind: str, ws: Workspace, tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    cancel = threading.Event()
    # The shell's child (sleep) must die too, not only the shell: it holds the output pipe, so a
    # surviving child would keep the runner waiting and the returned time would show it.
    inv = Invocation(["bash", "-c", "echo going; sleep 30; echo never"], cancel=cancel)
    set_at: list[float] = []

    def fire() -> None:
        set_at.append(time.monotonic())
        cancel.set()

    timer = threading.Timer(0.5, fire)
    timer.start()
    try:
        out = make(kind).run(ws, inv, log)
        returned = time.monotonic()
    finally:
        timer.cancel()
    assert out.cancelled and not out.timed_out and out.returncode != 0
    # The runner polls every 0.1 s; the margin is for a loaded test machine.
    assert set_at and returned - set_at[0] < 0.8
    texts = [r["line"] for r in lines(log)]
    assert "going" in texts and "never" not in texts and texts[-1] == "datum cancelled"


def test_cancel_set_before_start_stops_at_once(ws: Workspace, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    t0 = time.monotonic()
    out = ProcessRuntime().run(ws, Invocation(["sleep", "30"], cancel=cancel), tmp_path / "d.log")
    assert out.cancelled and time.monotonic() - t0 < 0.5


def test_missing_binary_is_an_error_line(ws: Workspace, tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    out = ProcessRuntime().run(ws, Invocation(["/no/such/binary"]), log)
    assert out.returncode == 127 and "cannot run" in out.error
    assert lines(log)[-1]["stream"] == "tusk"


def test_large_stdin_and_output_do_not_deadlock(ws: Workspace, tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    stdin = [f"line {i}" for i in range(50_000)]  # far more than a pipe buffer either way
    out = ProcessRuntime().run(ws, Invocation(["cat"], stdin=stdin), log)
    assert out.returncode == 0
    assert [r["line"] for r in lines(log)] == stdin


def test_reason_quotes_the_last_stderr_lines() -> None:
    assert with_stderr("exit code 3", []) == "exit code 3"
    assert with_stderr("exit code 3", ["a", " ", "b", "c", "d"]) == "exit code 3; stderr: b | c | d"
    long = with_stderr("x", ["y" * 500])
    assert len(long) < 230 and long.endswith("...")


@pytest.mark.parametrize("kind", RUNNERS)
def test_start_runs_nothing_until_the_gate_opens(kind: str, ws: Workspace, tmp_path: Path) -> None:
    """A long-lived process (service, spout) waits at its gate, then sees stdin and /pfs."""
    (ws.pfs / "in").mkdir(parents=True)
    (ws.pfs / "in" / "f").write_text("input\n")
    inv = Invocation(["sh", "-c", "cat; cat /pfs/in/f; touch /pfs/out/ran"], stdin=["hello"],
                     inputs=["in"])
    r, w = os.pipe()
    try:
        with open(tmp_path / "out.log", "wb") as out:
            proc = make(kind).start(ws, inv, out, r)
        time.sleep(0.3)
        assert proc.poll() is None and not (ws.out / "ran").exists()
        os.write(w, b"go\n")
        assert proc.wait(10) == 0
    finally:
        os.close(r)
        os.close(w)
    assert (tmp_path / "out.log").read_text() == "hello\ninput\n"
    assert (ws.out / "ran").exists()


@pytest.mark.parametrize("kind", RUNNERS)
def test_start_runs_nothing_when_the_gate_closes(kind: str, ws: Workspace, tmp_path: Path) -> None:
    r, w = os.pipe()
    with open(tmp_path / "out.log", "wb") as out:
        proc = make(kind).start(ws, Invocation(["touch", "/pfs/out/ran"]), out, r)
    os.close(r)
    os.close(w)  # the supervisor died before recording the process
    assert proc.wait(10) == GATE_CLOSED
    assert not (ws.out / "ran").exists()
