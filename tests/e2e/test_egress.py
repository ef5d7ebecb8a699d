"""Egress end to end: a pipeline's output commit copied to a directory or an S3 bucket.

S3 runs against a real moto server on a free local port (``ThreadedMotoServer``), reached by
the controller through ``AWS_ENDPOINT_URL`` like any S3-compatible store. Job completion is
awaited with ``tusk wait job``: ``wait commit`` returns as soon as the output commit is
sealed, which is *before* egress, so it would race the copy.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from pipeline_helpers import Pipes, bash, pfs_input, spec

pytestmark = pytest.mark.e2e

# Uppercase *.txt files into up/, copy anything else into raw/ (nested output paths).
SCRIPT = bash(
    'n=$(basename $in); case $n in'
    ' *.txt) mkdir -p /pfs/out/up; tr a-z A-Z < $in > /pfs/out/up/$n;;'
    ' *) mkdir -p /pfs/out/raw; cp $in /pfs/out/raw/$n;; esac'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(name="moto", scope="module")
def moto_fixture() -> Iterator[str]:
    """A moto S3 server for this module; yields its endpoint URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = s3(endpoint)
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            out[o["Key"]] = client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


@pytest.fixture(name="egress_pipes")
def egress_pipes_fixture(tusk: Any, moto: str) -> Iterator[Pipes]:
    p = Pipes(tusk, runner="process")
    p.t.env.update(AWS_ENDPOINT_URL=moto, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                   AWS_DEFAULT_REGION="us-east-1")
    for k in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        p.t.env.pop(k, None)
    yield p
    p.stop_controllers()


def wait_job(p: Pipes, pipeline: str, job_id: str, timeout: float = 60) -> str:
    """``tusk wait job``; returns the job's final state (the command exits 1 unless SUCCESS)."""
    r = p.t("wait", "job", f"{pipeline}@{job_id}", "--timeout", str(timeout), timeout=timeout + 30)
    assert "Traceback" not in r.stderr, r.stderr
    state = r.stdout.strip()
    assert (r.returncode == 0) == (state == "SUCCESS"), (r.returncode, r.stdout, r.stderr)
    return state


def dir_files(root: Path) -> dict[str, bytes]:
    return {"/" + f.relative_to(root).as_posix(): f.read_bytes()
            for f in sorted(root.rglob("*")) if f.is_file()}


def test_file_egress_copies_the_output_and_follows_new_commits(egress_pipes: Pipes,
                                                               tmp_path: Path) -> None:
    p = egress_pipes
    dest = tmp_path / "egress" / "out"  # does not exist yet: egress creates it
    big = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
    p.repo("in", {"a.txt": "alpha", "b.txt": "beta", "big.bin": big})
    p.create(spec("eg", pfs_input("in"), SCRIPT, egress={"URL": f"file://{dest}"}))
    out = p.wait("eg@master")[0]
    assert wait_job(p, "eg", out["id"]) == "SUCCESS"
    job = p.job("eg", out["id"])
    assert job["state"] == "SUCCESS" and job["reason"] == "" and job["finished_at"]
    expected = {"/up/a.txt": b"ALPHA", "/up/b.txt": b"BETA", "/raw/big.bin": big}
    assert p.tree("eg@master") == expected
    assert dir_files(dest) == expected  # exactly the output: no temporary files left behind

    # A new input commit changes one output and adds one: the directory follows.
    second = p.put("in", {"a.txt": "alpha two", "c.txt": "gamma"})
    out2 = p.wait(second)
    (eg2,) = [c for c in out2 if c["repo"] == "eg"]
    assert wait_job(p, "eg", eg2["id"]) == "SUCCESS"
    expected.update({"/up/a.txt": b"ALPHA TWO", "/up/c.txt": b"GAMMA"})
    assert p.tree("eg@master") == expected
    assert dir_files(dest) == expected

    # Egress overwrites but never deletes (as in Pachyderm): a retracted output stays there.
    third = p.delete("in", "/c.txt")
    (eg3,) = [c for c in p.wait(third) if c["repo"] == "eg"]
    assert wait_job(p, "eg", eg3["id"]) == "SUCCESS"
    assert "/up/c.txt" not in p.tree("eg@master")
    assert dir_files(dest)["/up/c.txt"] == b"GAMMA"


def test_file_egress_failure_fails_the_job_and_keeps_the_commit(egress_pipes: Pipes,
                                                                tmp_path: Path) -> None:
    p = egress_pipes
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the egress directory should be")
    p.repo("in", {"a.txt": "alpha"})
    p.create(spec("eg", pfs_input("in"), SCRIPT, egress={"URL": f"file://{blocker}/sub"}))
    out = p.wait("eg@master")[0]
    assert wait_job(p, "eg", out["id"]) == "FAILURE"
    job = p.job("eg", out["id"])
    assert job["reason"].startswith(f"egress to file://{blocker}/sub failed: ")
    assert str(blocker) in job["reason"]
    # The output itself was fine: the commit keeps it, without an error.
    assert out["error"] in ("", None)
    assert p.tree("eg@master") == {"/up/a.txt": b"ALPHA"}


