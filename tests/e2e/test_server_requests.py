"""End to end against a real ``tusk serve``: every request body is a typed model (issue 11).

A wrongly typed argument (a number for a name, a broken ``__bytes__`` or ``__set__``, a number
past any range, a ref of the wrong kind) is refused with a 400 and the one line the CLI would
print, in the API's error shape, and changes nothing. The OpenAPI schema describes each body,
so a client (or a fuzzer, tests/fault/test_http_fuzz.py) can tell what a method takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from server_helpers import TOKEN, running_server

pytestmark = pytest.mark.e2e

H = {"Authorization": f"Bearer {TOKEN}"}


def repo_ref(name: str, project: str = "default") -> dict[str, Any]:
    return {"__type__": "RepoRef", "project": project, "repo": name}


def commit_ref(repo: str, branch: str = "master") -> dict[str, Any]:
    return {"__type__": "CommitRef", "repo": repo_ref(repo), "branch": branch}


def file_ref(repo: str, path: str, branch: str = "master") -> dict[str, Any]:
    return {"__type__": "FileRef", "commit": commit_ref(repo, branch), "path": path}


@pytest.fixture
def server(tusk: Any) -> Iterator[Any]:
    with running_server(tusk) as s:
        yield s


@pytest.fixture
def post(server: Any) -> Callable[..., httpx.Response]:
    def post(path: str, body: Any = None, **kw: Any) -> httpx.Response:
        if "content" not in kw:
            kw["json"] = body
        kw["headers"] = {**H, **kw.get("headers", {})}
        return httpx.post(f"{server.url}{path}", timeout=30, **kw)

    return post


def result(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()["result"]


def state(post: Callable[..., httpx.Response]) -> Any:
    """What a user could see: projects, repos with their branches and commits."""
    repos = result(post("/v1/pfs/list_repos", {"project": None}))
    return (
        [p["name"] for p in result(post("/v1/pfs/list_projects", {}))],
        sorted((r["project"], r["name"], r["size_bytes"]) for r in repos),
        [[(b["name"], b["head"]) for b in result(post("/v1/pfs/list_branches",
                                                        {"ref": repo_ref(r["name"], r["project"])}))]
         for r in sorted(repos, key=lambda r: r["name"])],
        [c["id"] for c in result(post("/v1/pfs/list_commit_sets", {}))],
    )


def refused(r: httpx.Response, message: str | None = None) -> str:
    """A 4xx in the API's error shape with one line; returns the line."""
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text}"
    err = r.json()["error"]
    assert set(err) == {"type", "message"}
    assert err["type"] == "InvalidArgument", err
    line = err["message"]
    assert line and "\n" not in line, line
    assert "internal error" not in line and "Traceback" not in line
    if message is not None:
        assert line == message
    return line


# The cases the issue names, each with the line it must answer.
BAD: list[tuple[str, Any, str]] = [
    ("/v1/pfs/create_project", {"name": 7}, "create_project.name: expected a string, got 7"),
    ("/v1/pfs/create_project", {"name": {"__bytes__": "!!not base64!!"}},
     'create_project.name: expected a string, got {"__bytes__":"!!not base64!!"}'),
    ("/v1/pfs/create_repo", {"ref": {"__set__": 5}},
     "create_repo.ref: unknown field __set__ (a RepoRef has __type__, project, repo)"),
    ("/v1/pfs/create_repo", {"ref": "images"},
     'create_repo.ref: expected a RepoRef (an object with __type__, project, repo), got "images"'),
    ("/v1/pfs/inspect_repo", {"ref": commit_ref("images")},
     "inspect_repo.ref: expected a RepoRef, got a CommitRef"),
    ("/v1/pfs/inspect_repo", {"ref": {"__type__": {}, "project": "", "repo": ""}},  # fuzzer-found
     "inspect_repo.ref: expected a RepoRef, got an unknown type {}"),
    ("/v1/pfs/list_commits", {"ref": repo_ref("images"), "number": 10**30},
     "list_commits.number: expected at most 9223372036854775807, got 1000000000000000000000000000000"),
    ("/v1/pfs/inspect_commit", {"ref": commit_ref("images"), "wait": True, "timeout": 1e30},
     "inspect_commit.timeout: expected at most 1000000000, got 1e+30"),
    ("/v1/pfs/list_commits", {"ref": repo_ref("images"), "number": -1},
     "list_commits.number: expected at least 0, got -1"),
    ("/v1/pfs/read_file", {"ref": file_ref("images", "/a.txt"), "offset": "3"},
     'read_file.offset: expected a whole number, got "3"'),
    ("/v1/pfs/delete_repo", {"ref": repo_ref("images"), "force": "yes"},
     'delete_repo.force: expected true or false, got "yes"'),
    ("/v1/pfs/create_project", {}, "create_project.name: missing (a required argument)"),
    ("/v1/pfs/create_project", {"name": "p", "colour": "red"},
     "create_project: unknown argument colour (create_project takes name, description)"),
    ("/v1/pfs/create_project", [1, 2],
     "create_project: the body must be a JSON object of arguments, got [1,2]"),
    ("/v1/pfs/create_branch", {"ref": repo_ref("images"), "name": "b",
                               "provenance": [[repo_ref("images"), 5]]},
     "create_branch.provenance[0][1]: expected a string, got 5"),
    ("/v1/pps/create_pipeline", {"spec": {"__type__": "PipelineSpec", "doc": {}},
                                 "coming": {"__set__": 5}},
     "create_pipeline.coming.__set__: expected a list, got 5"),
    ("/v1/pps/logs", {"pipeline": "p", "inputs": "a"}, 'logs.inputs: expected a list, got "a"'),
]


