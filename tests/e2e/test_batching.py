"""Datum batching end to end: one user process per slot, fed datums by ``tusk next datum``
(shell) or ``tusk.batch_all_datums`` (Python), with failures, crashes and skipping.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pipeline_helpers import Pipes, bash, bwrap_usable, pfs_input, spec
from pipeline_helpers import until as _until

pytestmark = pytest.mark.e2e

FIVE = {f"f{i}": f"content {i}" for i in range(5)}
# Each output file holds the PID of the process that wrote it, then its input's content.
SHELL_LOOP = bash(
    'while eval "$(tusk next datum)"; do'
    ' n=$(basename "$in"); echo "doing $n"; { echo $$; cat "$in"; } > /pfs/out/$n;'
    " done"
)

# A Python program that "loads a model" once and handles every datum in the same process.
PYTHON_PROGRAM = [
    "import os, sys",
    "import tusk",
    "MODEL = {'pid': os.getpid()}  # loaded once",
    "OUT = sys.argv[1]",
    "@tusk.batch_all_datums",
    "def process():",
    "    name = os.path.basename(os.environ['in'])",
    "    if name == 'f3':",
    "        raise ValueError('cannot handle ' + name)",
    "    with open(os.environ['in']) as src, open(os.path.join(OUT, name), 'w') as dst:",
    "        dst.write(f\"{MODEL['pid']}\\n{src.read()}\")",
    "process()",
]


@pytest.fixture(name="proc")
def proc_fixture(tusk: object) -> object:
    p = Pipes(tusk, runner="process")
    yield p
    p.stop_controllers()


@pytest.fixture(name="sandboxed")
def sandboxed_fixture(tusk: object) -> object:
    if not bwrap_usable():
        pytest.skip("bubblewrap cannot create namespaces here")
    p = Pipes(tusk)
    yield p
    p.stop_controllers()


def pids_and_contents(tree: dict[str, str]) -> tuple[set[str], dict[str, str]]:
    pids = {v.split("\n", 1)[0] for v in tree.values()}
    return pids, {k: v.split("\n", 1)[1] for k, v in tree.items()}


def check_one_process(p: Pipes, name: str) -> None:
    job = p.job(name)
    assert job["state"] == "SUCCESS", job
    pids, contents = pids_and_contents(p.text_tree(f"{name}@master"))
    assert contents == {f"/{k}": v for k, v in FIVE.items()}
    assert len(pids) == 1, f"expected one user process for the whole job, got {pids}"
    assert p.states(name, job["id"]) == {"SUCCESS": 5}


def test_shell_loop_runs_one_process(proc: Pipes) -> None:
    p = proc
    p.repo("in", FIVE)
    p.create(spec("batch", pfs_input("in"), SHELL_LOOP, transform={"datum_batching": True}))
    p.wait("batch@master")
    check_one_process(p, "batch")
    # What the process printed while a datum was in flight is in that datum's log.
    job = p.job("batch")
    datums = {d["files"][0]: d["id"] for d in p.datums("batch", job["id"])}
    assert "doing f2" in p.logs("batch", "--datum", datums["in:/f2"])
    assert "doing f2" not in p.logs("batch", "--datum", datums["in:/f1"])


def test_shell_loop_in_the_sandbox(sandboxed: Pipes) -> None:
    p = sandboxed
    p.repo("in", FIVE)
    p.create(spec("batch", pfs_input("in"), SHELL_LOOP, transform={"datum_batching": True}))
    p.wait("batch@master")
    check_one_process(p, "batch")


def test_python_sdk_failure_fails_only_that_datum(proc: Pipes) -> None:
    p = proc
    p.repo("in", FIVE)
    p.create(spec("py", pfs_input("in"), [sys.executable, "-", "/pfs/out"], stdin=PYTHON_PROGRAM,
                  datum_tries=2, transform={"datum_batching": True}))
    commit = p.wait("py@master", ok=False)[0]
    assert "cannot handle f3" in commit["error"]
    job = p.job("py")
    assert job["state"] == "FAILURE"
    assert "in:/f3" in job["reason"] and "ValueError: cannot handle f3" in job["reason"]
    datums = {d["files"][0]: d for d in p.datums("py", job["id"])}
    bad = datums.pop("in:/f3")
    assert bad["state"] == "FAILED" and bad["attempts"] == 2  # handed out again once
    assert {d["state"] for d in datums.values()} == {"SUCCESS"}
    # The traceback went to the failed datum's log.
    assert "ValueError: cannot handle f3" in p.logs("py", "--datum", bad["id"])


def test_crash_fails_the_datum_in_flight_and_a_new_process_goes_on(proc: Pipes) -> None:
    p = proc
    p.repo("in", FIVE)
    script = bash(
        'while eval "$(tusk next datum)"; do n=$(basename "$in");'
        ' if [ $n = f2 ]; then echo "dying on $n" >&2; exit 7; fi;'
        " { echo $$; cat \"$in\"; } > /pfs/out/$n; done"
    )
    p.create(spec("crashy", pfs_input("in"), script, datum_tries=1,
                  transform={"datum_batching": True}))
    p.wait("crashy@master", ok=False)
    job = p.job("crashy")
    assert job["state"] == "FAILURE"
    datums = {d["files"][0]: d for d in p.datums("crashy", job["id"])}
    bad = datums.pop("in:/f2")
    assert bad["state"] == "FAILED"
    assert "exit" in bad["reason"] and "code 7" in bad["reason"] and "dying on f2" in bad["reason"]
    assert {d["state"] for d in datums.values()} == {"SUCCESS"}


def test_err_cmd_recovers_a_failed_datum_in_batching(proc: Pipes) -> None:
    """The Python SDK reports f3 failed; err_cmd sees f3's input and exits 0 only for f3, so
    f3 is RECOVERED (no output) and the job succeeds; a crash on f1 is not recoverable."""
    p = proc
    p.repo("in", FIVE)
    err = bash('echo "recovering $(basename "$in") from $(cat "$in")" >&2;'
               ' [ "$(basename "$in")" = f3 ]')
    p.create(spec("py", pfs_input("in"), [sys.executable, "-", "/pfs/out"], stdin=PYTHON_PROGRAM,
                  transform={"datum_batching": True, "err_cmd": err}))
    p.wait("py@master")
    job = p.job("py")
    assert job["state"] == "SUCCESS" and job["recovered"] == 1, job
    datums = {d["files"][0]: d for d in p.datums("py", job["id"])}
    assert datums["in:/f3"]["state"] == "RECOVERED"
    assert "recovering f3 from content 3" in p.logs("py", "--datum", datums["in:/f3"]["id"])
    assert "/f3" not in p.text_tree("py@master")  # a recovered datum's output is discarded
    assert len(p.text_tree("py@master")) == 4

    crash = bash('while eval "$(tusk next datum)"; do n=$(basename "$in");'
                 ' if [ $n = f1 ]; then exit 9; fi; cp "$in" /pfs/out/$n; done')
    p.create(spec("crash", pfs_input("in"), crash, datum_tries=1,
                  transform={"datum_batching": True, "err_cmd": err}))
    p.wait("crash@master", ok=False)
    job = p.job("crash")
    assert job["state"] == "FAILURE" and job["recovered"] == 0
    datums = {d["files"][0]: d for d in p.datums("crash", job["id"])}
    assert datums["in:/f1"]["state"] == "FAILED"
    assert "recovering f1 from content 1" in p.logs("crash", "--datum", datums["in:/f1"]["id"])


def test_incremental_hands_out_only_new_datums(proc: Pipes) -> None:
    p = proc
    p.repo("in", FIVE)
    p.create(spec("inc", pfs_input("in"), SHELL_LOOP, transform={"datum_batching": True}))
    p.wait("inc@master")
    first = p.text_tree("inc@master")
    commit = p.put("in", {"f5": "content 5"})
    p.wait(commit)
    job = p.job("inc")
    assert job["state"] == "SUCCESS"
    assert p.states("inc", job["id"]) == {"SUCCESS": 1, "SKIPPED": 5}
    logs = p.logs("inc", "-j", job["id"])
    assert "doing f5" in logs and "doing f0" not in logs  # only the new datum was handed out
    second = p.text_tree("inc@master")
    assert {k: v for k, v in second.items() if k != "/f5"} == first
    assert second["/f5"].endswith("\ncontent 5")


def test_next_datum_outside_a_batching_pipeline(tusk: object) -> None:
    line = tusk.fail("next", "datum")  # type: ignore[attr-defined]
    assert "datum_batching" in line



def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_restart_datum_and_stop_job_kill_the_process(proc: Pipes) -> None:
    p = proc
    scratch = Path(p.t.cwd) / "scratch"
    scratch.mkdir()
    p.repo("in", {"a": "a", "b": "b"})
    # The first time a datum is handed out, the process records its PID and hangs.
    loop = bash(
        'while eval "$(tusk next datum)"; do m=' + str(scratch) + '/$(basename "$in");'
        ' if [ -e $m.started ]; then cp "$in" /pfs/out/; else echo $$ > $m.started; sleep 300; fi;'
        " done"
    )
    p.create(spec("hold", pfs_input("in"), loop, transform={"datum_batching": True}))
    first = _until(lambda: [f for f in scratch.glob("*.started")], what="a datum to start")[0]
    pid1 = int(first.read_text())
    job = p.job("hold")
    name = first.name.removesuffix(".started")
    other = "b" if name == "a" else "a"
    # Restarting the datum kills the process; a new one gets the datum again, copies it, and
    # hangs on the other datum.
    p.ok("restart", "datum", f"hold@{job['id']}", f"/{name}")
    started = scratch / f"{other}.started"
    pid2 = int(_until(lambda: started.exists() and started.read_text().strip(), what="restart"))
    assert pid2 != pid1 and not _alive(pid1)
    p.ok("stop", "job", f"hold@{job['id']}")
    _until(lambda: not _alive(pid2), timeout=10, what="the batching process to be killed")
    assert p.job("hold", job["id"])["state"] == "KILLED"