def test_s3_egress_uploads_every_file_under_the_prefix(egress_pipes: Pipes, moto: str) -> None:
    p = egress_pipes
    s3(moto).create_bucket(Bucket="egress-ok")
    # Above egress.MULTIPART_THRESHOLD (16 MiB): goes up as a streamed multipart upload.
    big = os.urandom(17 * 1024 * 1024 + 5)
    p.repo("in", {"a.txt": "alpha", "b.txt": "beta", "big.bin": big})
    p.create(spec("eg", pfs_input("in"), SCRIPT, egress={"URL": "s3://egress-ok/runs/v1"}))
    out = p.wait("eg@master", timeout=120)[0]
    assert wait_job(p, "eg", out["id"], timeout=120) == "SUCCESS"
    got = objects(moto, "egress-ok")
    assert got == {"runs/v1/up/a.txt": b"ALPHA", "runs/v1/up/b.txt": b"BETA",
                   "runs/v1/raw/big.bin": big}


def test_s3_egress_to_a_missing_bucket_fails_the_job(egress_pipes: Pipes) -> None:
    p = egress_pipes
    p.repo("in", {"a.txt": "alpha"})
    # Pachyderm 2.x's newer spelling; same behaviour as URL.
    p.create(spec("eg", pfs_input("in"), SCRIPT,
                  egress={"object_storage": {"url": "s3://no-such-bucket/x"}}))
    out = p.wait("eg@master")[0]
    assert wait_job(p, "eg", out["id"]) == "FAILURE"
    job = p.job("eg", out["id"])
    assert job["reason"] == ('egress to s3://no-such-bucket/x failed:'
                             ' bucket "no-such-bucket" does not exist')
    assert job["finished_at"]
    assert out["error"] in ("", None)
    assert p.tree("eg@master") == {"/up/a.txt": b"ALPHA"}
    line = p.t("list", "job", "-p", "eg").stdout
    assert "FAILURE" in line and "no-such-bucket" in line


def test_sql_database_egress_is_refused_at_create_time(egress_pipes: Pipes) -> None:
    p = egress_pipes
    p.repo("in")
    path = p.spec_file(spec("eg", pfs_input("in"), SCRIPT,
                            egress={"sql_database": {"url": "snowflake://u@acct/db"}}))
    line = p.t.fail("create", "pipeline", "-f", str(path))
    assert "egress.sql_database: SQL egress is not supported" in line
    assert p.raw("list", "pipeline") == []


class BlackHole:
    """A TCP server that accepts connections and never answers: an S3 endpoint that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_egressing_is_visible_and_survives_a_controller_crash(egress_pipes: Pipes,
                                                             moto: str) -> None:
    """A controller killed mid-egress leaves the job EGRESSING with its output sealed; the next
    controller copies everything again and finishes the job."""
    p = egress_pipes
    s3(moto).create_bucket(Bucket="egress-crash")
    hole = BlackHole()
    p.t.env["AWS_ENDPOINT_URL"] = hole.url  # the first controller's uploads hang
    p.t.env["TUSK_NO_CONTROLLER"] = "1"
    p.repo("in", {"a.txt": "alpha", "b.txt": "beta"})
    p.create(spec("eg", pfs_input("in"), SCRIPT, egress={"URL": "s3://egress-crash/c"}))
    ctl = subprocess.Popen([p.t.exe, "controller", "--idle", "5"], env=p.t.env, cwd=p.t.cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (p.jobs("-p", "eg") and p.jobs("-p", "eg")[0]["state"] == "EGRESSING"):
            assert time.monotonic() < deadline, f"job never reached EGRESSING: {p.jobs('-p', 'eg')}"
            time.sleep(0.1)
        job = p.job("eg")
        assert job["finished_at"] is None
        # The output commit is already sealed with the whole output...
        assert p.raw("inspect", "commit", "eg@master")["state"].upper() == "FINISHED"
        assert p.tree("eg@master") == {"/up/a.txt": b"ALPHA", "/up/b.txt": b"BETA"}
        # ...but the job is not done: waiting for it times out.
        r = p.t("wait", "job", f"eg@{job['id']}", "--timeout", "0.5")
        assert r.returncode != 0 and "Traceback" not in r.stderr
        os.kill(ctl.pid, signal.SIGKILL)
        ctl.wait()
    finally:
        if ctl.poll() is None:
            ctl.kill()
            ctl.wait()
        hole.close()
    assert p.job("eg")["state"] == "EGRESSING"
    assert objects(moto, "egress-crash") == {}

    # The next controller (started by 'wait job', now with a working endpoint) redoes egress.
    p.t.env["AWS_ENDPOINT_URL"] = moto
    del p.t.env["TUSK_NO_CONTROLLER"]
    assert wait_job(p, "eg", job["id"]) == "SUCCESS"
    assert objects(moto, "egress-crash") == {"c/up/a.txt": b"ALPHA", "c/up/b.txt": b"BETA"}
    assert p.job("eg")["state"] == "SUCCESS"