def test_wrongly_typed_arguments_get_one_line_and_change_nothing(post: Any) -> None:
    assert result(post("/v1/pfs/create_repo", {"ref": repo_ref("images")}))["name"] == "images"
    sid = result(post("/v1/pfs/modify", {"ref": commit_ref("images")}))
    assert result(post(f"/v1/sessions/{sid}/put_stream", content=b"hi", params={"path": "/a.txt"})) is None
    assert result(post(f"/v1/sessions/{sid}/close", {}))["state"] == "FINISHED"
    before = state(post)
    for path, body, message in BAD:
        refused(post(path, body), message)
    assert state(post) == before
    assert post("/v1/pfs/list_repos", {}).status_code == 200  # and the server serves on


def test_bodies_that_are_not_objects(post: Any) -> None:
    assert refused(post("/v1/pfs/list_repos", content=b"{not json",
                        headers={"Content-Type": "application/json"})).startswith(
        "list_repos: the body is not valid JSON")
    refused(post("/v1/pfs/list_repos", 5),
            "list_repos: the body must be a JSON object of arguments, got 5")
    # A method that needs no argument takes no body at all; one that does says so.
    assert [p["name"] for p in result(post("/v1/pfs/list_projects", content=b""))] == ["default"]
    refused(post("/v1/pfs/create_project", content=b""),
            "create_project: the body must be a JSON object of arguments, got nothing")


def test_a_refused_session_operation_leaves_the_session_usable(post: Any) -> None:
    result(post("/v1/pfs/create_repo", {"ref": repo_ref("r")}))
    sid = result(post("/v1/pfs/modify", {"ref": commit_ref("r")}))
    refused(post(f"/v1/sessions/{sid}/delete", {"path": 5, "recursive": True}),
            "delete.path: expected a string, got 5")
    refused(post(f"/v1/sessions/{sid}/copy", {"src": "r@master:/x", "dest": "/y"}),
            'copy.src: expected a FileRef (an object with __type__, commit, path), got "r@master:/x"')
    refused(post(f"/v1/sessions/{sid}/put_stream", content=b"x", params={"path": "/a", "append": "maybe"}),
            'put_stream.append: expected true or false, got "maybe"')
    assert result(post(f"/v1/sessions/{sid}/put_stream", content=b"ok", params={"path": "/a"})) is None
    info = result(post(f"/v1/sessions/{sid}/close", {}))
    assert info["state"] == "FINISHED"
    files = result(post("/v1/pfs/list_file", {"ref": file_ref("r", "/")}))
    assert [(f["path"], f["size"]) for f in files] == [("/a", 2)]
    r = post(f"/v1/sessions/{sid}/frobnicate", {})
    assert r.status_code == 404 and r.json()["error"]["type"] == "NotFound"


def test_unknown_routes_answer_in_the_error_shape(post: Any, server: Any) -> None:
    r = post("/v1/pfs/not_a_method", {})
    assert r.status_code == 404 and r.json()["error"]["type"] == "NotFound"
    assert "not_a_method" in r.json()["error"]["message"]
    r = httpx.get(f"{server.url}/v1/pfs/list_repos", headers=H)
    assert r.status_code == 405 and "POST" in r.json()["error"]["message"]


