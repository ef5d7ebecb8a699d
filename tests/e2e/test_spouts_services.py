"""Spout and service pipelines end to end: long-running processes kept up by the controller.

A spout writes into its own output repo with ``tusk put file`` and feeds a downstream transform;
a crashing spout is restarted with a growing backoff; a service is restarted on each new input
commit; ``stop``/``start``/``delete pipeline`` end and resume the process; a controller killed
with SIGKILL leaves an orphan that the next controller replaces (never two copies).

Every test kills whatever still runs with its root in the environment on teardown (spouts and
services inherit ``TUSK_ROOT``), so nothing outlives a test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import Pipes, bash, bwrap_usable, pfs_input, spec

pytestmark = pytest.mark.e2e


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 60, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def alive(pid: int) -> bool:
    """A live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:].split()[0] not in (b"Z", b"X")


def processes_of(root: Path) -> list[int]:
    """Live processes with this root in their environment (controllers, spouts, services)."""
    want = f"TUSK_ROOT={root}".encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if want in env and alive(int(d.name)):
            found.append(int(d.name))
    return found


def _cleanup(p: Pipes) -> None:
    p.stop_controllers()  # SIGTERM: a controller stops its spouts and services on the way out
    deadline = time.monotonic() + 5
    while processes_of(p.root) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in processes_of(p.root):  # whatever is left (a test that failed half-way)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(name="sp")
def sp_fixture(tusk: Any) -> Iterator[Pipes]:
    p = Pipes(tusk, runner="process")
    yield p
    _cleanup(p)


@pytest.fixture(name="sandboxed")
def sandboxed_fixture(tusk: Any) -> Iterator[Pipes]:
    if not bwrap_usable():
        pytest.skip("bubblewrap cannot run here")
    p = Pipes(tusk)  # the default runner: the sandbox
    yield p
    _cleanup(p)


def record(p: Pipes, name: str) -> dict[str, Any] | None:
    """The supervisor's record of a pipeline's live process (pid, start time)."""
    path = p.root / "run" / "default" / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def running_pid(p: Pipes, name: str, not_pid: int | None = None) -> int:
    """Wait for the pipeline's process to run (another one than ``not_pid``); its pid."""
    def live() -> int | None:
        rec = record(p, name)
        if rec is not None and rec["pid"] != not_pid and alive(rec["pid"]):
            return int(rec["pid"])
        return None

    return wait_for(live, f"a process for pipeline {name}", timeout=30)


def spout(name: str, script: str, **transform: Any) -> dict[str, Any]:
    return {"pipeline": {"name": name}, "spout": {},
            "transform": {"cmd": bash(script), **transform}}


def test_spout_feeds_downstream_and_stops(sp: Pipes) -> None:
    p = sp
    # The controller's credentials are not the spout's (it gets the user's environment).
    p.t.env["AWS_SECRET_ACCESS_KEY"] = "sekrit"
    puts = ("for i in 1 2 3; do echo $i | tusk put file spouty@master:/f$i -f -; sleep 0.5; done;"
            " echo ${AWS_SECRET_ACCESS_KEY:-none} | tusk put file spouty@master:/key -f -;"
            " sleep 1000")
    p.create(spout("spouty", puts))
    p.create(spec("copy", pfs_input("spouty", "/*"), bash("cp $spouty /pfs/out/")))

    want = {"/f1": "1\n", "/f2": "2\n", "/f3": "3\n", "/key": "none\n"}
    wait_for(lambda: p.text_tree("copy@master") == want, "the copies of the spout's 3 files",
             every=0.5)
    assert p.text_tree("spouty@master") == want
    info = {x["name"]: x for x in p.raw("list", "pipeline")}["spouty"]
    assert info["state"] == "running" and "spout running (pid" in info["reason"]
    assert info["input_repos"] == []
    assert p.jobs("-p", "spouty") == []  # the spout's commits are its own, not jobs

    pid = running_pid(p, "spouty")
    p.ok("stop", "pipeline", "spouty")
    assert not alive(pid), "stop pipeline must kill the spout at once"
    assert record(p, "spouty") is None
    commits = len(p.t.commit_ids("spouty@master"))
    time.sleep(1.5)
    assert len(p.t.commit_ids("spouty@master")) == commits  # nothing writes any more
    assert p.raw("inspect", "pipeline", "spouty")["state"] == "paused"

    # Started again, it runs again (a new process), and still only one.
    p.ok("start", "pipeline", "spouty")
    new = running_pid(p, "spouty", not_pid=pid)
    log = (p.root / "logs" / "default" / "spouty" / "service.log").read_text()
    assert f"stopping pid {pid}" in log or "exited" in log
    assert "starting spout spouty" in log
    p.ok("delete", "pipeline", "copy")
    p.ok("delete", "pipeline", "spouty")
    assert not alive(new), "delete pipeline must kill the spout"
    p.t.fail("inspect", "repo", "spouty")


