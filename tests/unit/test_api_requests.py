"""The request models made from service signatures, and the one line a refused body gets."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tusk.api.request_errors import one_line
from tusk.api.request_models import arguments, build_model, models
from tusk.api.responses import error_response
from tusk.pfs.refs import CommitRef, RepoRef
from tusk.pfs.service import PfsService


def refusal(domain: str, method: str, body: object) -> str:
    with pytest.raises(ValidationError) as e:
        models(domain)[method].model_validate(body)
    return one_line(method, [dict(err) for err in e.value.errors()])


def test_every_exposed_method_has_a_model_with_its_parameters() -> None:
    import inspect

    from tusk.api.methods import PFS_METHODS, PPS_METHODS
    from tusk.pps.service import PpsService

    for domain, table, cls in (("pfs", PFS_METHODS, PfsService), ("pps", PPS_METHODS, PpsService)):
        for name in table:
            params = list(inspect.signature(getattr(cls, name)).parameters)[1:]
            assert list(models(domain)[name].model_fields) == params, name


def test_a_valid_body_gives_the_service_values_and_only_those_sent() -> None:
    body = models("pfs")["start_commit"].model_validate(
        {"ref": {"__type__": "RepoRef", "project": "p", "repo": "r"}, "branch": "master",
         "parent": {"repo": {"project": "p", "repo": "r"}, "branch": "dev", "ancestors": 2}})
    assert arguments(body) == {"ref": RepoRef("p", "r"), "branch": "master",
                               "parent": CommitRef(RepoRef("p", "r"), "dev", None, 2, None)}


@pytest.mark.parametrize(("method", "body", "line"), [
    ("create_project", {"name": 7}, "create_project.name: expected a string, got 7"),
    ("list_commits", {"ref": {"project": "p", "repo": "r"}, "number": True},
     "list_commits.number: expected a whole number, got true"),
    ("list_commits", {"ref": {"__type__": "FileRef", "commit": {}, "path": "/"}},
     "list_commits.ref: expected one of 'CommitRef', 'RepoRef'"),
    ("inspect_commit", {"ref": {"repo": {"project": "p", "repo": "r"}}, "timeout": float("nan")},
     "inspect_commit.timeout: expected a finite number, got NaN"),
    ("create_branch", {"ref": {"project": "p", "repo": "r"}, "name": "b", "trigger": {"branch": 1}},
     "create_branch.trigger.branch: expected a string, got 1"),
    ("create_repo", {"ref": {"project": "p", "repo": "r", "name": "x"}},
     "create_repo.ref: unknown field name (a RepoRef has __type__, project, repo)"),
])
def test_refusals_name_the_argument(method: str, body: object, line: str) -> None:
    assert refusal("pfs", method, body).startswith(line)


def test_a_value_too_long_to_show_is_cut() -> None:
    line = refusal("pfs", "create_project", {"name": ["x" * 200]})
    assert line.endswith("...") and len(line) < 120


def test_an_unknown_annotation_fails_at_build_time() -> None:
    class Svc:
        def odd(self, when: complex) -> None: ...

    with pytest.raises(TypeError, match="no wire type"):
        build_model("pfs", Svc, "odd")


def test_a_bug_is_a_500_with_one_line() -> None:
    resp = error_response(KeyError("a\nb"))
    body = json.loads(resp.body)
    assert resp.status_code == 500 and body["error"]["type"] == "InternalError"
    assert "\n" not in body["error"]["message"]


def test_a_held_lock_is_a_4xx_that_says_ask_again_and_comes_back_as_busy() -> None:
    # A contended data lock is not a server fault: 423 with Retry-After, and the remote client
    # raises the same Busy (exit 7) a local command would.
    from tusk.api.remote import _raise_for
    from tusk.errors import Busy, exit_code

    resp = error_response(Busy("another tusk process is writing data; try again shortly"))
    assert resp.status_code == 423 and resp.headers["retry-after"] == "1"
    with pytest.raises(Busy, match="try again shortly") as e:
        _raise_for(resp.status_code, resp.body)
    assert exit_code(e.value) == 7
