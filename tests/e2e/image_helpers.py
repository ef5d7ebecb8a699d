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


def engine_clis() -> list[str]:
    """Every engine that answers (the image tests run once on each)."""
    from tusk.images import engines

    if os.environ.get("TUSK_ENGINE"):
        return engines.engines()
    found = [c for c in engines.CLIS if c in {Path(e).name for e in _all_engines()}]
    return [shutil.which(c) or c for c in found]


def _all_engines() -> list[str]:
    from tusk.images import engines

    return [p for n in engines.CLIS if (p := shutil.which(n)) and engines._answers(p)]


def engine_cli(cli: str | None = None) -> str:
    from tusk.images import engines

    found = [cli] if cli else engines.engines()
    if not found or not found[0]:
        missing("no container engine answers (install docker.io and start dockerd, or podman)")
    out = subprocess.run(["file", "-b", BUSYBOX], capture_output=True, text=True, check=False).stdout \
        if shutil.which("file") else "statically linked"
    if not os.path.exists(BUSYBOX) or "statically linked" not in out:
        missing("no static busybox (apt-get install busybox-static)")
    return str(found[0])


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
        out = subprocess.run([self.cli, "image", "inspect", "--format", "{{.Id}}", name],
                             capture_output=True, text=True, check=True).stdout.strip()
        return out if ":" in out else f"sha256:{out}"

    def login(self, registry: str, user: str, password: str, config: Path) -> None:
        """Log in with the login file in ``config`` (a DOCKER_CONFIG directory), not the
        machine's own."""
        r = subprocess.run([self.cli, "login", *self._tls(registry), "-u", user, "--password-stdin",
                            registry], input=password, text=True, capture_output=True,
                           env=login_env(config), check=False)
        assert r.returncode == 0, r.stderr

    def _tls(self, registry: str) -> list[str]:
        from tusk.images.engines import push_args

        return push_args(self.cli, registry)

    def push(self, name: str, config: Path | None = None,
             auth: tuple[str, str] | None = None) -> str:
        """Push ``name`` (with the login in ``config``); the manifest digest the registry
        gave it (asked of the registry, as any engine pushes the same)."""
        registry, rest = name.split("/", 1)
        env = login_env(config) if config else dict(os.environ)
        r = subprocess.run([self.cli, "push", *self._tls(registry), name], capture_output=True,
                           text=True, timeout=120, env=env, check=False)
        assert r.returncode == 0, r.stderr
        repo, tag = rest.rsplit(":", 1)
        resp = httpx.head(f"http://{registry}/v2/{repo}/manifests/{tag}", auth=auth, headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json,"
                      " application/vnd.oci.image.manifest.v1+json"})
        assert resp.status_code == 200, resp
        return resp.headers["docker-content-digest"]

    def remove(self, name: str) -> None:
        subprocess.run([self.cli, "rmi", "-f", name], capture_output=True, check=False)

    def cleanup(self) -> None:
        for name in self.made:
            self.remove(name)


def login_env(config: Path) -> dict[str, str]:
    """The environment that makes either engine keep its login in ``config``."""
    return {**os.environ, "DOCKER_CONFIG": str(config),
            "REGISTRY_AUTH_FILE": str(config / "config.json")}


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
