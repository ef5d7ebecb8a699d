"""End-to-end fixtures: run the real ``tusk`` executable in a subprocess against a fresh root.

``tusk`` (the fixture) is a callable: ``tusk("list", "repo")`` returns a ``Result``
(returncode, stdout, stderr) that unpacks as a plain tuple. Helpers on it:

* ``tusk.ok(...)``   asserts success and returns stdout;
* ``tusk.json(...)`` runs with ``--raw`` already given by the caller and parses stdout as JSON;
* ``tusk.fail(...)`` asserts the user-error contract: non-zero exit, exactly one stderr line
  starting with ``tusk:``, no traceback; returns that line.

Attributes other helpers build on: ``root`` (the TUSK_ROOT), ``cwd`` (a scratch working
directory every command runs in), ``env`` (the subprocess environment; edit it to opt in to
things such as the pipeline controller) and ``exe`` (the tusk executable, for ``Popen``).
``module_tusk`` is the same on one root shared by a module (for read-only checks).

``http_dir`` serves a temporary directory over real HTTP (``http.server`` in a thread).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest


def _tusk_exe() -> str:
    # The venv the tests run in has tusk installed; prefer its script, then PATH.
    candidate = Path(sys.executable).parent / "tusk"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("tusk")
    if found is None:
        pytest.exit("the 'tusk' executable is not installed (pip install -e .)", returncode=2)
    return found


TUSK = _tusk_exe()
# Shared by every test and xdist worker: .pyc files are written atomically and checked against
# their source's mtime, so a stale or concurrent one is never used wrongly.
PYCACHE = Path(tempfile.gettempdir()) / f"tusk-tests-pycache-{os.getuid()}"


class Result(NamedTuple):
    returncode: int
    stdout: Any  # str, or bytes when binary=True
    stderr: str


class Tusk:
    """Runs ``tusk`` with ``TUSK_ROOT`` set to one temporary root, in a working directory."""

    exe = TUSK

    def __init__(self, root: Path, cwd: Path) -> None:
        self.root = root
        self.cwd = cwd
        # A user's environment: no backend overrides, and no PYTHONUNBUFFERED (streaming commands
        # must flush by themselves). Bytecode is cached, as for an installed tusk, even where the
        # caller says PYTHONDONTWRITEBYTECODE: compiling tusk anew cost every command ~0.25 s.
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("TUSK_METADATA_URL", "TUSK_OBJECT_URL", "PYTHONUNBUFFERED",
                                 "PYTHONDONTWRITEBYTECODE")}
        self.env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        self.env["TUSK_ROOT"] = str(root)
        # PFS tests start no background pipeline controller; pipeline tests opt back in.
        self.env["TUSK_NO_CONTROLLER"] = "1"
        self.env["COLUMNS"] = "200"

    def __call__(self, *args: str, input: bytes | str | None = None, binary: bool = False,
                 timeout: float = 60) -> Result:
        data = input.encode() if isinstance(input, str) else input
        p = subprocess.run(
            [TUSK, *map(str, args)], check=False, input=data if data is not None else b"",
            capture_output=True, env=self.env, cwd=self.cwd, timeout=timeout,
        )
        out = p.stdout if binary else p.stdout.decode("utf-8", "replace")
        return Result(p.returncode, out, p.stderr.decode("utf-8", "replace"))

    def ok(self, *args: str, **kw: Any) -> Any:
        r = self(*args, **kw)
        assert r.returncode == 0, f"tusk {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr}"
        assert "Traceback" not in r.stderr, r.stderr
        return r.stdout

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.ok(*args, **kw))

    def fail(self, *args: str, **kw: Any) -> str:
        r = self(*args, **kw)
        cmd = "tusk " + " ".join(map(str, args))
        assert r.returncode != 0, f"{cmd} should fail but exited 0; stdout: {r.stdout!r}"
        assert "Traceback" not in r.stderr, f"{cmd} printed a traceback:\n{r.stderr}"
        lines = r.stderr.splitlines()
        assert len(lines) == 1, f"{cmd}: expected one stderr line, got {lines!r}"
        assert lines[0].startswith("tusk: "), f"{cmd}: stderr does not start with 'tusk: ': {lines[0]!r}"
        return lines[0]

    # -- small conveniences used by many tests ------------------------------------------------

    def commit_ids(self, ref: str) -> list[str]:
        """IDs of ``list commit ref``, newest first."""
        return [c["id"] for c in self.json("list", "commit", ref, "--raw")]

    def write(self, rel: str, data: bytes | str) -> Path:
        """Create a local file under the working directory."""
        p = self.cwd / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p


def _make(tmp: Path) -> Tusk:
    (tmp / "work").mkdir(parents=True, exist_ok=True)
    return Tusk(tmp / "root", tmp / "work")


@pytest.fixture
def tusk(tmp_path: Path) -> Tusk:
    return _make(tmp_path)


@pytest.fixture(scope="module")
def module_tusk(tmp_path_factory: pytest.TempPathFactory) -> Tusk:
    """One root shared by a module's tests (for read-only checks against a fixed state)."""
    return _make(tmp_path_factory.mktemp("tusk"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpDir(NamedTuple):
    dir: Path
    url: str  # base URL without a trailing slash


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[HttpDir]:
    """A real HTTP server on 127.0.0.1 serving a fresh directory."""
    d = tmp_path / "www"
    d.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(d))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpDir(d, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
