"""User code as an attacker: what a datum tries, and what it must never manage.

Each attack is a datum of a real pipeline run by the real controller (the sandbox runner,
skipped where bubblewrap cannot run; a few for the process runner). A probe writes what it
managed into ``/pfs/out/<probe>``; the test reads the output back and checks the host.

Guards against: capabilities inside the sandbox (remounting a read-only bind writable), tusk
roots, home directories and the controller's working directory being visible, tusk's
credentials in the environment, one datum changing what another pipeline reads through the
shared input cache, a datum exhausting memory, processes, ``/tmp`` or ``/pfs/out``, and the
network switch not cutting the network.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import uuid
from pathlib import Path

import pytest
from pipeline_helpers import (  # noqa: F401
    Pipes,
    bwrap_usable,
    pfs_input,
    pipes_fixture,
    process_pipes_fixture,
    spec,
)

pytestmark = pytest.mark.e2e
needs_bwrap = pytest.mark.skipif(not bwrap_usable(), reason="bubblewrap cannot create namespaces here")

# Probes: each prints its verdict to stdout, which the probe script stores as /pfs/out/<name>.
ATTACKS = {
    # No capability at all (the effective set is empty).
    "caps": "grep CapEff /proc/self/status | tr -d '\\t'",
    # Remount the input, a system directory and the output's parent writable, then write.
    "remount": (
        "for m in /pfs/data /usr /pfs; do mount -o remount,bind,rw $m 2>/dev/null"
        " && echo remounted $m; done;"
        " mount -t tmpfs x /pfs/data 2>/dev/null && echo mounted;"
        " (echo tampered > /pfs/data/data.txt) 2>/dev/null && echo wrote-input;"
        " chmod 666 /pfs/data/data.txt 2>/dev/null && echo chmod-input;"
        " (echo x > /usr/tusk-$MARK) 2>/dev/null && echo wrote-usr; echo done"
    ),
    # A user namespace of its own gives capabilities over nothing it was given.
    "nested": (
        "unshare -rm sh -c 'mount -o remount,bind,rw /pfs/data && echo tampered >"
        " /pfs/data/data.txt && echo wrote-input' 2>/dev/null; echo done"
    ),
    # Nothing of any root, home directory or the controller's working directory.
    "roots": (
        "for d in \"$ROOT\" \"$CWD\" \"$HOME_DIR/.tusk\" /root/.tusk; do"
        " [ -n \"$(ls -A \"$d\" 2>/dev/null)\" ] && echo visible $d; done;"
        " find / \\( -path /proc -o -path /sys -o -path /dev -o -path /usr \\) -prune -o"
        " \\( -name 'meta.db*' -o -name 'controller.lock' -o -name packs \\) -print 2>/dev/null;"
        # (software directories skipped: large, and no root lives there)
        " grep -rl \"$SECRET\" / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev"
        " --exclude-dir=usr --exclude-dir=opt --exclude-dir=.venv --exclude-dir=.pyenv"
        " 2>/dev/null; echo done"
    ),
    # No credential of tusk's in the environment.
    "env": "env | grep -i -E 'tusk_auth|aws_secret|aws_access|sekrit' ; echo done",
}


def attack_spec(name: str, p: Pipes, script_dir: Path, env: dict[str, str]) -> dict:
    """One datum per attack, crossed with the data repo; the probe script is a host file
    under ``script_dir`` (which must work from wherever the controller started)."""
    script = script_dir / "probe.sh"
    lines = ["#!/bin/sh", 'name=$(basename "$probes")', 'case "$name" in']
    lines += [f"  {k}) ( {v} ) > /pfs/out/$name 2>&1;;" for k, v in ATTACKS.items()]
    lines += ["esac"]
    script.write_text("\n".join(lines) + "\n")
    script.chmod(0o755)
    cross = {"cross": [pfs_input("probes", "/*"), pfs_input("data", "/")]}
    return spec(name, cross, ["sh", str(script)], datum_tries=1, transform={"env": env})


@needs_bwrap
def test_user_code_cannot_escape_or_see_what_is_not_its_own(pipes: Pipes, tmp_path: Path) -> None:
    p = pipes
    mark = uuid.uuid4().hex[:8]
    secret = f"another-repos-secret-{uuid.uuid4().hex}"
    # The root lies inside the directory of the spec's script, which the sandbox must show:
    # the root itself must stay hidden even there.
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    root = scripts / "root"
    p.t.env["TUSK_ROOT"] = str(root)
    p.t.root = root
    p.t.env["TUSK_AUTH_TOKEN"] = f"sekrit-token-{mark}"
    p.t.env["AWS_SECRET_ACCESS_KEY"] = f"sekrit-key-{mark}"
    p.t.env["AWS_ACCESS_KEY_ID"] = f"sekrit-id-{mark}"
    p.repo("data", {"data.txt": "input data\n"})
    p.repo("probes", dict.fromkeys(ATTACKS, ""))
    # Another repo whose bytes are in the input cache (a pipeline read them), and a second
    # repo holding the same bytes as 'data', read by another pipeline after the attacks.
    p.repo("secret", {"s.txt": secret + "\n"})
    p.create(spec("reads-secret", pfs_input("secret"), ["sh", "-c", "cp /pfs/secret/* /pfs/out/"]))
    p.wait("reads-secret@master")
    env = {"ROOT": str(root), "CWD": str(p.t.cwd), "HOME_DIR": os.path.expanduser("~"),
           "SECRET": secret, "MARK": mark}
    p.create(attack_spec("attack", p, scripts, env))
    p.wait("attack@master")
    out = p.text_tree("attack@master")
    assert out["/caps"].strip() == "CapEff:0000000000000000"
    assert out["/remount"].strip() == "done", out["/remount"]
    assert out["/nested"].strip() == "done", out["/nested"]
    assert out["/roots"].strip() == "done", out["/roots"]
    assert out["/env"].strip() == "done", out["/env"]
    assert not Path(f"/usr/tusk-{mark}").exists()
    # What other datums and pipelines read is unchanged.
    p.repo("other", {"same.txt": "input data\n"})
    p.create(spec("reads-other", pfs_input("other"), ["sh", "-c", "cp /pfs/other/* /pfs/out/"]))
    p.wait("reads-other@master")
    assert p.text_tree("reads-other@master") == {"/same.txt": "input data\n"}
    assert p.t.ok("get", "file", "data@master:/data.txt") == "input data\n"
    assert "0 problem(s)" in p.t.ok("fsck")


@needs_bwrap
def test_host_scripts_and_the_users_python_from_anywhere(pipes: Pipes, tmp_path: Path) -> None:
    """A script under /tmp runs whatever the controller's working directory; ``python3`` is
    the user's, not tusk's virtualenv, even when the virtualenv comes first on $PATH."""
    check_host_script(pipes, tmp_path)


def test_host_scripts_and_the_users_python_with_the_process_runner(
        process_pipes: Pipes, tmp_path: Path) -> None:
    check_host_script(process_pipes, tmp_path)


def check_host_script(p: Pipes, tmp_path: Path) -> None:
    venv_bin = str(Path(sys.executable).parent)
    p.t.env["PATH"] = f"{venv_bin}:{p.t.env.get('PATH', '/usr/bin:/bin')}"
    p.t.env["TUSK_AUTH_TOKEN"] = "sekrit"
    elsewhere = tmp_path / "elsewhere" / "code"
    elsewhere.mkdir(parents=True)
    (elsewhere / "helper.py").write_text("def shout(s):\n    return s.upper()\n")
    (elsewhere / "main.py").write_text(
        "import os, sys\nfrom helper import shout\n"
        "name = os.path.basename(os.environ['in'])\n"
        "data = open(os.environ['in']).read()\n"
        # written to a literal /pfs/out path, not one passed in argv
        "open('/pfs/out/' + name, 'w').write(shout(data))\n"
        "open('/pfs/out/python', 'w').write(sys.prefix)\n"
        "open('/pfs/out/token', 'w').write(os.environ.get('TUSK_AUTH_TOKEN', 'none'))\n")
    p.repo("in", {"a.txt": "hello\n"})
    p.create(spec("hosted", pfs_input("in"), ["python3", str(elsewhere / "main.py")]))
    p.wait("hosted@master")
    out = p.text_tree("hosted@master")
    assert out["/a.txt"] == "HELLO\n"
    assert os.path.realpath(out["/python"]) != os.path.realpath(sys.prefix), \
        "user code ran on tusk's own virtualenv interpreter"
    assert out["/token"] == "none"


def failed_reason(p: Pipes, name: str) -> str:
    commit = p.wait(f"{name}@master", ok=False)[0]
    assert commit["error"], commit
    job = p.job(name)
    assert job["state"] == "FAILURE", job
    (datum,) = [d for d in p.datums(name, job["id"]) if d["state"] == "FAILED"]
    return datum["reason"]


@needs_bwrap
def test_bounds_fail_the_datum_with_a_reason_that_names_them(pipes: Pipes) -> None:
    p = pipes
    p.t.env["TUSK_SANDBOX_PIDS"] = "64"
    p.t.env["TUSK_SANDBOX_TMP"] = "16Mi"
    p.repo("in", {"x": "1"})
    hog = "b = bytearray(512 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('survived')"
    p.create(spec("memory", pfs_input("in"), ["python3", "-c", hog], datum_tries=1,
                  resource_limits={"memory": "64Mi"}))
    p.create(spec("forks", pfs_input("in"),
                  ["sh", "-c", "for i in $(seq 300); do sleep 30 & done; wait"], datum_tries=1))
    p.create(spec("fills-tmp", pfs_input("in"),
                  ["sh", "-c", "head -c 40000000 /dev/zero > /tmp/big"], datum_tries=1))
    p.create(spec("fills-out", pfs_input("in"),
                  ["sh", "-c", "head -c 40000000 /dev/zero > /pfs/out/big"], datum_tries=1,
                  resource_limits={"disk": "16Mi"}))
    reasons = {n: failed_reason(p, n) for n in ("memory", "forks", "fills-tmp", "fills-out")}
    assert "out of memory" in reasons["memory"] and "64 MiB" in reasons["memory"] \
        and "resource_limits.memory" in reasons["memory"], reasons["memory"]
    assert "process limit of 64" in reasons["forks"], reasons["forks"]
    assert "more than 16 MiB to /tmp" in reasons["fills-tmp"], reasons["fills-tmp"]
    assert "more than 16 MiB to /pfs/out" in reasons["fills-out"], reasons["fills-out"]
    assert p.tree("fills-out@master") == {}
    # A pipeline within its bounds runs on the same controller.
    p.create(spec("fine", pfs_input("in"), ["sh", "-c", "cp /pfs/in/x /pfs/out/x"]))
    p.wait("fine@master")
    assert p.text_tree("fine@master") == {"/x": "1"}


def test_a_bad_resource_limit_is_refused_at_create(pipes: Pipes) -> None:
    p = pipes
    p.repo("in", {"x": "1"})
    line = p.t.fail("create", "pipeline", "-f", str(p.spec_file(spec(
        "bad", pfs_input("in"), ["true"], resource_limits={"memory": "lots"}))))
    assert "resource_limits.memory" in line and "512Mi" in line
    assert p.t.json("list", "pipeline", "--raw") == []


class _Listener:
    """A TCP server on 127.0.0.1 that counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()


