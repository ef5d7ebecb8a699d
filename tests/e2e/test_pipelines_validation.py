"""Refused specs create nothing; ``validate pipeline`` and ``create pipeline --dry-run`` neither.

Every refusal is one stderr line ``tusk: <file>: <field.path>: ...`` naming the field and what to
do about it, and leaves no repo, no pipeline and no job behind.
"""

from __future__ import annotations

import json

import pytest
from pipeline_helpers import Pipes, pipes_fixture  # noqa: F401

pytestmark = pytest.mark.e2e

GOOD = {"pipeline": {"name": "good"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "transform": {"cmd": ["cp", "-r", "/pfs/in", "/pfs/out/"]}}


def variant(**changes: object) -> dict:
    doc = json.loads(json.dumps(GOOD))
    doc.update(changes)
    return doc


BAD = [
    (variant(input={"join": [
        {"pfs": {"repo": "in", "glob": "/(*)", "join_on": "$1"}},
        {"pfs": {"repo": "in", "name": "b", "join_on": "$1"}}]}), "input.join[1].pfs.glob: required"),
    (variant(reprocess_spec="sometimes"), "reprocess_spec: "),
    (variant(pipeline={"name": "no spaces"}), "pipeline.name: "),
    (variant(input={"pfs": {"repo": "in", "glob": "/*", "commit": "abc"}}), "input.pfs.commit: "),
    (variant(input={"cross": [{"pfs": {"repo": "in", "glob": "/*"}},
                              {"pfs": {"repo": "in", "glob": "/*"}}]}), "input.cross[1].pfs.name: "),
    (variant(datum_timeout="soon"), "datum_timeout: "),
    (variant(transform={}), "transform.cmd: "),
]


def test_refused_specs_create_nothing(pipes: Pipes) -> None:
    p = pipes
    p.repo("in", {"a": "1"})
    for i, (doc, message) in enumerate(BAD):
        path = p.spec_file(doc)
        verbs = [("create", "pipeline")]
        if i == 0:  # validate and --dry-run refuse with the very same line
            verbs += [("validate", "pipeline"), ("create", "pipeline", "--dry-run")]
        for verb in verbs:
            line = p.t.fail(*verb, "-f", str(path))
            assert line.startswith(f"tusk: {path}: {message}"), (verb, line)
    # Several specs in one file: one bad spec refuses the whole file, even the good ones.
    both = p.spec_file([GOOD, variant(pipeline={"name": "second"}, input={"pfs": {"repo": "in"}})])
    line = p.t.fail("create", "pipeline", "-f", str(both))
    assert line.startswith(f"tusk: {both} (spec 2): input.pfs.glob: required")
    # An input repo that does not exist is refused by name.
    missing = p.spec_file(variant(input={"pfs": {"repo": "nope", "glob": "/*"}}))
    assert "input repo nope not found" in p.t.fail("create", "pipeline", "-f", str(missing))

    assert [r["name"] for r in p.raw("list", "repo")] == ["in"]
    assert p.raw("list", "pipeline") == []
    assert p.jobs() == []


def test_validate_and_dry_run_create_nothing(pipes: Pipes) -> None:
    p = pipes
    p.repo("in", {"a": "1"})
    path = p.spec_file(GOOD)
    assert "valid" in p.ok("validate", "pipeline", "-f", str(path))
    assert "valid" in p.ok("create", "pipeline", "--dry-run", "-f", str(path))
    assert [r["name"] for r in p.raw("list", "repo")] == ["in"]
    assert p.raw("list", "pipeline") == []
    # The same spec really creates the pipeline, whose initial job runs.
    p.ok("create", "pipeline", "-f", str(path))
    p.wait("good@master")
    assert p.tree("good@master") == {"/in/a": b"1"}


def test_a_spec_at_an_http_url_is_created_as_from_a_file(pipes: Pipes, http_dir) -> None:  # type: ignore[no-untyped-def]
    p = pipes
    p.repo("in", {"/a": "x"})
    (http_dir.dir / "good.json").write_text(json.dumps(GOOD))
    line = p.t.fail("create", "pipeline", "-f", f"{http_dir.url}/missing.json")
    assert "cannot fetch: HTTP 404" in line, line
    assert p.raw("list", "pipeline") == []
    p.ok("create", "pipeline", "-f", f"{http_dir.url}/good.json")
    p.wait("good@master")
    assert p.text_tree("good@master") == {"/in/a": "x"}
