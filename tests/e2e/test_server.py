"""End to end: the CLI against a real ``tusk serve`` subprocess (issue 5).

Every command runs with ``TUSK_ADDRESS`` pointing at the server and a *different*, empty
``TUSK_ROOT``, so the data can only have come through the API. Also: auth, error statuses and
messages, contexts, many concurrent writers, and streaming of a large file with bounded memory
on both sides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from pipeline_helpers import Pipes, bash, pfs_input, spec, until
from server_helpers import TOKEN, remote_tusk, running_server, vm_hwm_kb

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tusk: Any) -> Any:
    with running_server(tusk) as s:
        yield s


@pytest.fixture
def remote(tusk: Any, server: Any) -> Any:
    return remote_tusk(tusk, server)


def test_repo_commands(remote: Any, tusk: Any) -> None:
    remote.ok("create", "repo", "images", "-d", "pictures")
    remote.ok("create", "repo", "other")
    names = [r["name"] for r in remote.json("list", "repo", "--raw")]
    assert sorted(names) == ["images", "other"]
    assert "Description: pictures" in remote.ok("inspect", "repo", "images")
    remote.ok("delete", "repo", "other")
    assert [r["name"] for r in remote.json("list", "repo", "--raw")] == ["images"]
    # The data is in the server's root, not in the client's.
    assert [r["name"] for r in tusk.json("list", "repo", "--raw")] == ["images"]
    # Errors: the same one line and exit code as locally.
    line = remote.fail("inspect", "repo", "nope")
    assert line == "tusk: repo nope not found; create it with 'tusk create repo nope'"
    assert remote("inspect", "repo", "nope").returncode == 3
    assert remote("create", "repo", "images").returncode == 4
    assert remote.fail("create", "repo", "bad name!").startswith("tusk: ")


def test_file_commands(remote: Any) -> None:
    remote.ok("create", "repo", "data")
    remote.write("one.txt", "one\n")
    remote.write("tree/a.txt", "a")
    remote.write("tree/sub/b.txt", "bb")
    remote.ok("put", "file", "data@master:/one.txt", "-f", "one.txt")
    remote.ok("put", "file", "data@master", "-r", "-f", "tree")
    remote.ok("put", "file", "data@master:/in.txt", "-f", "-", input="from stdin")
    assert remote.ok("get", "file", "data@master:/one.txt") == "one\n"
    assert remote.ok("get", "file", "data@master:/in.txt") == "from stdin"
    assert remote.ok("get", "file", "data@master:/one.txt", "--offset", "1") == "ne\n"
    remote.ok("get", "file", "data@master:/tree", "-r", "-o", "out")
    assert (remote.cwd / "out" / "sub" / "b.txt").read_text() == "bb"
    remote.ok("get", "file", "data@master:/one.txt", "-o", "copy.txt")
    assert (remote.cwd / "copy.txt").read_text() == "one\n"
    listing = remote.json("list", "file", "data@master", "--raw")
    assert [(f["path"], f["type"]) for f in listing] == [
        ("/in.txt", "file"), ("/one.txt", "file"), ("/tree", "dir")]
    assert [f["path"] for f in remote.json("list", "file", "data@master:/tree", "--raw")] == [
        "/tree/a.txt", "/tree/sub"]
    assert len(remote.commit_ids("data@master")) == 3  # one commit per put file
    assert remote.fail("get", "file", "data@master:/missing.txt").startswith("tusk: file /missing.txt")
    assert remote.fail("put", "file", "data@master:/x", "-f", "nonexistent").startswith("tusk: ")


def test_commit_commands(remote: Any) -> None:
    remote.ok("create", "repo", "r")
    cid = remote.ok("start", "commit", "r@master").strip()
    remote.ok("put", "file", f"r@{cid}:/a.txt", "-f", "-", input="A")
    remote.ok("put", "file", f"r@{cid}:/b.txt", "-f", "-", input="B")
    assert remote.json("inspect", "commit", f"r@{cid}", "--raw")["state"] == "STARTED"
    remote.ok("finish", "commit", f"r@{cid}")
    info = remote.json("inspect", "commit", f"r@{cid}", "--raw")
    assert info["state"] == "FINISHED" and info["file_count"] == 2
    waited = remote.json("wait", "commit", f"r@{cid}", "--raw")
    assert waited[0]["id"] == cid
    assert remote.json("wait", "commit", cid, "--raw")[0]["id"] == cid  # a commit set
    assert remote.commit_ids("r@master") == [cid]
    assert remote.fail("finish", "commit", f"r@{cid}").startswith("tusk: ")


def test_pipeline_commands(remote: Any) -> None:
    remote.ok("create", "repo", "words")
    remote.ok("put", "file", "words@master:/a.txt", "-f", "-", input="hello")
    spec = {"pipeline": {"name": "upper"}, "input": {"pfs": {"repo": "words", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", (
                "for f in /pfs/words/*; do tr a-z A-Z < $f > /pfs/out/$(basename $f);"
                " echo did $f; done")]}}
    remote.write("upper.json", json.dumps(spec))
    remote.ok("create", "pipeline", "-f", "upper.json")
    assert [p["name"] for p in remote.json("list", "pipeline", "--raw")] == ["upper"]
    assert "Name: upper" in remote.ok("inspect", "pipeline", "upper")
    remote.ok("put", "file", "words@master:/b.txt", "-f", "-", input="world")
    cid = remote.commit_ids("words@master")[0]
    commits = remote.json("wait", "commit", cid, "--raw", timeout=120)
    assert {c["repo"] for c in commits} == {"words", "upper"}
    assert remote.ok("wait", "job", f"upper@{cid}", timeout=120).strip() == "SUCCESS"
    jobs = remote.json("list", "job", "-p", "upper", "--raw")
    assert cid in [j["id"] for j in jobs] and all(j["state"] == "SUCCESS" for j in jobs)
    datums = remote.json("list", "datum", f"upper@{cid}", "--raw")
    assert sorted(d["state"] for d in datums) == ["SKIPPED", "SUCCESS"]
    ran = next(d for d in datums if d["state"] == "SUCCESS")
    shown = remote.json("inspect", "datum", f"upper@{cid}", ran["id"][:10], "--raw")
    assert shown["id"] == ran["id"] and shown["files"] == ["words:/b.txt"] and shown["stderr"] == []
    assert remote.ok("get", "file", "upper@master:/b.txt") == "WORLD"
    logs = remote.ok("logs", "-p", "upper", "-j", cid)
    assert "did /pfs/words/b.txt" in logs
    assert remote.fail("create", "pipeline", "-f", "upper.json").startswith("tusk: pipeline upper already")


def test_pipeline_in_a_transaction_through_the_server(remote: Any) -> None:
    """create pipeline inside a transaction is queued on the server and applied by its finish."""
    remote.ok("create", "repo", "words")
    remote.ok("put", "file", "words@master:/a.txt", "-f", "-", input="hi")
    spec = {"pipeline": {"name": "copy"}, "input": {"pfs": {"repo": "words", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", "cp /pfs/words/* /pfs/out/"]}}
    remote.write("copy.json", json.dumps(spec))
    txn = remote.ok("start", "transaction").strip()
    remote.ok("create", "pipeline", "-f", "copy.json")
    assert remote.json("list", "pipeline", "--raw") == []
    remote.ok("finish", "transaction")
    assert [j["id"] for j in remote.json("list", "job", "-p", "copy", "--raw")] == [txn]
    remote.json("wait", "commit", txn, "--raw", timeout=120)
    assert remote.ok("get", "file", "copy@master:/a.txt") == "hi"


def test_internal_commands_say_not_available(remote: Any) -> None:
    line = remote.fail("controller")
    assert line.startswith("tusk: 'tusk controller' is not available against a server yet")


def test_auth(server: Any, remote: Any) -> None:
    r = httpx.post(f"{server.url}/v1/pfs/list_repos", json={})
    assert r.status_code == 401
    r = httpx.post(f"{server.url}/v1/pfs/list_repos", json={}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = httpx.post(f"{server.url}/v1/pfs/list_repos", json={},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json() == {"result": []}
    assert httpx.get(f"{server.url}/v1/health").status_code == 200
    assert "/v1/pfs/create_repo" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
    remote.env["TUSK_AUTH_TOKEN"] = "wrong"
    assert "auth token" in remote.fail("list", "repo")


def test_generated_token_and_no_auth(tusk: Any) -> None:
    with running_server(tusk, token=None) as s:
        out = s.log.read_text()
        token = out.split("auth token: ", 1)[1].split()[0]
        assert httpx.post(f"{s.url}/v1/pfs/list_repos", json={}).status_code == 401
        ok = httpx.post(f"{s.url}/v1/pfs/list_repos", json={}, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    with running_server(tusk, token=None, args=("--no-auth",)) as s:
        assert httpx.post(f"{s.url}/v1/pfs/list_repos", json={}).status_code == 200


def test_one_server_per_root(tusk: Any, server: Any) -> None:
    # The server holds the controller lock: a second one on the same root refuses in one line.
    line = tusk.fail("serve", "--address", "127.0.0.1:1", "--no-auth")
    assert "another 'tusk serve' already runs" in line


def test_http_errors(server: Any) -> None:
    h = {"Authorization": f"Bearer {TOKEN}"}
    post = lambda path, body: httpx.post(f"{server.url}{path}", json=body, headers=h)
    r = post("/v1/pfs/inspect_repo", {"ref": {"__type__": "RepoRef", "project": "default", "repo": "x"}})
    assert r.status_code == 404
    assert r.json()["error"] == {"type": "NotFound",
                                 "message": "repo x not found; create it with 'tusk create repo x'"}
    r = post("/v1/pfs/inspect_repo", {"nope": 1})
    assert r.status_code == 400 and "inspect_repo" in r.json()["error"]["message"]
    r = post("/v1/pfs/inspect_repo", {"ref": {"__type__": "os.system"}})
    assert r.status_code == 400 and "unknown type" in r.json()["error"]["message"]
    assert post("/v1/pfs/not_a_method", {}).status_code == 404
    assert post("/v1/pfs/_repo_row", {}).status_code == 404  # only the allow-list exists
    r = httpx.post(f"{server.url}/v1/pfs/list_repos", content=b"{not json", headers=h)
    assert r.status_code == 400
    # A string where a RepoRef belongs is the caller's mistake (it was a 500 once): a 400 that
    # says what the argument takes, and the server serves on. (More in test_server_requests.)
    r = post("/v1/pfs/inspect_repo", {"ref": "x"})
    assert r.status_code == 400
    assert r.json()["error"] == {"type": "InvalidArgument", "message": (
        'inspect_repo.ref: expected a RepoRef (an object with __type__, project, repo), got "x"')}
    assert post("/v1/pfs/list_repos", {}).status_code == 200


def test_context_commands(tusk: Any, server: Any) -> None:
    c = remote_tusk(tusk, server)
    del c.env["TUSK_ADDRESS"], c.env["TUSK_AUTH_TOKEN"]
    c.ok("create", "repo", "local-only")  # no context yet: the (client's own) local root
    c.ok("context", "create", "lab", "--address", server.url, "--auth-token", TOKEN)
    listed = c.json("context", "list", "--raw")
    assert [(x["name"], x["active"]) for x in listed] == [("local", True), ("lab", False)]
    c.ok("context", "use", "lab")
    c.ok("create", "repo", "on-server")
    assert [r["name"] for r in c.json("list", "repo", "--raw")] == ["on-server"]
    assert [r["name"] for r in tusk.json("list", "repo", "--raw")] == ["on-server"]
    marked = [line.split() for line in c.ok("context", "list").splitlines() if line.startswith("*")]
    assert [m[1] for m in marked] == ["lab"]
    assert oct(os.stat(c.env["TUSK_CONFIG"]).st_mode & 0o777) == "0o600"
    c.ok("context", "use", "local")
    assert [r["name"] for r in c.json("list", "repo", "--raw")] == ["local-only"]
    assert c.fail("context", "use", "nope").startswith("tusk: context nope not found")
    assert c.fail("context", "create", "lab", "--address", server.url).startswith("tusk: context lab already")


def test_concurrent_writers_lose_nothing(tusk: Any, server: Any) -> None:
    import tusk as sdk

    setup = sdk.Client(server.url, auth_token=TOKEN)
    setup.pfs.create_repo("shared")
    n_clients, n_commits = 8, 6
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            client = sdk.Client(server.url, auth_token=TOKEN)
            branch = "master" if i % 2 == 0 else f"b{i}"  # four on one branch, four on their own
            for k in range(n_commits):
                client.pfs.put_file(f"shared@{branch}:/w{i}/f{k}.txt", f"{i}-{k}".encode())
            client.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    master = setup.pfs.list_commit("shared@master")
    assert len(master) == 4 * n_commits
    files = list(setup.pfs.walk_file("shared@master:/"))
    assert len(files) == 4 * n_commits
    for i in range(1, n_clients, 2):
        assert len(setup.pfs.list_commit(f"shared@b{i}")) == n_commits
        got = {f.path for f in setup.pfs.walk_file(f"shared@b{i}:/")}
        assert got == {f"/w{i}/f{k}.txt" for k in range(n_commits)}
    for i in range(0, n_clients, 2):
        for k in range(n_commits):
            assert setup.pfs.get_file(f"shared@master:/w{i}/f{k}.txt") == f"{i}-{k}".encode()


CLIENT_SCRIPT = r"""
import hashlib, os, sys
import tusk
src, dst = sys.argv[1], sys.argv[2]
c = tusk.Client()
c.pfs.create_repo("big")
c.pfs.put_file("big@master:/big.bin", src)
h = hashlib.blake2b()
with open(dst, "wb") as out:
    for piece in c.pfs.read_file("big@master:/big.bin"):
        out.write(piece)
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(line.split()[1])
"""


def test_large_file_streams_with_bounded_memory(tusk: Any, server: Any) -> None:
    size = 300 << 20
    src = Path(tusk.cwd) / "big.bin"
    with open(src, "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(size >> 20))
    before = vm_hwm_kb(server.proc.pid)
    env = remote_tusk(tusk, server).env
    dst = Path(tusk.cwd) / "back.bin"
    p = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT, str(src), str(dst)], env=env,
                       capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, p.stderr
    client_peak_mb = int(p.stdout.split()[-1]) / 1024
    server_peak_mb = vm_hwm_kb(server.proc.pid) / 1024
    print(f"300 MB up and down: client peak {client_peak_mb:.0f} MB, server peak {server_peak_mb:.0f} MB")
    assert dst.stat().st_size == size
    with open(src, "rb") as a, open(dst, "rb") as b:
        while True:
            x, y = a.read(1 << 22), b.read(1 << 22)
            assert x == y
            if not x:
                break
    # Neither side held the file: peaks stay far below its 300 MB.
    assert client_peak_mb < 200, f"client peak RSS {client_peak_mb:.0f} MB"
    assert server_peak_mb < 200, f"server peak RSS {server_peak_mb:.0f} MB (was {before / 1024:.0f})"
    src.unlink()
    dst.unlink()


def test_serve_takes_over_from_a_background_controller(tusk: Any) -> None:
    """Right after a pipeline ran through the CLI its background controller idles (here for a
    minute); 'tusk serve' answers at once anyway and its own controller takes over."""
    p = Pipes(tusk, runner="process")
    p.t.env["TUSK_CONTROLLER_IDLE"] = "60"
    try:
        p.repo("data", {"a.txt": "a"})
        p.create(spec("copy", pfs_input("data"), bash("cp $data /pfs/out/")))
        p.wait("copy@master")
        background = p.controller_pids()
        assert background, "the CLI should have started a background controller"
        with running_server(tusk) as s:  # up at once: wait_until_up fails on an early exit
            remote = remote_tusk(tusk, s)
            # The background controller is asked to go and does; the server's takes over.
            until(lambda: not any(os.path.exists(f"/proc/{pid}") and _running(pid)
                                  for pid in background), timeout=20, what="the hand-over")
            remote.ok("put", "file", "data@master:/b.txt", "-f", "-", input="b")
            r = remote("wait", "commit", "copy@master", "--timeout", "30")
            assert r.returncode == 0, r.stderr
            assert remote.ok("get", "file", "copy@master:/b.txt") == "b"
            jobs = remote.json("list", "job", "-p", "copy", "--raw")
            assert len(jobs) == 2 and jobs[0]["state"] == "SUCCESS"
            # A second server on the same root is still refused clearly: two controllers.
            r = tusk("serve", "--address", "127.0.0.1:1", "--no-auth")
            assert r.returncode == 7 and "already runs" in r.stderr, r
            assert len(r.stderr.splitlines()) == 1
    finally:
        p.stop_controllers()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
