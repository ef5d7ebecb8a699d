"""Real images for the image tests: a container engine, a registry on 127.0.0.1, and images
built on the machine with no download (``FROM scratch`` plus Debian's static busybox).

Without an engine (Docker Engine or Podman that answers), a ``docker-registry`` binary or a
static busybox the tests are skipped, unless ``TUSK_REQUIRE_ENGINE=1`` (CI), where that fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

BUSYBOX = "/usr/bin/busybox"  # Debian's busybox-static


def missing(what: str) -> None:
    if os.environ.get("TUSK_REQUIRE_ENGINE") == "1":
        pytest.fail(f"TUSK_REQUIRE_ENGINE=1 but {what}")
    pytest.skip(what)


def engine_cli() -> str:
    from tusk.images import engines

    found = engines.engines()
    if not found:
        missing("no container engine answers (install docker.io and start dockerd, or podman)")
    out = subprocess.run(["file", "-b", BUSYBOX], capture_output=True, text=True, check=False).stdout \
        if shutil.which("file") else "statically linked"
    if not os.path.exists(BUSYBOX) or "statically linked" not in out:
        missing("no static busybox (apt-get install busybox-static)")
    return found[0]


class Images:
    """Builds, tags, pushes and removes images with the engine's own CLI, as a user does."""

    def __init__(self, cli: str) -> None:
        self.cli = cli
        self.made: list[str] = []

    def build(self, name: str, files: dict[str, str], lines: list[str] = ()) -> str:  # type: ignore[assignment]
        """Build ``name`` from scratch + busybox + ``files`` (path in the image -> text, made
        executable) + Dockerfile ``lines``; returns the image ID."""
        with tempfile.TemporaryDirectory() as ctx:
            c = Path(ctx)
            shutil.copy(BUSYBOX, c / "busybox")
            df = ["FROM scratch", "COPY busybox /bin/busybox",
                  'RUN ["/bin/busybox", "--install", "-s", "/bin"]']
            for i, (path, text) in enumerate(files.items()):
                (c / f"f{i}").write_text(text)
                os.chmod(c / f"f{i}", 0o755)
                df.append(f"COPY f{i} {path}")
            df += list(lines)
            (c / "Dockerfile").write_text("\n".join(df) + "\n")
            env = {**os.environ, "DOCKER_BUILDKIT": "0"}
            r = subprocess.run([self.cli, "build", "-q", "-t", name, str(c)], capture_output=True,
                               text=True, env=env, check=False, timeout=120)
            assert r.returncode == 0, r.stderr
        self.made.append(name)
        return self.id(name)

    def id(self, name: str) -> str:
        return subprocess.run([self.cli, "image", "inspect", "--format", "{{.Id}}", name],
                              capture_output=True, text=True, check=True).stdout.strip()

    def push(self, name: str, config: Path | None = None) -> str:
        """Push ``name`` (with the login in ``config``, a DOCKER_CONFIG directory); the manifest
        digest the registry gave it."""
        env = {**os.environ, **({"DOCKER_CONFIG": str(config)} if config else {})}
        r = subprocess.run([self.cli, "push", name], capture_output=True, text=True, timeout=120,
                           env=env, check=False)
        assert r.returncode == 0, r.stderr
        digests = subprocess.run([self.cli, "image", "inspect", "--format",
                                  "{{range .RepoDigests}}{{println .}}{{end}}", name],
                                 capture_output=True, text=True, check=True).stdout.split()
        repo = name.rsplit(":", 1)[0]
        return next(d.split("@", 1)[1] for d in digests if d.startswith(repo + "@"))

    def remove(self, name: str) -> None:
        subprocess.run([self.cli, "rmi", "-f", name], capture_output=True, check=False)

    def cleanup(self) -> None:
        for name in self.made:
            self.remove(name)


def unique(base: str) -> str:
    return f"{base}-{uuid.uuid4().hex[:8]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(tmp: Path, auth: tuple[str, str] | None = None) -> Iterator[str]:
    """A real registry (Debian's ``docker-registry``) on 127.0.0.1; yields ``host:port``.
    With ``auth`` (user, password) it asks for them (htpasswd, bcrypt)."""
    exe = shutil.which("docker-registry") or shutil.which("registry")
    if exe is None:
        missing("no docker-registry (apt-get install docker-registry)")
    port = _free_port()
    cfg = tmp / "registry.yml"
    auth_cfg = ""
    if auth is not None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        (tmp / "htpasswd").write_text(
            f"{auth[0]}:{crypt.crypt(auth[1], crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
        auth_cfg = f"""auth:
  htpasswd:
    realm: tusk-test
    path: {tmp / 'htpasswd'}
"""
    cfg.write_text(auth_cfg + f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {tmp / 'data'}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
""")
    log = open(tmp / "registry.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([exe, "serve", str(cfg)], stdout=log, stderr=log)
    try:
        end = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp / "registry.log").read_text()
            assert time.monotonic() < end, "the registry did not start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