def test_crashing_spout_is_restarted_with_backoff(sp: Pipes, tmp_path: Path) -> None:
    p = sp
    marker = tmp_path / "starts"
    p.create(spout("crashy", 'date +%s.%N >> "$MARKER"; echo "crashing now"; exit 3',
                   env={"MARKER": str(marker)}))

    def starts() -> list[float]:
        return [float(x) for x in marker.read_text().split()] if marker.exists() else []

    wait_for(lambda: len(starts()) >= 3, "three starts of the crashing spout", timeout=30)
    t = starts()
    # 1 s, then 2 s between starts (scheduling adds a little, never less).
    assert t[1] - t[0] >= 0.9 and t[2] - t[1] >= 1.9, t
    assert t[2] - t[1] > t[1] - t[0]
    info = p.raw("inspect", "pipeline", "crashy")
    assert info["state"] == "running"
    assert "restarts: " in info["reason"] and "exit code 3" in info["reason"], info["reason"]
    log = (p.root / "logs" / "default" / "crashy" / "service.log").read_text()
    assert log.count("crashing now") >= 3 and "exited: exit code 3" in log
    shown = p.logs("crashy")  # 'tusk logs' shows what the supervised process printed
    assert shown.count("crashing now") >= 3
    # A spout stays a spout: turning it into a transform in place is refused.
    line = p.t.fail("update", "pipeline", "-f", str(p.spec_file(
        spec("crashy", pfs_input("nothing"), ["true"]))))
    assert "is a spout pipeline and cannot become a transform pipeline" in line
    p.ok("stop", "pipeline", "crashy")
    time.sleep(2.5)  # longer than the next backoff would have been
    n = len(starts())
    time.sleep(1.5)
    assert len(starts()) == n  # stopped: no more restarts


def test_service_restarts_on_new_input(sp: Pipes, tmp_path: Path) -> None:
    p = sp
    out = tmp_path / "served"
    p.repo("site", {"index.html": "v1", "sub/more.txt": "x"})
    script = ('{ cat /pfs/site/index.html; echo; ls /pfs/site/sub;'
              ' echo "$PACH_SERVICE_INTERNAL_PORT $PACH_SERVICE_EXTERNAL_PORT $$"; } > "$OUT.tmp";'
              ' mv "$OUT.tmp" "$OUT"; sleep 1000')
    s = {"pipeline": {"name": "web"}, "input": pfs_input("site", "/*"),
         "service": {"internal_port": 8080, "external_port": 30080},
         "transform": {"cmd": bash(script), "env": {"OUT": str(out)}}}
    p.create(s)

    def served(first: str) -> list[str] | None:
        lines = out.read_text().splitlines() if out.exists() else []
        return lines if lines and lines[0] == first else None

    lines = wait_for(lambda: served("v1"), "the service to serve v1", timeout=30)
    assert lines[1] == "more.txt"  # the whole input, not one datum of glob /*
    port_in, port_out, pid = lines[2].split()
    assert (port_in, port_out) == ("8080", "30080")
    assert p.raw("inspect", "pipeline", "web")["state"] == "running"

    p.put("site", {"index.html": "v2"})
    lines = wait_for(lambda: served("v2"), "the service to serve v2", timeout=30)
    new_pid = int(lines[2].split()[2])
    assert new_pid != int(pid) and not alive(int(pid))  # restarted, not a second copy
    assert p.jobs("-p", "web") == []  # a service makes no jobs
    p.ok("delete", "pipeline", "web")
    assert not alive(new_pid)