@needs_bwrap
def test_the_network_is_shared_unless_cut(pipes: Pipes) -> None:
    p = pipes
    server = _Listener()
    try:
        p.repo("in", {"x": "1"})
        code = ("import socket, sys\n"
                "try:\n socket.create_connection(('127.0.0.1', int(sys.argv[1])), 5); r = 'open'\n"
                "except OSError: r = 'cut'\n"
                "open('/pfs/out/net', 'w').write(r)\n")
        probe = ["python3", "-c", code, str(server.port)]
        p.create(spec("net", pfs_input("in"), probe))
        p.wait("net@master")
        assert p.text_tree("net@master") == {"/net": "open"}
        p.stop_controllers()
        p.t.env["TUSK_SANDBOX_NETWORK"] = "none"
        p.create(spec("nonet", pfs_input("in"), probe))
        p.wait("nonet@master")
        assert p.text_tree("nonet@master") == {"/net": "cut"}
        assert server.hits == 1
    finally:
        server.sock.close()


@needs_bwrap
def test_fsck_finds_and_removes_a_damaged_input_cache_file(pipes: Pipes) -> None:
    p = pipes
    p.repo("in", {"x.txt": "the real bytes\n"})
    p.create(spec("copy", pfs_input("in"), ["sh", "-c", "cp /pfs/in/x.txt /pfs/out/"]))
    p.wait("copy@master")
    cached = [f for f in (p.root / "cache").rglob("*") if f.is_file()]
    assert len(cached) == 1
    os.chmod(cached[0], 0o644)  # damage from outside any datum
    cached[0].write_text("tampered bytes\n")
    r = p.t("fsck")
    assert r.returncode == 1 and "input cache file" in r.stdout, r.stdout
    assert "0 problem(s)" in p.t.ok("fsck")
    # The next reader gets the store's bytes again.
    p.create(spec("copy2", pfs_input("in"), ["sh", "-c", "cp /pfs/in/x.txt /pfs/out/"]))
    p.wait("copy2@master")
    assert p.text_tree("copy2@master") == {"/x.txt": "the real bytes\n"}
