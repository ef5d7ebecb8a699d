"""The sandbox runner's promises, probed by user code (skipped where bubblewrap cannot run).

Code written for Pachyderm, with hard-coded ``/pfs/<input>`` and ``/pfs/out``, runs unchanged;
inputs are read-only; nothing the code does lands outside ``/pfs/out``; a symlink left in the
output is stored as what it points to when that is an input or output file, and refuses the
datum otherwise, without the host file ever being read. Symlink handling is shared with the
process runner, which is checked too.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pipeline_helpers import (  # noqa: F401
    Pipes,
    bash,
    bwrap_usable,
    pfs_input,
    pipes_fixture,
    process_pipes_fixture,
    spec,
)

pytestmark = pytest.mark.e2e
needs_bwrap = pytest.mark.skipif(not bwrap_usable(), reason="bubblewrap cannot create namespaces here")

# Each probe is one datum (see probe_spec), with the data repo crossed in.
PROBES = {
    "hardcoded": "cp /pfs/data/data.txt /pfs/out/hardcoded.txt",
    "write_input": (
        "r=refused; (echo x > /pfs/data/data.txt) 2>/dev/null && r=overwrote;"
        " (touch /pfs/data/new) 2>/dev/null && r=created;"
        " mount -o remount,rw /pfs/data 2>/dev/null && r=remounted;"
        " echo $r > /pfs/out/write_input"
    ),
    "write_host": (
        "r=refused; for f in \"$ROOT/escape\" \"$HOSTDIR/escape\" /etc/$MARK /usr/$MARK; do"
        " (echo x > \"$f\") 2>/dev/null && r=\"wrote $f\"; done;"
        " echo private > /tmp/$MARK; echo \"$r\" > /pfs/out/write_host"
    ),
    "links": (
        "ln -s /pfs/data/data.txt /pfs/out/abs_link;"
        " ln -s ../data/data.txt /pfs/out/rel_link;"
        " echo mine > /pfs/out/real; ln -s real /pfs/out/out_link;"
        " mkdir /pfs/out/dir; ln -s ../out_link /pfs/out/dir/chained"
    ),
}
ESCAPES = {
    "passwd": "ln -s /etc/passwd /pfs/out/passwd",
    "hostfile": "ln -s \"$HOSTDIR/secret\" /pfs/out/secret",
    # A link through a linked directory: 'a' is stored first, so only resolving 'd' the way the
    # user code saw it (never through the host) keeps the host file unread.
    "through_dir": "ln -s \"$HOSTDIR\" /pfs/out/z; ln -s z/secret /pfs/out/a",
}


def probe_spec(name: str, p: Pipes, mark: str, probes: dict[str, str]) -> dict:
    """One datum per probe; the scripts travel in ``stdin`` (where the process runner rewrites
    ``/pfs``), and each datum runs the one named by its probe file."""
    cross = {"cross": [pfs_input("probes", "/*"), pfs_input("data", "/")]}
    env = {"ROOT": str(p.root), "HOSTDIR": str(Path(p.t.cwd) / "host"), "MARK": mark}
    stdin = ["case $(basename $probes) in"]
    stdin += [f"{probe}) {script};;" for probe, script in probes.items()]
    stdin += ["esac"]
    return spec(name, cross, ["bash"], stdin=stdin, datum_tries=1, transform={"env": env})


def setup(p: Pipes, probes: dict[str, str]) -> str:
    host = Path(p.t.cwd) / "host"
    host.mkdir()
    secret = f"host-secret-{uuid.uuid4().hex}"
    (host / "secret").write_text(secret)
    p.repo("data", {"data.txt": "input data\n"})
    p.repo("probes", dict.fromkeys(probes, ""))
    return secret


@needs_bwrap
def test_sandbox_semantics(pipes: Pipes) -> None:
    p = pipes
    mark = f"tusk-probe-{uuid.uuid4().hex[:8]}"
    setup(p, PROBES)
    p.create(probe_spec("probe", p, mark, PROBES))
    p.wait("probe@master")
    out = p.text_tree("probe@master")
    try:
        assert out["/hardcoded.txt"] == "input data\n"
        assert out["/write_input"] == "refused\n"
        assert out["/write_host"] == "refused\n"
        assert not (p.root / "escape").exists()
        assert not (Path(p.t.cwd) / "host" / "escape").exists()
        assert not Path(f"/tmp/{mark}").exists()  # /tmp inside the sandbox is private
        # Links to inputs are stored as the input's content, links inside out as their target's.
        assert out["/abs_link"] == out["/rel_link"] == "input data\n"
        assert out["/out_link"] == out["/dir/chained"] == out["/real"] == "mine\n"
    finally:
        for leftover in (Path("/etc") / mark, Path("/usr") / mark):
            assert not leftover.exists(), f"the sandbox let user code write {leftover}"
    assert p.job("probe")["state"] == "SUCCESS"


def check_escapes_refused(p: Pipes) -> None:
    secret = setup(p, ESCAPES)
    p.create(probe_spec("escape", p, "unused", ESCAPES))
    commit = p.wait("escape@master", ok=False)[0]
    assert commit["error"]
    job = p.job("escape")
    assert job["state"] == "FAILURE" and job["failed"] == 3
    reasons = {d["files"][0]: d["reason"] for d in p.datums("escape", job["id"])
               if d["files"][0].startswith("probes:")}
    assert "/passwd is a symlink to /etc/passwd" in reasons["probes:/passwd"]
    assert "outside /pfs/out" in reasons["probes:/hostfile"]
    assert "outside /pfs/out" in reasons["probes:/through_dir"]
    assert p.tree("escape@master") == {}
    # The host file was never read into storage.
    for f in (p.root).rglob("*"):
        if f.is_file() and f.stat().st_size < (1 << 20):
            assert secret.encode() not in f.read_bytes(), f"host secret found in {f}"


@needs_bwrap
def test_output_symlinks_out_of_the_sandbox_are_refused(pipes: Pipes) -> None:
    check_escapes_refused(pipes)


def test_output_symlinks_are_refused_by_the_process_runner(process_pipes: Pipes) -> None:
    check_escapes_refused(process_pipes)