def test_service_restarts_while_a_long_job_runs(sp: Pipes, tmp_path: Path) -> None:
    """Supervision runs on the controller's clock thread, not between jobs: a service follows
    its input while another pipeline's job is still running."""
    p = sp
    out, gate = tmp_path / "served", tmp_path / "gate"
    p.repo("site", {"index.html": "v1"})
    p.repo("slow_in", {})
    p.create({"pipeline": {"name": "web"}, "input": pfs_input("site", "/"),
              "service": {"internal_port": 8080, "external_port": 30080},
              "transform": {"cmd": bash('cat /pfs/site/index.html > "$OUT.tmp"; mv "$OUT.tmp" "$OUT";'
                                        ' sleep 1000'), "env": {"OUT": str(out)}}})
    wait_for(lambda: out.exists() and out.read_text() == "v1", "the service to serve v1", timeout=30)
    p.create(spec("slow", pfs_input("slow_in"),
                  bash('while [ ! -e "$GATE" ]; do sleep 0.1; done; cp /pfs/slow_in/* /pfs/out/'),
                  transform={"env": {"GATE": str(gate)}}))
    p.put("slow_in", {"x": "1"})
    wait_for(lambda: any(j["state"] == "RUNNING" for j in p.jobs("-p", "slow")), "the slow job to run")
    p.put("site", {"index.html": "v2"})
    try:
        wait_for(lambda: out.read_text() == "v2", "the service to serve v2 during the job", timeout=20)
        states = [j["state"] for j in p.jobs("-p", "slow")]
        assert states[0] == "RUNNING", states  # the newest job: still held by the gate
    finally:
        gate.touch()
    p.wait("slow@master")


def test_restarted_controller_replaces_orphans(sp: Pipes, tmp_path: Path) -> None:
    """A controller killed with SIGKILL leaves its spout running; the next one kills that
    orphan before it starts the spout again, so exactly one copy runs."""
    p = sp
    p.t.env["TUSK_NO_CONTROLLER"] = "1"
    marker = tmp_path / "pids"
    p.create(spout("lasting", 'echo $$ >> "$MARKER"; sleep 1000', env={"MARKER": str(marker)}))

    def pids() -> list[int]:
        return [int(x) for x in marker.read_text().split()] if marker.exists() else []

    def controller() -> subprocess.Popen[bytes]:
        return subprocess.Popen([p.t.exe, "controller", "--idle", "5"], env=p.t.env, cwd=p.t.cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    first = controller()
    try:
        wait_for(lambda: len(pids()) == 1, "the spout to start", timeout=30)
        first.send_signal(signal.SIGKILL)
        first.wait()
        (orphan,) = pids()
        assert alive(orphan)  # nobody took it down
        second = controller()
        try:
            wait_for(lambda: len(pids()) == 2, "the spout to start again", timeout=30)
            assert not alive(orphan)
            assert alive(pids()[1])
            time.sleep(1)
            assert len(pids()) == 2  # and only once
            # The controller stays while the spout runs, well past its idle time.
            time.sleep(6)
            assert second.poll() is None and alive(pids()[1])
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=10)
            assert not alive(pids()[1]), "a terminated controller stops its spouts"
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_service_in_the_sandbox(sandboxed: Pipes) -> None:
    """With bubblewrap the service sees its input read-only at the real /pfs/<input>, and what
    it prints lands in the pipeline's service log."""
    p = sandboxed
    p.repo("site", {"index.html": "v1"})
    script = ("echo serving $(cat /pfs/site/index.html) from $site;"
              " touch /pfs/site/x 2>/dev/null || echo input is read-only; sleep 1000")
    p.create({"pipeline": {"name": "web"}, "input": pfs_input("site", "/"),
              "service": {"internal_port": 8080}, "transform": {"cmd": bash(script)}})
    log = p.root / "logs" / "default" / "web" / "service.log"

    def shows(text: str) -> bool:
        return log.exists() and text in log.read_text()

    wait_for(lambda: shows("serving v1 from /pfs/site"), "the service to serve v1", timeout=30)
    assert shows("input is read-only")
    p.put("site", {"index.html": "v2"})
    wait_for(lambda: shows("serving v2 from /pfs/site"), "the service to serve v2", timeout=30)
    pid = running_pid(p, "web")
    p.ok("stop", "pipeline", "web")
    assert not alive(pid)
