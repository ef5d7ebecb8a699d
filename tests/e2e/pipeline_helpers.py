"""Helpers for the pipeline end-to-end scenarios (``test_pipelines_*.py``).

Every scenario drives the real ``tusk`` executable through the ``tusk`` fixture of
``conftest.py`` (one fresh ``TUSK_ROOT`` per test). ``Pipes`` wraps it with the few steps
pipeline tests repeat: make a repo with files in one commit, create a pipeline from a spec
dict, wait for a commit or a whole commit set (never sleep), and read jobs, datums and output
trees back through ``--raw``.

Controllers started by the CLI exit after ``TUSK_CONTROLLER_IDLE`` (5 s here) of idleness, so a
finished test leaves nothing running for long.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

IDLE = "5"


def bwrap_usable() -> bool:
    from tusk.workers.runtimes.sandbox import bwrap_usable as usable

    return usable()


class Pipes:
    """Pipeline-level conveniences over a ``conftest.Tusk``."""

    def __init__(self, tusk: Any, runner: str | None = None) -> None:
        self.t = tusk
        tusk.env["TUSK_CONTROLLER_IDLE"] = IDLE
        tusk.env.pop("TUSK_NO_CONTROLLER", None)
        if runner is not None:
            tusk.env["TUSK_RUNNER"] = runner
        else:
            tusk.env.pop("TUSK_RUNNER", None)
        self._specs = 0

    @property
    def root(self) -> Path:
        return Path(self.t.root)

    def ok(self, *args: str, **kw: Any) -> str:
        return self.t.ok(*args, **kw)

    def raw(self, *args: str) -> Any:
        return json.loads(self.t.ok(*args, "--raw"))

    # -- data ---------------------------------------------------------------------------------

    def repo(self, name: str, files: dict[str, str | bytes] | None = None) -> str | None:
        """Create a repo; with ``files``, put them in one commit and return its ID."""
        self.ok("create", "repo", name)
        return self.put(name, files) if files else None

    def put(self, repo: str, files: dict[str, str | bytes], branch: str = "master") -> str:
        """Put ``{path: content}`` in one commit (a tar through stdin); returns the commit ID."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path, data in files.items():
                raw = data.encode() if isinstance(data, str) else data
                info = tarfile.TarInfo(path.lstrip("/"))
                info.size = len(raw)
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(raw))
        self.ok("put", "file", f"{repo}@{branch}:/", "--untar", "-f", "-", input=buf.getvalue())
        return self.head(repo, branch)

    def delete(self, repo: str, path: str, branch: str = "master") -> str:
        self.ok("delete", "file", f"{repo}@{branch}:{path}")
        return self.head(repo, branch)

    def head(self, repo: str, branch: str = "master") -> str:
        """ID of the branch's newest commit (``list commit repo@branch -n 1 --raw``)."""
        commits = self.raw("list", "commit", f"{repo}@{branch}", "-n", "1")
        assert commits, f"{repo}@{branch} has no commits"
        return commits[0]["id"]

    # -- pipelines ----------------------------------------------------------------------------

    def spec_file(self, spec: dict[str, Any] | list[dict[str, Any]] | str) -> Path:
        self._specs += 1
        p = Path(self.t.cwd) / f"spec{self._specs}.json"
        if isinstance(spec, str):
            p.write_text(spec)
        elif isinstance(spec, list):
            p.write_text("\n".join(json.dumps(s) for s in spec))
        else:
            p.write_text(json.dumps(spec, indent=2))
        return p

    def create(self, spec: dict[str, Any], *extra: str) -> Path:
        path = self.spec_file(spec)
        self.ok("create", "pipeline", "-f", str(path), *extra)
        return path

    def update(self, spec: dict[str, Any], *extra: str) -> Path:
        path = self.spec_file(spec)
        self.ok("update", "pipeline", "-f", str(path), *extra)
        return path

    # -- waiting ------------------------------------------------------------------------------

    def wait(self, ref: str, timeout: float = 60, ok: bool = True) -> list[dict[str, Any]]:
        """``tusk wait commit ref`` (an ID waits for the whole commit set); the commits.

        With ``ok`` (the default) every commit must have finished without error.
        """
        r = self.t("wait", "commit", ref, "--timeout", str(timeout), "--raw", timeout=timeout + 30)
        assert "Traceback" not in r.stderr, r.stderr
        assert r.stdout.strip(), f"wait commit {ref} printed nothing ({r.returncode}): {r.stderr}"
        commits = json.loads(r.stdout)
        if ok:
            errors = {c["repo"]: c["error"] for c in commits if c["error"]}
            assert r.returncode == 0 and not errors, f"wait commit {ref}: {errors or r.stderr}"
        return commits

    # -- reading results ----------------------------------------------------------------------

    def jobs(self, *args: str) -> list[dict[str, Any]]:
        """``tusk list job [args] --raw`` (newest first)."""
        return self.raw("list", "job", *args)

    def job(self, pipeline: str, job_id: str | None = None) -> dict[str, Any]:
        """The pipeline's job with ``job_id`` (default: its newest)."""
        jobs = self.jobs("-p", pipeline) if job_id is None else self.jobs(job_id, "-p", pipeline)
        assert jobs, f"no job for pipeline {pipeline} {job_id or ''}"
        return jobs[0]

    def datums(self, pipeline: str, job_id: str) -> list[dict[str, Any]]:
        return self.raw("list", "datum", f"{pipeline}@{job_id}")

    def states(self, pipeline: str, job_id: str) -> dict[str, int]:
        """Count of datums per state for a job."""
        out: dict[str, int] = {}
        for d in self.datums(pipeline, job_id):
            out[d["state"]] = out.get(d["state"], 0) + 1
        return out

    def tree(self, ref: str) -> dict[str, bytes]:
        """Every file of a commit as ``{"/path": bytes}`` (one ``get file -r`` download)."""
        dest = Path(self.t.cwd) / f"dl{time.monotonic_ns()}"
        self.ok("get", "file", "-r", "-o", str(dest), f"{ref}:/")
        out: dict[str, bytes] = {}
        if dest.exists():
            for p in sorted(dest.rglob("*")):
                if p.is_file():
                    out["/" + p.relative_to(dest).as_posix()] = p.read_bytes()
            shutil.rmtree(dest)
        return out

    def text_tree(self, ref: str) -> dict[str, str]:
        return {k: v.decode() for k, v in self.tree(ref).items()}

    def logs(self, pipeline: str, *args: str) -> str:
        return self.ok("logs", "-p", pipeline, *args)

    # -- the controller -----------------------------------------------------------------------

    def controller_pids(self) -> list[int]:
        """PIDs of controllers serving this test's root (found through /proc, by environment)."""
        want = f"TUSK_ROOT={self.root}".encode()
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes()
                if b"tusk.pps.controller" not in cmd and b"controller" not in cmd.split(b"\0")[1:]:
                    continue
                env = (d / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if want in env:
                pids.append(int(d.name))
        return pids

    def stop_controllers(self) -> None:
        """Terminate this root's controllers (only those started for this test's root)."""
        for pid in self.controller_pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def pfs_input(repo: str, glob: str = "/*", **kw: Any) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **kw}}


def until(check: Any, timeout: float = 40, what: str = "condition", every: float = 0.1) -> Any:
    """Poll ``check()`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def spec(name: str, input: dict[str, Any], cmd: list[str], stdin: list[str] | None = None,
         **top: Any) -> dict[str, Any]:
    """A minimal Pachyderm pipeline spec; ``top`` adds top-level fields, ``transform`` merges."""
    transform: dict[str, Any] = {"cmd": cmd}
    if stdin is not None:
        transform["stdin"] = stdin
    transform.update(top.pop("transform", {}))
    return {"pipeline": {"name": name}, "input": input, "transform": transform, **top}


def bash(script: str) -> list[str]:
    return ["bash", "-c", script]


@pytest.fixture(name="pipes")
def pipes_fixture(tusk: Any) -> Any:
    """A ``Pipes`` on the test's fresh root, default runner (the sandbox where bwrap works)."""
    p = Pipes(tusk)
    yield p
    p.stop_controllers()


@pytest.fixture(name="process_pipes")
def process_pipes_fixture(tusk: Any) -> Any:
    """A ``Pipes`` whose controllers use the process runner (``TUSK_RUNNER=process``)."""
    p = Pipes(tusk, runner="process")
    yield p
    p.stop_controllers()

