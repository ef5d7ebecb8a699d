"""Runtimes chosen per pipeline, and decisions made from their capabilities, never their names.

Jobs run in process (PfsService + PpsService + Controller.step()) with real runtimes, some with
their capabilities changed by a subclass, so each decision a capability drives (hard links or
copies, /pfs rewritten or real) shows in what the user code saw.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from tusk.errors import FailedPrecondition
from tusk.pfs.refs import parse_commit, parse_file, parse_repo
from tusk.pfs.service import PfsService
from tusk.pps.controller import Controller
from tusk.pps.service import PpsService
from tusk.pps.spec import SpecError, parse_spec
from tusk.workers import runtimes
from tusk.workers.base import Capabilities, Runtime
from tusk.workers.runtimes.process import ProcessRuntime
from tusk.workers.runtimes.sandbox import SandboxRuntime, bwrap_usable

SRC = Path(__file__).resolve().parents[2] / "src" / "tusk"


def put(svc: PfsService, ref: str, files: dict[str, bytes]) -> None:
    with svc.modify(parse_commit(ref)) as fs:
        for path, data in files.items():
            fs.put_bytes(path, data)


def walk(svc: PfsService, ref: str) -> dict[str, str]:
    return {f.path: b"".join(svc.read_file(parse_file(f"{ref}:{f.path}"))).decode()
            for f in svc.walk_file(parse_file(ref + ":/")) if f.type == "file"}


def doc(name: str, script: str, **top: object) -> dict:  # type: ignore[type-arg]
    return {"pipeline": {"name": name}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
            "transform": {"cmd": ["bash", "-c", script]}, **top}


def drain(ctl: Controller) -> None:
    for _ in range(100):
        if not ctl.step():
            return
    raise AssertionError("the controller never went idle")


class Linking(ProcessRuntime):
    """The process runtime, claiming to show inputs read-only (so it is given hard links)."""

    @property
    def capabilities(self) -> Capabilities:
        return dataclasses.replace(super().capabilities, links_inputs=True)


@pytest.fixture
def svc_in(svc: PfsService) -> PfsService:
    svc.create_repo(parse_repo("in"))
    put(svc, "in@master", {"/a": b"1", "/b": b"2"})
    return svc


@pytest.mark.parametrize(("runtime", "links"), [(ProcessRuntime(), "1"), (Linking(), "2")])
def test_inputs_are_links_only_when_the_runtime_says_it_may(svc_in: PfsService, runtime: Runtime,
                                                           links: str) -> None:
    pps = PpsService(svc_in)
    ctl = Controller(svc_in, runtime, verbose=False)
    # %h: the number of names of the input file; 2 = the cache's file and the datum's link.
    pps.create_pipeline(parse_spec(doc("links", 'stat -c %h "$in" > /pfs/out/$(basename $in)')))
    drain(ctl)
    assert walk(svc_in, "links@master") == {"/a": links + "\n", "/b": links + "\n"}


def test_a_runtime_without_a_real_pfs_gets_rewritten_paths(svc_in: PfsService) -> None:
    runtime = ProcessRuntime(private_pfs=False)
    assert not runtime.capabilities.real_pfs
    pps = PpsService(svc_in)
    ctl = Controller(svc_in, runtime, verbose=False)
    pps.create_pipeline(parse_spec(doc("paths", 'echo "$in" > /pfs/out/$(basename $in)')))
    drain(ctl)
    out = walk(svc_in, "paths@master")
    assert set(out) == {"/a", "/b"}
    # The variable names the datum's scratch directory, which the code can open.
    assert all(v.strip().endswith(f"/pfs/in{k}") and not v.startswith("/pfs/")
               for k, v in out.items()), out


def test_batching_hands_out_paths_the_runtime_can_open(svc_in: PfsService) -> None:
    runtime = ProcessRuntime(private_pfs=False)
    pps = PpsService(svc_in)
    ctl = Controller(svc_in, runtime, verbose=False)
    loop = ('while eval "$(tusk next datum)"; do n=$(basename "$in");'
            ' { echo "$in"; cat "$in"; } > /pfs/out/$n; done')
    spec = doc("batch", loop)
    spec["transform"]["datum_batching"] = True
    pps.create_pipeline(parse_spec(spec))
    drain(ctl)
    out = walk(svc_in, "batch@master")
    assert {k: v.split("\n")[1] for k, v in out.items()} == {"/a": "1", "/b": "2"}
    assert all(not v.startswith("/pfs/") for v in out.values()), out


# -- the choice --------------------------------------------------------------------------------


def chosen(root: Path, spec_doc: dict, **kw: object) -> Runtime:  # type: ignore[type-arg]
    return runtimes.Runtimes(root, **kw).for_pipeline(parse_spec(spec_doc))  # type: ignore[arg-type]


def test_a_pipeline_names_its_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUSK_RUNNER", raising=False)
    proc = chosen(tmp_path, doc("p", "true", tusk={"runtime": "process"}))
    assert isinstance(proc, ProcessRuntime) and not proc.capabilities.isolated
    default = chosen(tmp_path, doc("p", "true"))
    if bwrap_usable():
        assert isinstance(default, SandboxRuntime) and default.capabilities.isolated
        boxed = chosen(tmp_path, doc("p", "true", tusk={"runtime": "sandbox"}))
        assert isinstance(boxed, SandboxRuntime)
    else:
        assert isinstance(default, ProcessRuntime)


def test_tusk_runner_overrides_the_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUSK_RUNNER", "process")
    assert isinstance(chosen(tmp_path, doc("p", "true", tusk={"runtime": "sandbox"})),
                      ProcessRuntime)
    fixed = ProcessRuntime()
    monkeypatch.delenv("TUSK_RUNNER")
    assert chosen(tmp_path, doc("p", "true", tusk={"runtime": "sandbox"}), fixed=fixed) is fixed


def test_an_unknown_tusk_runner_is_a_clear_error(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUSK_RUNNER", "docker")
    with pytest.raises(FailedPrecondition, match='TUSK_RUNNER="docker".*sandbox, process'):
        chosen(tmp_path, doc("p", "true"))


def test_sandbox_without_bubblewrap_fails_the_job_with_the_fix(
        svc_in: PfsService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUSK_RUNNER", raising=False)
    monkeypatch.setattr("tusk.workers.runtimes.sandbox_usable", lambda: False)
    pps = PpsService(svc_in)
    ctl = Controller(svc_in, verbose=False)
    pps.create_pipeline(parse_spec(doc("boxed", "cp $in /pfs/out/", tusk={"runtime": "sandbox"})))
    pps.create_pipeline(parse_spec(doc("plain", "cp $in /pfs/out/")))
    drain(ctl)
    (job,) = pps.list_jobs("boxed")
    assert job.state == "FAILURE" and "apt-get install bubblewrap" in job.reason, job.reason
    # A pipeline that named nothing falls back to the process runtime and runs.
    assert pps.list_jobs("plain")[0].state == "SUCCESS"
    assert walk(svc_in, "plain@master") == {"/a": "1", "/b": "2"}


def test_spouts_run_where_they_can_reach_the_root(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUSK_RUNNER", "sandbox")
    spout = {"pipeline": {"name": "s"}, "spout": {}, "transform": {"cmd": ["true"]}}
    assert chosen(tmp_path, spout).capabilities.reaches_root


# -- the spec field ----------------------------------------------------------------------------


def test_the_spec_keeps_the_runtime() -> None:
    spec = parse_spec(doc("p", "true", tusk={"runtime": "process"}))
    assert spec.to_dict()["tusk"] == {"runtime": "process"}
    assert parse_spec(spec.to_dict()) == spec
    assert "tusk" not in parse_spec(doc("p", "true")).to_dict()


@pytest.mark.parametrize(("tusk", "says"), [
    ({"runtime": "docker"}, 'tusk.runtime: "docker" is not a runtime; use "image", "sandbox" or "process"'),
    ({"runtim": "process"}, 'tusk.runtim: unknown field; did you mean "runtime"?'),
    ("process", "tusk: must be an object"),
])
def test_a_bad_runtime_is_named(tusk: object, says: str) -> None:
    with pytest.raises(SpecError, match="^p.json: " + says.replace("?", r"\?")):
        parse_spec(doc("p", "true", tusk=tusk), "p.json")


def test_a_spout_cannot_ask_for_the_sandbox() -> None:
    spout = {"pipeline": {"name": "s"}, "spout": {}, "transform": {"cmd": ["true"]},
             "tusk": {"runtime": "sandbox"}}
    with pytest.raises(SpecError, match="tusk.runtime: .*spout.*tusk put file"):
        parse_spec(spout, "s.json")


# -- nothing above the runtimes branches on a name ---------------------------------------------

NAMES = {"sandbox", "process"}


def _name_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing something to a runtime's name, or a runtime object's ``name``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                if isinstance(side, ast.Constant) and side.value in NAMES:
                    found.append(node.lineno)
                if isinstance(side, ast.Attribute) and side.attr == "name" and any(
                        w in ast.unparse(side.value).lower() for w in ("runtime", "runner")):
                    found.append(node.lineno)
                if isinstance(side, (ast.Tuple, ast.List, ast.Set)) and any(
                        isinstance(e, ast.Constant) and e.value in NAMES for e in side.elts):
                    found.append(node.lineno)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "isinstance" and any(
                n in ast.unparse(node.args[1]) for n in ("Sandbox", "ProcessRun")):
            found.append(node.lineno)
    return sorted(set(found))


def test_no_module_above_the_runtimes_compares_a_runtime_name() -> None:
    inside = SRC / "workers" / "runtimes"
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if inside in path.parents:
            continue
        lines = _name_comparisons(ast.parse(path.read_text(), str(path)))
        offenders += [f"{path.relative_to(SRC)}:{n}" for n in lines]
    assert offenders == []


def test_the_check_finds_a_name_comparison() -> None:
    code = ('if self.runner.name == "sandbox": pass\n'
            'x = runtime.name != other\n'
            'y = os.environ.get("TUSK_RUNNER") in ("process", "")\n'
            'z = isinstance(r, SandboxRuntime)\n')
    assert _name_comparisons(ast.parse(code)) == [1, 2, 3, 4]


def test_create_says_when_code_will_not_be_sandboxed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUSK_RUNNER", raising=False)
    monkeypatch.setattr("tusk.workers.runtimes.sandbox_usable", lambda: False)
    plain = parse_spec(doc("p", "true"))
    boxed = parse_spec(doc("b", "true", tusk={"runtime": "sandbox"}))
    chose = parse_spec(doc("c", "true", tusk={"runtime": "process"}))
    spout = parse_spec({"pipeline": {"name": "s"}, "spout": {}, "transform": {"cmd": ["true"]}})
    (note,) = runtimes.fallback_notes([plain])
    assert "plain processes" in note
    (note,) = runtimes.fallback_notes([boxed])
    assert "fail until" in note and "apt-get install bubblewrap" in note
    assert runtimes.fallback_notes([chose, spout]) == []
    monkeypatch.setenv("TUSK_RUNNER", "process")
    assert runtimes.fallback_notes([plain, boxed]) == []
    monkeypatch.setattr("tusk.workers.runtimes.sandbox_usable", lambda: True)
    monkeypatch.delenv("TUSK_RUNNER")
    assert runtimes.fallback_notes([plain, boxed]) == []
