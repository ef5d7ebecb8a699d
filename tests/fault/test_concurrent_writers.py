"""8 concurrent writers, embedded (8 ``tusk put file`` processes on one root) and through
``tusk serve`` (8 clients of one server): on one branch and spread over several branches.

Every write whose command exited 0 is in its branch's head, byte for byte, and nothing else is;
a write that did not succeed said why in one ``tusk:`` line; fsck is clean afterwards and gc
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from faults import SEED, digests, fsck_clean, gc_leaves_nothing, read_back, rng, start
from server_helpers import remote_tusk, running_server

pytestmark = pytest.mark.e2e

WRITERS = 8


def write_all(writer: Any, tusk: Any, branches: list[str], name: str) -> None:
    """Start WRITERS puts at once (writer i to ``branches[i % len]``), then check every branch."""
    pick = rng(name)
    src = Path(tusk.cwd) / f"src-{name}"
    src.mkdir()
    want: dict[str, dict[str, str]] = {b: {} for b in branches}
    procs = []
    for i in range(WRITERS):
        data = pick.randbytes(pick.randint(10 << 10, 1 << 20))
        local = src / f"w{i}.bin"
        local.write_bytes(data)
        branch = branches[i % len(branches)]
        procs.append((branch, f"w{i}.bin", hashlib.sha256(data).hexdigest(),
                      start(writer, "put", "file", f"data@{branch}:/w{i}.bin", "-f", str(local))))
    failures = []
    for branch, path, digest, proc in procs:
        _out, err = proc.communicate(timeout=180)
        text = err.decode()
        assert "Traceback" not in text, text
        if proc.returncode == 0:
            want[branch][path] = digest
        else:
            lines = text.splitlines()
            assert len(lines) == 1 and lines[0].startswith("tusk: "), text
            failures.append(lines[0])
    assert sum(len(w) for w in want.values()) > 0, f"no write succeeded: {failures}"
    for branch, files in want.items():
        if not files:
            continue
        got = read_back(writer, f"data@{branch}:/", Path(tusk.cwd) / f"check-{name}-{branch}")
        assert got == files, f"{name}: branch {branch} (seed {SEED}); refused: {failures}"
    # With retries on a moved head, no writer should have had to give up.
    assert failures == [], failures
    fsck_clean(tusk, name)
    gc_leaves_nothing(tusk, name)
    assert digests(src)  # the sources are still there (nothing wrote into them)


@pytest.mark.parametrize("branches", [["master"], ["master", "dev", "feature"]],
                         ids=["one-branch", "three-branches"])
def test_eight_embedded_writers(tusk: Any, branches: list[str]) -> None:
    tusk.ok("create", "repo", "data")
    write_all(tusk, tusk, branches, f"embedded-{len(branches)}")


@pytest.mark.parametrize("branches", [["master"], ["master", "dev", "feature"]],
                         ids=["one-branch", "three-branches"])
def test_eight_writers_through_one_server(tusk: Any, branches: list[str]) -> None:
    with running_server(tusk) as server:
        remote = remote_tusk(tusk, server)
        remote.ok("create", "repo", "data")
        write_all(remote, tusk, branches, f"served-{len(branches)}")
