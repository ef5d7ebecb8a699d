"""A worker's own /pfs: made once, seen by the processes it starts, invisible to the host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tusk.workers.mount_ns import shows

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/pfs"),
                                reason="a private /pfs needs root and a /pfs mount point")

CHILD = """
import subprocess, sys
from pathlib import Path
from tusk.workers.mount_ns import show_at_pfs, shows
d = Path(sys.argv[1])
assert show_at_pfs(d) and shows(d)
(d / "late").write_text("made after the mount")
print(subprocess.run(["cat", "/pfs/x", "/pfs/late"], capture_output=True, text=True).stdout)
"""


def test_the_workspace_is_at_pfs_for_the_worker_and_its_children_only(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("mine\n")
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout
    assert out == "mine\nmade after the mount\n"  # files added later show too: one bind, live
    assert not shows(tmp_path)  # the host's /pfs is untouched
    assert not (Path("/pfs") / "x").exists()
