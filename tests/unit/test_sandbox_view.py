"""What the sandbox shows of the host, the environment user code gets, and the bounds' words."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tusk.errors import InvalidArgument
from tusk.workers.limits import Confinement, Limits, _cgroup_bases, limits_for, parse_quantity
from tusk.workers.runtimes import view
from tusk.workers.user_env import user_path


def test_a_script_under_tmp_shows_its_directory_and_a_root_inside_it_is_masked(
        tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "root").mkdir(parents=True)
    (code / "main.py").write_text("print(1)\n")
    named = view.spec_paths(["python3", str(code / "main.py")], [], None)
    assert named == [str(code)]
    args = view.binds(named, [str(code / "root")])
    assert ["--ro-bind", str(code), str(code)] == args[args.index("--ro-bind"):][:3]
    assert args[-2:] == ["--tmpfs", str(code / "root")]


def test_paths_in_stdin_and_flags_are_found_but_never_wide_ones(tmp_path: Path) -> None:
    (tmp_path / "s.sh").write_text("echo\n")
    named = view.spec_paths(["bash"], [f"sh {tmp_path}/s.sh --data=/tmp", "cat /root/x"], None)
    assert named == [str(tmp_path)]  # /tmp and /root are too wide to show


def test_a_path_inside_a_root_is_never_shown(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "objects").mkdir(parents=True)
    assert "--ro-bind" not in view.binds([str(root / "objects")], [str(root)])


def test_an_interpreter_brings_its_installation() -> None:
    named = view.spec_paths([sys.executable, "-c", "pass"], [], None)
    real = os.path.realpath(sys.executable)
    assert any(real.startswith(p + "/") for p in named)


def test_user_path_drops_tusks_virtualenv(monkeypatch: pytest.MonkeyPatch) -> None:
    venv_bin = os.path.join(sys.prefix, "bin")
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")
    path = user_path("/shim").split(":")
    if sys.prefix != sys.base_prefix:
        assert venv_bin not in path
    assert path[-1] == "/shim" and "/usr/bin" in path
    assert view.sandbox_path(f"{venv_bin}:/usr/bin").split(":") == ["/usr/bin", view.SHIM_DIR]


@pytest.mark.parametrize("raw, value", [("512Mi", 512 * 2**20), ("2G", 2e9), (1.5, 1.5),
                                        ("500m", 0.5), ("1Ki", 1024)])
def test_quantities(raw: object, value: float) -> None:
    assert parse_quantity(raw, "x") == value


@pytest.mark.parametrize("raw", ["lots", "-1Gi", 0, True, "1Xi", 1e30])
def test_bad_quantities_name_the_field(raw: object) -> None:
    with pytest.raises(InvalidArgument, match="resource_limits.memory"):
        limits_for({"memory": raw})


def test_spec_limits_override_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUSK_SANDBOX_PIDS", "99")
    lim = limits_for({"memory": "1Gi", "cpu": 0.5, "disk": "1Gi"})
    assert (lim.memory, lim.cpu, lim.tmp, lim.out, lim.pids) == (2**30, 0.5, 2**30, 2**30, 99)
    monkeypatch.setenv("TUSK_SANDBOX_MEMORY", "0")
    assert limits_for(None).memory is None


@pytest.mark.skipif(_cgroup_bases() is None, reason="no cgroup tusk may create here")
def test_a_slot_threads_cgroups_are_made_once_and_take_new_bounds() -> None:
    # In a thread of its own: the thread joins the cgroups, as a controller's slot does.
    seen: list[object] = []

    def slot() -> None:
        try:
            c = Confinement(Limits(memory=64 * 2**20, pids=10, cpu=0.5), {})
            groups = dict(c.groups)
            if "cpu" in groups:
                assert (groups["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
            assert int((groups["memory"] / "memory.limit_in_bytes").read_text()) == 64 * 2**20
            assert (groups["pids"] / "pids.max").read_text().strip() == "11"  # + the thread
            out = subprocess.run(["cat", "/proc/self/cgroup"], capture_output=True, text=True,
                                 check=True)
            assert any(str(g).endswith(line.split(":")[2]) for g in groups.values()
                       for line in out.stdout.splitlines() if ":memory:" in line)
            c.close()
            again = Confinement(Limits(memory=None, pids=10), {})
            assert again.groups == groups  # the same groups, with the new (unbounded) memory
            assert int((groups["memory"] / "memory.limit_in_bytes").read_text()) > 2**40
            again.close()
            seen.append("ok")
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            seen.append(e)

    t = threading.Thread(target=slot)
    t.start()
    t.join()
    if seen[0] != "ok":
        raise seen[0]  # type: ignore[misc]


def test_directories_over_their_bound_are_named(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    c = Confinement(Limits(out=1 << 20, source="resource_limits"), {str(out): "/pfs/out"})
    try:
        assert c.check(final=True) == ""
        (out / "big").write_bytes(os.urandom(2 << 20))
        why = c.check(final=True)
        assert "more than 1 MiB to /pfs/out" in why and "resource_limits.disk" in why
    finally:
        c.close()