def test_the_sdk_gets_the_same_line(server: Any) -> None:
    import tusk
    from tusk.errors import InvalidArgument

    with tusk.Client(server.url, auth_token=TOKEN) as c:
        with pytest.raises(InvalidArgument) as e:
            c.pfs.service.create_project(7)
        assert str(e.value) == "create_project.name: expected a string, got 7"
        assert c.pfs.service.list_projects()[0].name == "default"


def test_openapi_describes_every_body(server: Any) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    schemas = doc["components"]["schemas"]

    def resolve(s: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in s:
            s = schemas[s["$ref"].rsplit("/", 1)[-1]]
        return s

    body = resolve(doc["paths"]["/v1/pfs/create_project"]["post"]["requestBody"]["content"]
                   ["application/json"]["schema"])
    assert body["required"] == ["name"] and body["additionalProperties"] is False
    assert body["properties"]["name"]["type"] == "string"
    ref = resolve(resolve(doc["paths"]["/v1/pfs/create_repo"]["post"]["requestBody"]["content"]
                          ["application/json"]["schema"])["properties"]["ref"])
    assert set(ref["properties"]) == {"__type__", "project", "repo"}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                s = resolve(content["application/json"]["schema"])
                assert s.get("properties") is not None or s.get("additionalProperties") is False, path
                assert s.get("additionalProperties") is False, f"{path} takes a free-form body"
            assert "422" not in op["responses"], path  # errors are 400s in our own shape


def test_openapi_describes_every_answer(server: Any, post: Any) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    schemas = doc["components"]["schemas"]

    def resolve(s: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in s:
            s = schemas[s["$ref"].rsplit("/", 1)[-1]]
        return s

    ok = doc["paths"]["/v1/pfs/create_repo"]["post"]["responses"]["200"]
    result_schema = resolve(resolve(ok["content"]["application/json"]["schema"])["properties"]["result"])
    assert result_schema["properties"]["__type__"]["const"] == "RepoInfo"
    answer = result(post("/v1/pfs/create_repo", {"ref": repo_ref("r")}))
    assert set(answer) == set(result_schema["properties"])  # every field documented, none extra
    err = doc["paths"]["/v1/pfs/create_repo"]["post"]["responses"]["4XX"]
    assert set(err["content"]["application/json"]["schema"]["properties"]) == {"error"}
    streams = doc["paths"]["/v1/pfs/walk_file"]["post"]["responses"]["200"]["content"]
    assert list(streams) == ["application/x-ndjson"]


# Values no argument of any method takes: the kinds of request that were 500s, for every argument.
WRONG = [{"__bytes__": "!!not base64!!"}, {"__set__": 5}, 10**30, [1, [2]], {"__type__": "Popen"}]


def example(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    """A value that fits ``schema`` (required fields only), to carry one wrong argument."""
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return example(next(s for s in schema[key] if s.get("type") != "null"), schemas)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: example(props[k], schemas) for k in schema.get("required", [])}
    return {"string": "nope", "integer": 0, "number": 0, "boolean": False, "array": []}[kind]


def test_every_argument_of_every_method_refuses_wrong_types(server: Any, post: Any) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    schemas = doc["components"]["schemas"]
    result(post("/v1/pfs/create_repo", {"ref": repo_ref("nope")}))  # what the examples name
    result(post("/v1/pfs/create_branch", {"ref": repo_ref("nope"), "name": "nope"}))
    before = state(post)
    sent = 0
    for path, ops in doc["paths"].items():
        body_schema = ops.get("post", {}).get("requestBody", {}).get("content", {}).get(
            "application/json", {}).get("schema")
        if body_schema is None or "{sid}" in path:
            continue
        model = schemas[body_schema["$ref"].rsplit("/", 1)[-1]]
        method = path.rsplit("/", 1)[-1]
        base = example(model, schemas)
        for arg in model["properties"]:
            for wrong in WRONG:
                line = refused(post(path, {**base, arg: wrong}))
                assert line.startswith((f"{method}.{arg}:", f"{method}.{arg}.", f"{method}.{arg}[")), line
                sent += 1
    assert sent > 700
    assert state(post) == before
