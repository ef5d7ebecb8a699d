"""Fuzzing the HTTP API: schemathesis against a real ``tusk serve`` and its OpenAPI schema.

Every route's request model is in the schema (``tusk.api.request_models``), so schemathesis
generates bodies that fit it (and, in negative mode, bodies that do not: wrong types, missing
arguments, numbers past their range) for every operation, sends them to a server over a root
with a little data in it (a repo with files, a pipeline that ran), and checks each answer: never
a 5xx, a status and a media type the schema documents, a body that matches its schema.

CI runs ``TUSK_FUZZ_EXAMPLES`` (default 10) generated examples per operation and phase, with a
fixed seed; a soak run raises it and draws new examples each time:
``TUSK_FUZZ_EXAMPLES=500 TUSK_FUZZ_RANDOM=1 .venv/bin/python -m pytest tests/fault/test_http_fuzz.py``.
The cases the issue names are written out in tests/e2e/test_server_requests.py.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import checks
from schemathesis.core import NOT_SET

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from server_helpers import TOKEN, running_server

EXAMPLES = int(os.environ.get("TUSK_FUZZ_EXAMPLES", "10"))
RANDOM = bool(os.environ.get("TUSK_FUZZ_RANDOM"))
WAIT_CAP = 0.5  # seconds any waiting call may wait under the fuzzer
# Calls that wait (for a commit, a job, new events) until their timeout: None is forever.
# garbage_collect waits for the data lock, which an open write session holds.
WAITING = {"/v1/pfs/subscribe_commits", "/v1/pps/subscribe_jobs", "/v1/pfs/inspect_commit",
           "/v1/pfs/inspect_commit_set", "/v1/pps/inspect_job", "/v1/pfs/garbage_collect"}
H = {"Authorization": f"Bearer {TOKEN}"}
SEED_FILES = ["/a.txt", "/dir/b.txt", "/dir/c.csv"]


class _Root:
    """What ``running_server`` needs of the e2e ``tusk`` fixture: the executable, an environment
    with its own root, a working directory."""

    def __init__(self, tmp: Path) -> None:
        self.exe = str(Path(sys.executable).parent / "tusk")
        self.cwd = tmp / "work"
        self.cwd.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("TUSK_METADATA_URL", "TUSK_OBJECT_URL", "TUSK_ADDRESS")}
        self.env["TUSK_ROOT"] = str(tmp / "root")
        self.env["TUSK_RUNNER"] = "process"  # the runner is not under test here


def _call(url: str, method: str, body: dict[str, Any]) -> Any:
    r = httpx.post(f"{url}/v1/{method}", json=body, headers=H, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def _seed(url: str) -> None:
    """A repo with files on master and a pipeline that has run a job over them, so generated
    requests that name them reach past "not found" into the services' logic."""
    repo = {"__type__": "RepoRef", "project": "default", "repo": "images"}
    _call(url, "pfs/create_repo", {"ref": repo})
    sid = _call(url, "pfs/modify", {"ref": {"__type__": "CommitRef", "repo": repo, "branch": "master"}})
    for i, path in enumerate(SEED_FILES):
        r = httpx.post(f"{url}/v1/sessions/{sid}/put_stream", params={"path": path},
                       content=f"line {i}\n".encode() * (i + 1), headers=H, timeout=60)
        assert r.status_code == 200, r.text
    _call(url, f"sessions/{sid}/close", {})
    spec = {"pipeline": {"name": "edges"}, "input": {"pfs": {"repo": "images", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", "cp -r /pfs/images/* /pfs/out/"]}}
    _call(url, "pps/create_pipeline", {"spec": {"__type__": "PipelineSpec", "doc": spec}})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = _call(url, "pps/list_jobs", {"pipeline": "edges"})
        if jobs and jobs[0]["state"] in ("SUCCESS", "FAILURE", "KILLED", "UNRUNNABLE"):
            return
        time.sleep(0.2)
    raise AssertionError(f"the seed pipeline's job did not finish: {jobs}")


@pytest.fixture(scope="module")
def tusk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = _Root(tmp_path_factory.mktemp("fuzz"))
    with running_server(root) as server:
        _seed(server.url)
        yield server
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, f"the server logged a traceback:\n{log[-3000:]}"


def _aim(body: Any, rng: random.Random) -> Any:
    """Point some refs and names at the seeded data (deterministically, from the body itself)."""
    if isinstance(body, list):
        return [_aim(v, rng) for v in body]
    if not isinstance(body, dict):
        return body
    out = {k: _aim(v, rng) for k, v in body.items()}
    kind = out.get("__type__")
    if kind == "RepoRef" or (kind is None and set(out) == {"project", "repo"}):
        out.update(project="default", repo=rng.choice(["images", "edges"]))
    elif kind == "CommitRef" and isinstance(out.get("branch"), str):
        out["branch"] = "master"
    elif kind == "FileRef" and isinstance(out.get("path"), str):
        out["path"] = rng.choice([*SEED_FILES, "/", "/dir", "/dir/*"])
    for key in ("pipeline", "name"):
        if isinstance(out.get(key), str) and "ref" not in out:
            out[key] = "edges"
    if isinstance(out.get("project"), str) and kind in (None, "PipelineSpec"):
        out["project"] = "default"
    return out


def _openapi() -> dict[str, Any]:
    """The schema ``tusk serve`` serves (the same app, built without a root: routes and models
    only). Loaded at collection, as schemathesis parametrizes by operation;
    ``test_the_served_schema_is_the_one_fuzzed`` checks the server serves this one."""
    from tusk.api.server import create_app

    return create_app(None, None).openapi()  # type: ignore[arg-type]


schema = schemathesis.openapi.from_dict(_openapi(), config=schemathesis.Config.from_dict({
    "headers": H,
    "request-timeout": 20,
    "generation": {"max-examples": EXAMPLES, "mode": "all", "deterministic": not RANDOM},
}))


@schema.hook
def before_generate_body(context: Any, strategy: Any) -> Any:
    # Half the bodies as generated, half aimed at the seeded repo and pipeline.
    return strategy | strategy.map(
        lambda b: _aim(b, random.Random(json.dumps(b, sort_keys=True, default=str))))


def _bounded(case: Any) -> None:
    """A call that waits must end: cap its timeout (a value of the wrong type stays, to be
    refused), and do not follow logs. Done on the case, so it holds in every phase."""
    if case.path in WAITING:
        if case.body is NOT_SET or case.body is None:
            case.body, case.media_type = {}, "application/json"
        if isinstance(case.body, dict):
            t = case.body.get("timeout")
            if t is None or (isinstance(t, (int, float)) and not isinstance(t, bool) and t > WAIT_CAP):
                case.body["timeout"] = WAIT_CAP
    if case.path == "/v1/pps/logs" and isinstance(case.body, dict) and case.body.get("follow") is True:
        case.body["follow"] = False


def test_the_served_schema_is_the_one_fuzzed(tusk_server: Any) -> None:
    assert httpx.get(f"{tusk_server.url}/openapi.json").json() == _openapi()


@schema.parametrize()
def test_no_server_errors_and_answers_match_the_schema(case: Any, tusk_server: Any) -> None:
    _bounded(case)
    case.call_and_validate(base_url=tusk_server.url, checks=[
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_schema_conformance,
    ])
