"""Each pipeline runs in the runtime it names (``"tusk": {"runtime": ...}``), the default being
the sandbox where bubblewrap works; ``TUSK_RUNNER`` overrides them all for the installation.

User code tells the runtimes apart by what it sees: the sandbox hides every tusk root (and
runs as nobody when tusk is root), the process runtime shows the whole host.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import (  # noqa: F401
    Pipes,
    bash,
    bwrap_usable,
    pfs_input,
    pipes_fixture,
    spec,
    until,
)

pytestmark = pytest.mark.e2e
needs_bwrap = pytest.mark.skipif(not bwrap_usable(), reason="bubblewrap cannot create namespaces here")

# Whether the code can see the tusk root (passed in the environment, which binds nothing).
PROBE = 'test -d "$ROOT/objects" && echo seen > /pfs/out/root || echo hidden > /pfs/out/root'


def probe(name: str, p: Pipes, runtime: str | None = None) -> dict:  # type: ignore[type-arg]
    doc = spec(name, pfs_input("data", "/"), bash(PROBE), transform={"env": {"ROOT": str(p.root)}})
    if runtime is not None:
        doc["tusk"] = {"runtime": runtime}
    return doc


def seen(p: Pipes, name: str) -> str:
    return p.text_tree(f"{name}@master")["/root"].strip()


@needs_bwrap
def test_each_pipeline_runs_in_its_runtime_and_tusk_runner_overrides(pipes: Pipes) -> None:
    p = pipes
    p.repo("data", {"x": "1"})
    p.create(probe("boxed", p))
    p.create(probe("plain", p, "process"))
    p.wait("boxed@master")
    p.wait("plain@master")
    assert (seen(p, "boxed"), seen(p, "plain")) == ("hidden", "seen")
    # The choice is part of the spec, shown as written.
    assert p.raw("inspect", "pipeline", "plain")["spec"]["tusk"] == {"runtime": "process"}

    # The installation's override wins over the pipeline's choice, for new jobs.
    p.stop_controllers()
    until(lambda: not p.controller_pids(), what="the controller to exit")
    p.t.env["TUSK_RUNNER"] = "process"
    p.create(probe("asked", p, "sandbox"))
    p.wait("asked@master")
    assert seen(p, "asked") == "seen"


@needs_bwrap
def test_a_service_runs_in_its_pipelines_runtime(pipes: Pipes, tmp_path: Path) -> None:
    p = pipes
    p.repo("site", {"index.html": "v1"})
    script = ('test -d "$ROOT/objects" && echo "root seen" || echo "root hidden";'
              ' cat /pfs/site/index.html; echo; exec sleep 1000')
    doc = spec("web", pfs_input("site", "/"), bash(script),
               transform={"env": {"ROOT": str(p.root)}}, service={"internal_port": 8080},
               tusk={"runtime": "process"})
    p.create(doc)
    log = p.root / "logs" / "default" / "web" / "service.log"
    until(lambda: log.exists() and "v1" in log.read_text(), timeout=30, what="the service")
    text = log.read_text()
    assert "(version 1, process)" in text and "root seen" in text
    p.ok("delete", "pipeline", "web")


@needs_bwrap
def test_a_spout_runs_where_it_can_write_into_the_root(pipes: Pipes) -> None:
    p = pipes
    doc = {"pipeline": {"name": "feed"}, "spout": {},
           "transform": {"cmd": bash("echo hi | tusk put file feed@master:/hi -f -; sleep 1000")}}
    # A spout cannot ask for the sandbox, which would keep it from writing into the root.
    line = p.t.fail("create", "pipeline", "-f", str(p.spec_file({**doc,
                                                                 "tusk": {"runtime": "sandbox"}})))
    assert "tusk.runtime" in line and "spout" in line and "process" in line
    assert p.raw("list", "pipeline") == [] and p.raw("list", "repo") == []
    # By default (the sandbox here) it runs in the process runtime, and says so in its log.
    p.create(doc)
    until(lambda: p.text_tree("feed@master") == {"/hi": "hi\n"}, what="the spout's file",
          every=0.5)
    log = (p.root / "logs" / "default" / "feed" / "service.log").read_text()
    assert "(version 1, process)" in log
    p.ok("delete", "pipeline", "feed")


def test_a_bad_runtime_is_refused_whole(pipes: Pipes) -> None:
    p = pipes
    p.repo("data", {"x": "1"})
    bad = probe("bad", p, "docker")
    line = p.t.fail("create", "pipeline", "-f", str(p.spec_file([probe("good", p), bad])))
    assert 'tusk.runtime: "docker" is not a runtime; use "image", "sandbox" or "process"' in line
    assert p.raw("list", "pipeline") == []  # the good spec of the same file is not created


def test_an_unknown_tusk_runner_fails_the_job_with_the_fix(pipes: Pipes) -> None:
    p = pipes
    p.t.env["TUSK_RUNNER"] = "docker"
    p.repo("data", {"x": "1"})
    p.create(probe("any", p))
    assert p.wait("any@master", ok=False)[0]["error"]
    job = p.job("any")
    assert job["state"] == "FAILURE", job
    assert 'TUSK_RUNNER="docker" is not a runtime; set it to one of: image, sandbox, process' \
        in job["reason"]
    # Fixed, the next job runs.
    p.stop_controllers()
    until(lambda: not p.controller_pids(), what="the controller to exit")
    p.t.env.pop("TUSK_RUNNER")
    p.put("data", {"y": "2"})
    p.wait("any@master")
    assert p.job("any")["state"] == "SUCCESS"
