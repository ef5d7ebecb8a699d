"""Fuzzing the ``tusk`` command: generated arguments never crash it.

Hypothesis drives the CLI with generated refs, names, paths, numbers, flags and spec documents
(JSON and YAML, valid-looking and hostile). Whatever it makes, a command either succeeds or fails
with exactly one stderr line starting ``tusk:``; never a traceback, and never the last-resort
guard's "internal error" (that guard catching something means a check is missing).

Most examples run in-process (click's ``CliRunner`` on the same ``cli`` group the executable
runs, against one real root); a few go through the real executable. The example counts are
bounded for CI (well under two minutes on two cores); ``TUSK_FUZZ_EXAMPLES=N`` raises the
in-process count (and a tenth of it through the executable) for a soak, with fresh random
examples each run instead of the fixed CI sequence.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.e2e

SOAK = int(os.environ.get("TUSK_FUZZ_EXAMPLES", "0"))
IN_PROCESS = SOAK or 300
THROUGH_EXE = max(SOAK // 10, 15)
FUZZ = settings(
    max_examples=IN_PROCESS, deadline=None, database=None, derandomize=not SOAK,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

# -- the e2e fixture, reused: its Tusk runs the installed executable against a fresh root -------

_spec = importlib.util.spec_from_file_location(
    "tusk_e2e_conftest", Path(__file__).parents[1] / "e2e" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)


# -- what the fuzzer types ------------------------------------------------------------------------

# Mostly the characters refs and paths are made of, with some that must be refused or escaped.
_ALPHABET = st.sampled_from(list("abcxyz019-_./@:^~*?[]{}!()+ é日\t\n\x1b\x7f\u2028\u202e\udcff"))
_word = st.text(_ALPHABET, max_size=12)
_valid_name = st.sampled_from(["r", "r", "s", "master", "dev", "p", "default"])
_name = st.one_of(  # valid names half the time, so commands get past the first check
    _valid_name,
    _valid_name,
    st.sampled_from(["", "r@master", "^", "@", ".", "-", "a" * 64]),
    _word,
    st.integers(1, 600).map(lambda n: "n" * n),  # across every length limit
)
_valid_path = st.lists(st.sampled_from(["a", "b.txt", "d", "é", "x-y"]), min_size=1, max_size=3).map(
    lambda parts: "/" + "/".join(parts))
_path = st.one_of(
    _valid_path,
    _valid_path,
    st.sampled_from(["/", "/a", "/a/b.txt", "/d/", "/../x", "/*", "/é.txt", "//", ""]),
    st.lists(_word, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.integers(200, 4000).map(lambda n: "/" + "/".join(["p" * 250] * (n // 250))),
    st.integers(250, 260).map(lambda n: "/" + "q" * n),
)
_commitish = st.one_of(_name, _valid_name, st.builds(lambda b, c: f"{b}{c}", _name,
                                        st.sampled_from(["^", "^2", "~1", ".1", "^^^^^^"])),
                       st.just("0123456789abcdef0123456789abcdef"))
_ref = st.builds(lambda repo, at, commit, colon, path: repo + at + commit + colon + path,
                 _name, st.sampled_from(["@", "@", "@", "", "@@"]), _commitish,
                 st.sampled_from([":", ":", ":", "", "::"]), _path)
_number = st.one_of(
    st.integers(0, 5).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-0", "0x10", "", " 1", "1_000", "10" * 30]),
)
_short_seconds = st.one_of(  # a valid timeout must not block the fuzzer: at most 0.2 s
    st.sampled_from(["0", "0.1", "0.2"]),
    st.sampled_from(["nan", "inf", "-1", "1e400", "1e20", "x", ""]),
)

_FIELDS = ["pipeline", "name", "project", "transform", "cmd", "stdin", "image", "env", "input",
           "pfs", "repo", "glob", "branch", "cross", "union", "join", "group", "cron", "spec",
           "join_on", "group_by", "outer_join", "lazy", "empty_files", "trigger", "size",
           "commits", "parallelism_spec", "constant", "datum_tries", "datum_timeout",
           "job_timeout", "reprocess_spec", "output_branch", "service", "spout", "egress",
           "URL", "datum_set_spec", "number", "accept_return_code", "err_cmd", "salt",
           "parallelismSpec", "joinOn", "s3_out", "autoscaling", "pod_patch"]
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False), _word, _path, st.sampled_from(["/*", "r", "true"]))
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(_FIELDS), _word), inner,
                                            max_size=5)),
    max_leaves=30,
)
_PLAIN = {"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]},
          "input": {"pfs": {"repo": "r", "glob": "/*"}}}


def _mutate(doc: Any, path: list[str], value: Any) -> Any:
    """A working spec with one field (at a generated path) set to a generated value."""
    out = json.loads(json.dumps(doc))
    node = out
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return out


# Field paths of a spec that mean something, to set a generated value at.
_SPOTS = [["pipeline", "name"], ["pipeline", "project"], ["transform", "cmd"],
          ["transform", "stdin"], ["transform", "env"], ["transform", "image"], ["input"],
          ["input", "pfs", "glob"], ["input", "pfs", "repo"], ["input", "pfs", "branch"],
          ["input", "pfs", "name"], ["input", "pfs", "trigger", "size"], ["input", "cron"],
          ["parallelism_spec", "constant"], ["datum_tries"], ["datum_timeout"], ["job_timeout"],
          ["output_branch"], ["reprocess_spec"], ["salt"], ["egress", "URL"], ["service"],
          ["spout"], ["datum_set_spec", "number"], ["autoscaling"], ["s3_out"], ["pod_patch"]]
_leaf = st.builds(
    lambda repo, glob, extra: {"pfs": {"repo": repo, "glob": glob, **extra}},
    st.sampled_from(["r", "r", "s", "nope"]),
    st.sampled_from(["/*", "/", "/**", "/a/*", "/(*)", "/*/*", "/[", "*", ""]),
    st.sampled_from([{}, {"name": "x"}, {"branch": "dev"}, {"lazy": True}, {"join_on": "$1"},
                     {"empty_files": True}, {"outer_join": True}, {"group_by": "$1"}]),
)
_input_tree = st.recursive(
    _leaf,
    lambda inner: st.builds(lambda kind, kids: {kind: kids},
                            st.sampled_from(["cross", "union", "join", "group"]),
                            st.lists(inner, max_size=3)),
    max_leaves=6,
)
_doc = st.one_of(
    _json,
    st.builds(_mutate, st.just(_PLAIN), st.sampled_from(_SPOTS), _json),
    st.builds(_mutate, st.just(_PLAIN), st.sampled_from(_SPOTS), _scalar),
    st.builds(_mutate, st.just(_PLAIN), st.just(["input"]), _input_tree),
)
_spec_text = st.one_of(
    _doc.map(lambda d: json.dumps(d).encode()),
    _doc.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    st.integers(1, 3000).map(lambda n: ('{"input": ' * n + "1" + "}" * n).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"", b"---\n---\n", b"{", b"[]", b"a: &a [*a]", b"\xef\xbb\xbf{}"]),
)


def _opt(flag: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.one_of(st.just([]), values.map(lambda v: [flag, v]))


def _spec_commands(spec_file: str) -> st.SearchStrategy[list[str]]:
    """Every entry point that reads a spec, from the file or from stdin ('-')."""
    return st.tuples(
        st.sampled_from([["validate", "pipeline"], ["create", "pipeline", "--dry-run"],
                         ["create", "pipeline"], ["update", "pipeline"], ["list", "datum"]]),
        st.sampled_from([["-f", spec_file], ["-f", spec_file], ["-f", "-"]]),
    ).map(lambda parts: parts[0] + parts[1])


def _commands(spec_file: str, out_file: str) -> st.SearchStrategy[list[str]]:
    """Argument lists over the commands that neither block nor leave this root."""
    fmt = _opt("-o", st.sampled_from(["json", "yaml", "table", "xml"]))
    cmds = [
        st.tuples(st.just(["create", "repo"]), _name.map(lambda n: [n]), _opt("--project", _name)),
        st.tuples(st.just(["create", "project"]), _name.map(lambda n: [n])),
        st.tuples(st.just(["create", "branch"]), _ref.map(lambda r: [r]), _opt("--head", _commitish),
                  _opt("-p", _ref), _opt("--trigger", _name), _opt("--trigger-size", _word),
                  _opt("--trigger-commits", _number), _opt("--trigger-cron", _word)),
        st.tuples(st.sampled_from([["inspect", "repo"], ["list", "branch"], ["delete", "repo"],
                                   ["inspect", "project"], ["inspect", "pipeline"],
                                   ["delete", "pipeline"], ["stop", "pipeline"],
                                   ["start", "pipeline"], ["rerun", "pipeline"], ["run", "cron"],
                                   ["delete", "project"]]),
                  _name.map(lambda n: [n])),
        st.tuples(st.sampled_from([["update", "repo"], ["update", "project"]]),
                  _name.map(lambda n: [n]), st.just(["-d"]), _word.map(lambda w: [w])),
        st.tuples(st.sampled_from([["list", "commit"], ["inspect", "commit"], ["list", "file"],
                                   ["inspect", "file"], ["glob", "file"], ["delete", "file"],
                                   ["start", "commit"], ["finish", "commit"], ["inspect", "branch"],
                                   ["delete", "branch"], ["diff", "file"], ["lineage"],
                                   ["explain"], ["list", "datum"], ["inspect", "job"],
                                   ["stop", "job"], ["delete", "job"]]),
                  _ref.map(lambda r: [r]), fmt),
        st.tuples(st.just(["list", "commit"]), _ref.map(lambda r: [r]), _opt("-n", _number)),
        st.tuples(st.just(["list", "job"]), _opt("-n", _number), _opt("-p", _name)),
        st.tuples(st.just(["lineage"]), _ref.map(lambda r: [r]), _opt("--depth", _number)),
        st.tuples(st.just(["get", "file"]), _ref.map(lambda r: [r]), st.just(["-o", out_file]),
                  _opt("--offset", _number)),
        st.tuples(st.just(["put", "file"]), _ref.map(lambda r: [r]),
                  st.sampled_from([["-f", spec_file], ["-f", "/dev/null"], ["-i", spec_file],
                                   ["--untar", "-f", spec_file], ["-f", "/proc/self/mem"],
                                   ["-r", "-f", os.path.dirname(spec_file)]]),
                  st.sampled_from([[], ["-a"], ["--full-path"]])),
        st.tuples(st.just(["copy", "file"]), _ref.map(lambda r: [r]), _ref.map(lambda r: [r])),
        st.tuples(st.sampled_from([["wait", "commit"], ["subscribe", "commit"], ["wait", "job"]]),
                  _ref.map(lambda r: [r]), _short_seconds.map(lambda s: ["--timeout", s])),
        _spec_commands(spec_file),
        st.tuples(st.sampled_from([["squash", "commit"], ["delete", "commit"],
                                   ["inspect", "transaction"], ["delete", "transaction"]]),
                  _word.map(lambda w: [w])),
        st.tuples(st.sampled_from([["list", "repo"], ["list", "pipeline"], ["list", "project"],
                                   ["draw", "pipeline"], ["list", "transaction"]]), fmt),
    ]
    return st.one_of(cmds).map(lambda parts: [a for part in parts for a in part])


# -- the contract ---------------------------------------------------------------------------------


def _check(args: list[str], code: int, stderr: str) -> None:
    shown = " ".join(map(repr, args))[:300]
    assert "Traceback" not in stderr, f"tusk {shown}: traceback\n{stderr}"
    assert "internal error" not in stderr and code != 70, f"tusk {shown}: {stderr}"
    if code != 0:
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("tusk: "), f"tusk {shown}: {lines!r}"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def in_process(root: Path) -> Iterator[Any]:
    """Runs ``cli`` in this process against one root (with a repo and a commit to aim at)."""
    from tusk.cli import common
    from tusk.cli.main import cli

    entry_modules = ["admin_cmds", "batch_cmds", "branch_cmds", "commit_cmds", "context_cmds",
                     "file_cmds", "lifecycle_cmds", "lineage_cmds", "log_cmds", "pps_cmds",
                     "repo_cmds", "txn_cmds"]
    for name in entry_modules:  # as main() does: each registers its commands on the verbs
        importlib.import_module(f"tusk.cli.{name}")
    env = {"TUSK_ROOT": str(root / "root"), "TUSK_NO_CONTROLLER": "1",
           "TUSK_CONFIG": str(root / "contexts.json"), "TUSK_ADDRESS": None,
           "TUSK_DEBUG": None, "TUSK_METADATA_URL": None, "TUSK_OBJECT_URL": None,
           "TUSK_RUNNER": "process"}
    runner = CliRunner(env=env)
    saved = common._service, common._pps
    common._service = common._pps = None

    def run(args: list[str], stdin: bytes = b"") -> tuple[int, str]:
        result = runner.invoke(cli, args, input=stdin, prog_name="tusk")
        return result.exit_code, result.stderr

    assert run(["create", "repo", "r"])[0] == 0
    (root / "a.txt").write_text("a\n")
    assert run(["put", "file", "r@master:/a/b.txt", "-f", str(root / "a.txt")])[0] == 0
    yield run
    if common._service is not None:
        common._service.close()
    common._service, common._pps = saved


def test_fuzz_in_process(in_process: Any, root: Path) -> None:
    spec_file = root / "specs" / "spec.json"
    spec_file.parent.mkdir(exist_ok=True)
    out_file = str(root / "out.bin")

    @FUZZ
    @given(text=_spec_text, args=_commands(str(spec_file), out_file))
    def one(text: bytes, args: list[str]) -> None:
        spec_file.write_bytes(text)
        code, stderr = in_process(args, stdin=text)
        _check(args, code, stderr)

    one()


def test_fuzz_spec_documents(in_process: Any, root: Path) -> None:
    """Spec files get examples of their own: the most structured input a user gives."""
    spec_file = root / "specs" / "pipeline.yaml"
    spec_file.parent.mkdir(exist_ok=True)

    @FUZZ
    @given(text=_spec_text, args=_spec_commands(str(spec_file)))
    def one(text: bytes, args: list[str]) -> None:
        spec_file.write_bytes(text)
        code, stderr = in_process(args, stdin=text)
        _check(args, code, stderr)

    one()


def test_fuzz_through_the_executable(tmp_path: Path) -> None:
    tusk = _e2e._make(tmp_path)
    tusk.ok("create", "repo", "r")
    tusk.ok("put", "file", "r@master:/a/b.txt", "-f", "-", input="a\n")
    spec_file = tusk.cwd / "specs" / "spec.json"
    spec_file.parent.mkdir()
    out_file = str(tusk.cwd / "out.bin")

    @settings(FUZZ, max_examples=THROUGH_EXE)
    @given(text=_spec_text, args=_commands(str(spec_file), out_file))
    def one(text: bytes, args: list[str]) -> None:
        spec_file.write_bytes(text)
        # Real argv holds bytes: a lone surrogate stands for a byte that is not UTF-8.
        argv = [os.fsencode(a) for a in args]
        p = subprocess.run([tusk.exe.encode(), *argv], input=text, capture_output=True,
                           env=tusk.env, cwd=tusk.cwd, timeout=120, check=False)
        _check(args, p.returncode, p.stderr.decode("utf-8", "replace"))

    one()
