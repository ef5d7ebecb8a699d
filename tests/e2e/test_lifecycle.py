"""A pipeline's life after creation, end to end through the CLI.

* ``stop pipeline`` kills the running job (its process dies) and input commits made while
  stopped make no jobs; ``start pipeline`` runs exactly one job on the current heads.
* ``rerun pipeline`` (with and without ``--reprocess``), ``edit pipeline`` through ``$EDITOR``,
  versions in ``list pipeline --history``, ``--spec``, ``inspect pipeline``, ``draw pipeline``.
* ``delete pipeline`` refuses while another pipeline reads its output, unless ``--force``;
  ``--keep-repo`` keeps the data.
* ``stop job``, ``delete job`` and ``restart datum`` on a running job.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, process_pipes_fixture, spec  # noqa: F401
from pipeline_helpers import until as _until

pytestmark = pytest.mark.e2e



def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _blocker(name: str, repo: str, scratch: Path) -> dict:
    """A pipeline whose first attempt at each datum records its pid and hangs; later attempts
    (after a restart) copy the input through."""
    script = (f"m={scratch}/$(basename ${repo}); "
              f"if [ -e $m.started ]; then cp ${repo} /pfs/out/; "
              "else echo $$ > $m.started; exec sleep 300; fi")
    return spec(name, pfs_input(repo), bash(script))


def test_stop_kills_running_job_and_start_runs_one_job_on_current_heads(process_pipes: Pipes) -> None:
    p = process_pipes
    scratch = Path(p.t.cwd) / "scratch"
    scratch.mkdir()
    p.repo("data", {"a.txt": "a"})
    p.create(_blocker("hold", "data", scratch))
    pid = int(_until(lambda: (scratch / "a.txt.started").exists()
                     and (scratch / "a.txt.started").read_text().strip(), what="datum start"))
    assert _alive(pid)
    job = p.job("hold")
    assert job["state"] == "RUNNING"

    p.ok("stop", "pipeline", "hold")
    _until(lambda: not _alive(pid), timeout=10, what="the datum's process to die")
    killed = p.job("hold", job["id"])
    assert killed["state"] == "KILLED" and "stopped" in killed["reason"]
    time.sleep(0.5)  # the interrupted datum has been accounted for: as nothing
    killed = p.job("hold", job["id"])
    assert (killed["processed"], killed["failed"]) == (0, 0)
    info = p.raw("inspect", "pipeline", "hold")
    assert info["state"] == "paused"

    # Two input commits while stopped: no jobs, no output commits.
    p.put("data", {"b.txt": "b"})
    p.put("data", {"c.txt": "c"})
    time.sleep(1.5)
    assert len(p.jobs("-p", "hold")) == 1

    (scratch / "a.txt.started").write_text("done")  # the next attempt copies instead of hanging
    for f in ("b.txt", "c.txt"):
        (scratch / f"{f}.started").write_text("done")
    p.ok("start", "pipeline", "hold")
    p.wait("hold@master")
    jobs = p.jobs("-p", "hold")
    assert len(jobs) == 2, jobs  # exactly one new job, on the current heads
    assert jobs[0]["state"] == "SUCCESS"
    assert p.text_tree("hold@master") == {"/a.txt": "a", "/b.txt": "b", "/c.txt": "c"}
    assert p.raw("inspect", "pipeline", "hold")["state"] == "running"


def test_rerun_edit_history_and_spec(process_pipes: Pipes, tmp_path: Path) -> None:
    p = process_pipes
    p.repo("words", {"a.txt": "x", "b.txt": "y"})
    p.create(spec("shout", pfs_input("words"), bash("tr a-z A-Z < $words > /pfs/out/$(basename $words)")))
    p.wait("shout@master")

    p.ok("rerun", "pipeline", "shout")
    p.wait("shout@master")
    jobs = p.jobs("-p", "shout")
    assert len(jobs) == 2 and jobs[0]["version"] == 2
    assert jobs[0]["processed"] == 0 and jobs[0]["skipped"] == 2  # nothing changed: all skipped

    p.ok("rerun", "pipeline", "shout", "--reprocess")
    p.wait("shout@master")
    newest = p.jobs("-p", "shout")[0]
    assert newest["version"] == 3 and newest["processed"] == 2 and newest["skipped"] == 0

    # edit: the editor is a script that changes the command in place.
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/tr a-z A-Z/tr a-z b-za/' \"$1\"\n")
    editor.chmod(0o755)
    p.t.env["EDITOR"] = str(editor)
    p.ok("edit", "pipeline", "shout", "--reprocess")
    p.wait("shout@master")
    assert p.text_tree("shout@master") == {"/a.txt": "y", "/b.txt": "z"}
    info = p.raw("inspect", "pipeline", "shout")
    assert info["version"] == 4 and "b-za" in " ".join(info["spec"]["transform"]["cmd"])

    history = p.raw("list", "pipeline", "shout", "--history", "all")
    assert [h["version"] for h in history] == [4, 3, 2, 1]
    assert history[0]["state"] == "running" and history[1]["state"] == "superseded"
    assert [h["version"] for h in p.raw("list", "pipeline", "shout", "--history", "1")] == [4, 3]
    specs = p.ok("list", "pipeline", "--spec")
    assert "b-za" in specs

    # An editor that saves nothing changes nothing.
    p.t.env["EDITOR"] = "true"
    r = p.t("edit", "pipeline", "shout")
    assert r.returncode == 0 and "unchanged" in r.stderr
    assert p.raw("inspect", "pipeline", "shout")["version"] == 4

    p.t.env["EDITOR"] = "sh -c 'echo not-json > \"$1\"' --"
    line = p.t.fail("edit", "pipeline", "shout")
    assert "edited spec" in line
    assert p.raw("inspect", "pipeline", "shout")["version"] == 4
    assert "--history" in p.t.fail("list", "pipeline", "--history", "lots")


def test_delete_refuses_with_dependents_and_draw(process_pipes: Pipes) -> None:
    p = process_pipes
    p.repo("raw", {"a.txt": "a"})
    p.create(spec("first", pfs_input("raw"), bash("cp $raw /pfs/out/")))
    p.create(spec("second", pfs_input("first"), bash("cp $first /pfs/out/")))
    p.wait("second@master")

    drawing = p.ok("draw", "pipeline")
    lines = drawing.splitlines()
    assert lines[0].startswith("raw (repo)")
    assert any("first (pipeline v1" in ln for ln in lines)
    second = next(ln for ln in lines if "second (pipeline" in ln)
    first = next(ln for ln in lines if "first (pipeline" in ln)
    assert len(second) - len(second.lstrip("│ └├─")) > len(first) - len(first.lstrip("│ └├─"))

    line = p.t.fail("delete", "pipeline", "first")
    assert "second" in line and "--force" in line
    assert p.raw("inspect", "pipeline", "first")["name"] == "first"  # nothing was deleted
    assert p.text_tree("first@master") == {"/a.txt": "a"}

    p.ok("delete", "pipeline", "second", "--keep-repo")
    assert p.text_tree("second@master") == {"/a.txt": "a"}  # the data stays
    assert "second" not in [x["name"] for x in p.raw("list", "pipeline")]
    p.ok("delete", "pipeline", "first")
    assert "first" not in [r["name"] for r in p.raw("list", "repo")]
    assert "not found" in p.t.fail("delete", "pipeline", "first")


def test_stop_job_delete_job_and_restart_datum(process_pipes: Pipes) -> None:
    p = process_pipes
    scratch = Path(p.t.cwd) / "scratch"
    scratch.mkdir()
    p.repo("data", {"a.txt": "a", "b.txt": "b"})
    p.create(dict(_blocker("hold", "data", scratch), parallelism_spec={"constant": 2}))
    _until(lambda: (scratch / "a.txt.started").exists() and (scratch / "b.txt.started").exists(),
           what="both datums to start")
    job = p.job("hold")
    # Restart one datum by input path: its next attempt copies, the other keeps hanging.
    p.ok("restart", "datum", f"hold@{job['id']}", "/a.txt")
    pid_b = int((scratch / "b.txt.started").read_text())
    time.sleep(1.5)
    assert p.job("hold", job["id"])["state"] == "RUNNING"
    assert _alive(pid_b)

    p.ok("stop", "job", f"hold@{job['id']}")
    _until(lambda: not _alive(pid_b), timeout=10, what="the hanging datum to be killed")
    stopped = p.job("hold", job["id"])
    assert stopped["state"] == "KILLED"
    # PROGRESS counts what finished: /a.txt's restarted attempt, not the datum that was killed.
    _until(lambda: p.job("hold", job["id"])["processed"] == 1, what="the final progress")
    assert p.job("hold", job["id"])["failed"] == 0
    commit = p.raw("inspect", "commit", f"hold@{job['id']}")
    assert commit["error"]  # the output commit was finished with the reason
    assert "not running" in p.t.fail("restart", "datum", f"hold@{job['id']}", "/a.txt")
    assert "already finished" in p.t.fail("stop", "job", f"hold@{job['id']}")

    p.ok("delete", "job", f"hold@{job['id']}")
    assert job["id"] not in [j["id"] for j in p.jobs("-p", "hold")]
    assert "not found" in p.t.fail("delete", "job", f"hold@{job['id']}")
    assert "pipeline@" in p.t.fail("stop", "job", "hold")
