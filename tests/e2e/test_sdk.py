"""The SDK examples of docs/sdk.md, executed: embedded (the root in process) and against a
live ``tusk serve``. The same script runs both ways; only ``TUSK_ADDRESS`` differs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from server_helpers import TOKEN, remote_tusk, running_server

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def doc_script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 4, "docs/sdk.md lost its examples"
    return "\n\n".join(blocks)


def run_script(env: dict[str, str], cwd: Path) -> str:
    p = subprocess.run([sys.executable, "-c", doc_script()], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, f"docs/sdk.md examples failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def check_output(out: str) -> None:
    assert "['images']" in out
    assert "FINISHED 4" in out
    assert "not found: repo no-such-repo not found" in out
    assert "SUCCESS 1 processed, 2 skipped" in out


def test_examples_embedded(tusk: Any) -> None:
    env = dict(tusk.env)
    env.pop("TUSK_NO_CONTROLLER", None)  # the pipeline example needs the background controller
    env["TUSK_CONTROLLER_IDLE"] = "3"
    check_output(run_script(env, tusk.cwd))
    # It was the fixture's root: the CLI sees the same data.
    assert sorted(r["name"] for r in tusk.json("list", "repo", "--raw")) == ["images", "shout"]


def test_examples_remote(tusk: Any) -> None:
    with running_server(tusk) as server:
        env = remote_tusk(tusk, server).env
        check_output(run_script(env, tusk.cwd))
        assert sorted(r["name"] for r in tusk.json("list", "repo", "--raw")) == ["images", "shout"]


def test_client_explicit_address_and_errors(tusk: Any) -> None:
    import tusk as sdk
    from tusk.errors import AlreadyExists, InvalidArgument, NotFound, TuskError

    with running_server(tusk) as server:
        client = sdk.Client(server.url, auth_token=TOKEN)
        assert client.remote
        client.pfs.create_repo("r")
        with pytest.raises(AlreadyExists):
            client.pfs.create_repo("r")
        with pytest.raises(NotFound):
            client.pfs.get_file("r@master:/nothing")
        with pytest.raises(InvalidArgument):
            client.pfs.put_file("r@master:/x", 12)  # type: ignore[arg-type]
        # A failing commit block finishes the commit with the error and re-raises.
        with pytest.raises(RuntimeError), client.pfs.commit("r@master") as c:
            c.put_file("/a.txt", b"a")
            raise RuntimeError("boom")
        assert "boom" in client.pfs.inspect_commit(f"r@{c.id}").error
        assert len(list(client.pfs.walk_file("r@master:/"))) == 1
        bad = sdk.Client(server.url, auth_token="wrong")
        with pytest.raises(TuskError, match="auth token"):
            bad.pfs.list_repo()
        client.close()
