"""End to end against a real ``tusk serve``: what streams over HTTP.

Directories go up as one tar stream (``put file -r``, ``--untar``) and land exactly as a local
put would; ``subscribe commit``, ``subscribe job`` and ``logs -f`` print events while they
happen, not when the command ends.
"""

from __future__ import annotations

import io
import json
import queue
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from server_helpers import remote_tusk, running_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def remote(tusk: Any) -> Iterator[Any]:
    tusk.env["TUSK_RUNNER"] = "process"  # the slow job waits for a file the test makes in /tmp
    with running_server(tusk) as server:
        yield remote_tusk(tusk, server)


class Lines:
    """The stdout lines of a running command, read in a thread, so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.q.put(line.rstrip("\n"))

    def next_matching(self, pred: Any, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.q.empty():
                    raise AssertionError(f"command exited ({self.proc.returncode}) before the line came")
                continue
            if pred(line):
                return line
        raise AssertionError("no matching line in time")


@contextmanager
def streaming(remote: Any, *args: str) -> Iterator[Lines]:
    proc = subprocess.Popen([remote.exe, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=remote.env, cwd=remote.cwd)
    try:
        yield Lines(proc)
    finally:
        proc.kill()
        proc.wait()


def test_put_directory_goes_as_one_tar_stream(remote: Any, tusk: Any) -> None:
    remote.ok("create", "repo", "many")
    for i in range(2500):
        remote.write(f"tree/d{i % 7}/f{i:05d}.txt", f"file {i}\n")
    remote.write("tree/.hidden", "dot file")
    big = bytes(range(256)) * (3 * 4096 + 17)  # about 3 MB: several upload pieces
    remote.write("tree/big.bin", big)
    remote.ok("put", "file", "many@master:/up", "-r", "-f", "tree")
    assert len(remote.commit_ids("many@master")) == 1
    # The same tree put locally into another repo has the same paths and hashes.
    tusk.ok("create", "repo", "local")
    tusk.ok("put", "file", "local@master:/up", "-r", "-f", str(remote.cwd / "tree"))
    got = {f["path"]: f.get("hash") for f in remote.json("glob", "file", "many@master:/**", "--raw")}
    want = {f["path"]: f.get("hash") for f in tusk.json("glob", "file", "local@master:/**", "--raw")}
    assert len(got) == len(want) > 2502 and got == want
    assert remote.ok("get", "file", "many@master:/up/.hidden") == "dot file"
    assert remote("get", "file", "many@master:/up/big.bin", binary=True).stdout == big


def test_untar_sends_the_archive_as_it_is(remote: Any) -> None:
    remote.ok("create", "repo", "tars")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("a.txt", b"A"), ("sub/b.txt", b"BB")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (remote.cwd / "x.tar.gz").write_bytes(buf.getvalue())
    remote.ok("put", "file", "tars@master:/in/", "--untar", "-f", "x.tar.gz")
    assert remote.ok("get", "file", "tars@master:/in/sub/b.txt") == "BB"
    assert sorted(f["path"] for f in remote.json("glob", "file", "tars@master:/in/**", "--raw")) == [
        "/in/a.txt", "/in/sub", "/in/sub/b.txt"]
    (remote.cwd / "bad.tar").write_bytes(b"this is not a tar archive" * 100)
    assert "not a readable tar archive" in remote.fail("put", "file", "tars@master:/", "--untar",
                                                      "-f", "bad.tar")
    assert len(remote.commit_ids("tars@master")) == 1  # the bad archive left no commit


def test_subscribe_commit_streams_while_commits_happen(remote: Any) -> None:
    remote.ok("create", "repo", "feed")
    with streaming(remote, "subscribe", "commit", "feed@master", "--new", "--raw") as lines:
        time.sleep(0.5)  # the subscription has taken its starting point
        for n in range(3):
            cid = remote.commit_ids("feed@master")[0] if n else None
            remote.ok("put", "file", f"feed@master:/f{n}", "-f", "-", input=str(n))
            new = remote.commit_ids("feed@master")[0]
            assert new != cid
            line = lines.next_matching(lambda s, new=new: json.loads(s)["id"] == new)
            assert json.loads(line)["repo"] == "feed"


def test_subscribe_job_and_follow_logs_while_a_job_runs(remote: Any) -> None:
    remote.ok("create", "repo", "words")
    spec = {"pipeline": {"name": "slow"}, "input": {"pfs": {"repo": "words", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", (
                "echo started $(ls /pfs/words); "
                "while [ ! -e /tmp/tusk-release-$(ls /pfs/words) ]; do sleep 0.1; done; "
                "echo finished; cp /pfs/words/* /pfs/out/")]}}
    remote.write("slow.json", json.dumps(spec))
    remote.ok("create", "pipeline", "-f", "slow.json")
    token = f"{time.time_ns()}"
    release = f"/tmp/tusk-release-{token}"
    try:
        with streaming(remote, "subscribe", "job", "slow", "--raw") as jobs:
            remote.ok("put", "file", f"words@master:/{token}", "-f", "-", input="x")
            cid = remote.commit_ids("words@master")[0]
            running = jobs.next_matching(
                lambda s: json.loads(s)["id"] == cid and json.loads(s)["state"] == "RUNNING")
            assert json.loads(running)["pipeline"] == "slow"
            with streaming(remote, "logs", "-p", "slow", "-j", cid, "-f") as logs:
                logs.next_matching(lambda s: f"started {token}" in s)
                open(release, "w").close()  # the job can end now
                logs.next_matching(lambda s: "finished" in s)
                assert logs.proc.wait(timeout=60) == 0  # follow ends with the job
            done = jobs.next_matching(lambda s: json.loads(s)["id"] == cid and json.loads(s)["state"] == "SUCCESS")
            assert json.loads(done)["processed"] == 1
    finally:
        import os

        if os.path.exists(release):
            os.unlink(release)


def test_console_download_links_are_one_use_and_need_the_token(remote: Any) -> None:
    import httpx
    from server_helpers import TOKEN

    from tusk.api import codec
    from tusk.pfs.refs import parse_file

    remote.ok("create", "repo", "files")
    data = bytes(range(256)) * 12_000  # 3 MB: several pieces
    (remote.cwd / "big.bin").write_bytes(data)
    remote.ok("put", "file", "files@master:/dir/big.bin", "-f", "big.bin")
    url = remote.env["TUSK_ADDRESS"]

    def ask(path: str, token: str | None = TOKEN) -> httpx.Response:
        body = {"ref": codec.encode(parse_file(f"files@master:{path}"))}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{url}/v1/console/download_link", json=body, headers=headers)

    assert ask("/dir/big.bin", token=None).status_code == 401
    assert ask("/dir").status_code == 400 and "directory" in ask("/dir").json()["error"]["message"]
    assert ask("/nope").status_code == 404
    link = ask("/dir/big.bin").json()["result"]
    # A newer commit does not change what the link gives: it names the commit the page showed.
    remote.ok("put", "file", "files@master:/dir/big.bin", "-f", "-", input="replaced")
    got = httpx.get(f"{url}{link}")  # no token: the link is the credential
    assert got.status_code == 200 and got.content == data
    assert "big.bin" in got.headers["content-disposition"]
    assert httpx.get(f"{url}{link}").status_code == 404  # used once
