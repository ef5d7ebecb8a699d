"""The ``transform`` block end to end: Pachyderm's environment variables, ``env``, ``stdin``,
``working_dir``, ``accept_return_code``, ``datum_timeout`` and ``parallelism_spec``.
"""

from __future__ import annotations

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e


def parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_environment_stdin_working_dir_and_return_codes(pipes: Pipes) -> None:
    p = pipes
    commit = p.repo("in", {"a.txt": "alpha"})
    script = [
        "set -e",
        "env | grep -E '^(PACH_(JOB|DATUM|OUTPUT_COMMIT)_ID|in|in_COMMIT|GREETING)=' | sort > /pfs/out/env",
        "pwd > /pfs/out/pwd",
        "cat a.txt > /pfs/out/copy",  # relative to working_dir
        "exit 3",  # accepted below
    ]
    s = spec("envs", pfs_input("in", "/*"), ["bash"], stdin=script,
             transform={"env": {"GREETING": "hello"}, "working_dir": "/pfs/in",
                        "accept_return_code": [3]})
    p.create(s)
    out = p.wait("envs@master")[0]
    job = p.job("envs")
    assert job["state"] == "SUCCESS"
    (datum,) = p.datums("envs", job["id"])
    tree = p.text_tree("envs@master")
    env = parse_env(tree["/env"])
    assert env == {
        "GREETING": "hello",
        "PACH_DATUM_ID": datum["id"],
        "PACH_JOB_ID": job["id"],
        "PACH_OUTPUT_COMMIT_ID": out["id"],
        "in": "/pfs/in/a.txt",
        "in_COMMIT": commit,
    }
    assert tree["/pwd"] == "/pfs/in\n"
    assert tree["/copy"] == "alpha"


def test_datum_timeout_fails_the_datum(pipes: Pipes) -> None:
    p = pipes
    p.repo("in", {"fast": "0", "slow": "30"})
    s = spec("sleepy", pfs_input("in"), bash("sleep $(cat $in); echo done > /pfs/out/$(basename $in)"),
             datum_timeout="1s", datum_tries=1)
    p.create(s)
    commit = p.wait("sleepy@master", ok=False)[0]
    assert "timed out" in commit["error"]
    job = p.job("sleepy")
    assert job["state"] == "FAILURE" and "in:/slow" in job["reason"]
    datums = {d["files"][0]: d for d in p.datums("sleepy", job["id"])}
    assert datums["in:/fast"]["state"] == "SUCCESS"
    slow = datums["in:/slow"]
    assert slow["state"] == "FAILED" and "timed out after 1s" in slow["reason"]
    assert slow["seconds"] < 10  # the sleep was killed, not waited for


def test_parallelism_runs_two_datums_at_once(pipes: Pipes) -> None:
    p = pipes
    p.repo("in", {f"{i}": str(i) for i in range(4)})
    record = bash(
        "s=$(date +%s.%N); sleep 0.6; e=$(date +%s.%N);"
        " echo \"$s $e\" > /pfs/out/$(basename $in)"
    )
    p.create(spec("par", pfs_input("in"), record, parallelism_spec={"constant": 2}))
    p.wait("par@master")
    spans = [tuple(map(float, v.split())) for v in p.text_tree("par@master").values()]
    assert len(spans) == 4
    # The most datums running at any one moment: 2, never more.
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2
