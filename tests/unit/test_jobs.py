"""Jobs in process: PfsService + PpsService + Controller.step(), with the process runner.

Fast checks of what the end-to-end scenarios cover slowly, plus paths they cannot reach
(a controller that hits a bug, harvesting tricky output links, /pfs rewriting).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tusk.pfs.refs import parse_commit, parse_file, parse_repo
from tusk.pfs.service import PfsService
from tusk.pfs.trees import Entry
from tusk.pps.controller import Controller
from tusk.pps.service import PpsService
from tusk.pps.spec import parse_spec
from tusk.pps.workspace import OutputError, harvest, reset
from tusk.workers.base import Workspace
from tusk.workers.runtimes.process import ProcessRuntime, _rewrite


def put(svc: PfsService, ref: str, files: dict[str, bytes]) -> None:
    with svc.modify(parse_commit(ref)) as fs:
        for path, data in files.items():
            fs.put_bytes(path, data)


def walk(svc: PfsService, ref: str) -> dict[str, bytes]:
    return {f.path: b"".join(svc.read_file(parse_file(f"{ref}:{f.path}")))
            for f in svc.walk_file(parse_file(ref + ":/")) if f.type == "file"}


def pipeline(pps: PpsService, name: str, script: str, glob: str = "/*", **top: object) -> None:
    doc = {"pipeline": {"name": name}, "input": {"pfs": {"repo": "in", "glob": glob}},
           "transform": {"cmd": ["bash", "-c", script]}, **top}
    pps.create_pipeline(parse_spec(doc, "test"))


def drain(ctl: Controller) -> None:
    for _ in range(100):
        if not ctl.step():
            return
    raise AssertionError("the controller never went idle")


@pytest.fixture
def env(svc: PfsService) -> tuple[PfsService, PpsService, Controller]:
    svc.create_repo(parse_repo("in"))
    return svc, PpsService(svc), Controller(svc, ProcessRuntime(), verbose=False)


def test_small_outputs_are_readable(env) -> None:  # type: ignore[no-untyped-def]
    """Regression: outputs bundled into one chunk got their digest only at seal time, after
    the output tree had been built, so every small output file was unreadable."""
    svc, pps, ctl = env
    put(svc, "in@master", {"/a": b"1", "/b": b"22"})
    pipeline(pps, "copy", "cp $in /pfs/out/")
    drain(ctl)
    assert walk(svc, "copy@master") == {"/a": b"1", "/b": b"22"}
    (job,) = pps.list_jobs("copy")
    assert (job.state, job.processed, job.total) == ("SUCCESS", 2, 2)


def test_incremental_skip_retract_and_delete(env) -> None:  # type: ignore[no-untyped-def]
    svc, pps, ctl = env
    put(svc, "in@master", {"/a": b"1", "/b": b"2"})
    pipeline(pps, "copy", "cp $in /pfs/out/$(basename $in).out")
    drain(ctl)
    put(svc, "in@master", {"/b": b"changed", "/c": b"3"})
    drain(ctl)
    job = pps.list_jobs("copy")[0]
    assert (job.processed, job.skipped, job.total) == (2, 1, 3)
    with svc.modify(parse_commit("in@master")) as fs:
        fs.delete("/a")
    drain(ctl)
    assert walk(svc, "copy@master") == {"/b.out": b"changed", "/c.out": b"3"}


def test_duplicate_output_paths_fail_the_job(env) -> None:  # type: ignore[no-untyped-def]
    svc, pps, ctl = env
    put(svc, "in@master", {"/a": b"1", "/b": b"2"})
    pipeline(pps, "clash", "echo x > /pfs/out/same")
    drain(ctl)
    job = pps.list_jobs("clash")[0]
    assert job.state == "FAILURE"
    assert "/same" in job.reason and "duplicate path" in job.reason


def test_internal_error_fails_the_job_instead_of_wedging(env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    svc, pps, ctl = env
    put(svc, "in@master", {"/a": b"1"})
    pipeline(pps, "boom", "true")

    def explode(job):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ctl.jobs, "run", explode)
    ctl.say = lambda msg: None  # type: ignore[method-assign]
    drain(ctl)
    job = pps.list_jobs("boom")[0]
    assert job.state == "FAILURE" and "disk on fire" in job.reason
    info = svc.inspect_commit(parse_commit("boom@master"))
    assert info.finished and "disk on fire" in info.error


def test_idle_foreground_controller_returns(env) -> None:  # type: ignore[no-untyped-def]
    """serve() without a hand-over lock (``tusk controller --idle N``) used to never exit."""
    _svc, _pps, ctl = env
    done = threading.Event()
    t = threading.Thread(target=lambda: (ctl.serve(idle=0.2, lock_fd=None), done.set()), daemon=True)
    t.start()
    assert done.wait(10)


# -- /pfs rewriting (process runner) -------------------------------------------------------------

@pytest.mark.parametrize(("text", "want"), [
    ("/pfs", "/S/pfs"),
    ("/pfs/out/x", "/S/pfs/out/x"),
    ("cat /pfs/in/* > /pfs/out/all", "cat /S/pfs/in/* > /S/pfs/out/all"),
    ("x=/pfs/a", "x=/S/pfs/a"),
    ("/data/pfs/x", "/data/pfs/x"),
    ("/pfsx /pfs.d", "/pfsx /pfs.d"),
])
def test_rewrite_pfs_once(text: str, want: str) -> None:
    assert _rewrite(text, "/S/pfs") == want


# -- harvesting output links ---------------------------------------------------------------------

@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "ws")
    reset(w)
    (w.pfs / "in").mkdir()
    (w.pfs / "in" / "a.txt").write_text("input")
    return w


def test_harvest_links(svc: PfsService, ws: Workspace, tmp_path: Path) -> None:
    entry = Entry("/a.txt", 5, b"\x01" * 32, (), "")
    out = ws.out
    (out / "real").write_text("mine")
    os.symlink("real", out / "alias")
    os.symlink("/pfs/in/a.txt", out / "abs")
    os.symlink(str(ws.pfs / "in" / "a.txt"), out / "scratch")  # as the process runner writes
    (out / "d").mkdir()
    os.symlink("../alias", out / "d" / "chain")
    os.symlink("d", out / "dirlink")
    os.symlink("dirlink/chain", out / "via_dir")
    os.symlink("/pfs/in", out / "inputs")  # a directory of the input: all its files
    writer = svc.b.writer()
    got = {e.path: e for e in harvest(ws, "D", writer, threading.Lock(), {"in": {"/a.txt": entry}})}
    writer.seal()
    assert sorted(got) == ["/abs", "/alias", "/d/chain", "/dirlink/chain", "/inputs/a.txt",
                           "/real", "/scratch", "/via_dir"]
    assert got["/abs"].hash == got["/scratch"].hash == got["/inputs/a.txt"].hash == entry.hash
    assert got["/abs"].datum == "D"
    mine = got["/real"].hash
    assert {got[p].hash for p in ("/alias", "/d/chain", "/dirlink/chain", "/via_dir")} == {mine}


@pytest.mark.parametrize("make", [
    lambda out, host: os.symlink("/etc/passwd", out / "p"),
    lambda out, host: os.symlink(str(host), out / "z") or os.symlink("z/secret", out / "a"),
    lambda out, host: os.symlink("loop", out / "loop"),
    lambda out, host: os.symlink("/pfs/in/missing", out / "no_such_input"),
    lambda out, host: (out / "d").mkdir() or os.symlink("..", out / "d" / "up"),
    lambda out, host: os.symlink("/pfs/out", out / "self"),
])
def test_harvest_refuses_escaping_links(svc: PfsService, ws: Workspace, tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("do not read")
    make(ws.out, host)
    writer = svc.b.writer()
    with pytest.raises(OutputError):
        harvest(ws, "D", writer, threading.Lock(), {"in": {}})
    assert writer.bytes_written == 0  # nothing was read from the host
    writer.abort()
