"""Behaviour of pipeline specs (tusk.pps.spec): what a user writing spec files would notice."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from tusk.errors import InvalidArgument
from tusk.pps.spec import (
    CronInput,
    CrossInput,
    GroupInput,
    JoinInput,
    PfsInput,
    PipelineSpec,
    SpecError,
    UnionInput,
    format_duration,
    load_spec_documents,
    parse_cron,
    parse_duration,
    parse_spec,
    parse_specs,
)

# --- example specs, modelled on Pachyderm's own examples ----------------------------------------

EDGES: dict[str, Any] = {
    "pipeline": {"name": "edges"},
    "description": "Finds the edges in every image with OpenCV.",
    "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv"},
    "input": {"pfs": {"repo": "images", "glob": "/*"}},
}

MONTAGE: dict[str, Any] = {
    "pipeline": {"name": "montage"},
    "description": "Tiles every image and its edges into one picture.",
    "input": {
        "cross": [
            {"pfs": {"repo": "images", "glob": "/"}},
            {"pfs": {"repo": "edges", "glob": "/"}},
        ]
    },
    "transform": {
        "cmd": ["sh"],
        "image": "v4tech/imagemagick",
        "stdin": [
            (
                "montage -shadow -background SkyBlue -geometry 300x300+2+2"
                " $(find -L /pfs/images /pfs/edges -type f | sort) /pfs/out/montage.png"
            )
        ],
    },
}

RETAIL_JOIN: dict[str, Any] = {
    "pipeline": {"name": "store_sales"},
    "input": {
        "join": [
            {"pfs": {"repo": "stores", "glob": "/STOREID(*).txt", "join_on": "$1"}},
            {
                "pfs": {
                    "repo": "purchases",
                    "glob": "/*_STOREID(*).txt",
                    "join_on": "$1",
                    "outer_join": True,
                }
            },
        ]
    },
    "transform": {"cmd": ["python3", "/join.py"], "image": "python:3.11"},
}

LAB_GROUP: dict[str, Any] = {
    "pipeline": {"name": "lipids_by_patient"},
    "input": {
        "group": [
            {"pfs": {"repo": "labresults", "glob": "/T*-PATID(*)-LIPID(*).txt", "group_by": "$1"}}
        ]
    },
    "transform": {"cmd": ["bash"], "stdin": ["cat /pfs/labresults/* > /pfs/out/all.txt"]},
}

SCRAPER_CRON: dict[str, Any] = {
    "pipeline": {"name": "scraper"},
    "input": {"cron": {"name": "tick", "spec": "@every 60s", "overwrite": True}},
    "transform": {"cmd": ["python3", "/scrape.py"], "env": {"URL": "https://example.com"}},
}


def spec_with(**changes: Any) -> dict[str, Any]:
    """EDGES with top-level keys replaced (None removes a key)."""
    doc = copy.deepcopy(EDGES)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def error_of(doc: Any, source: str = "edges.json") -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(doc, source)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{source}: ")
    return message


# --- the examples parse, with Pachyderm's defaults ------------------------------------------


def test_edges_spec_gets_pachyderms_defaults() -> None:
    spec = parse_spec(EDGES, "edges.json")
    assert spec.name == "edges"
    assert spec.project == "default"
    assert spec.description.startswith("Finds the edges")
    assert spec.transform.image == "pachyderm/opencv"
    assert spec.transform.cmd == ["python3", "/edges.py"]
    assert spec.transform.stdin == [] and spec.transform.env == {}
    assert spec.transform.accept_return_code == [] and spec.transform.working_dir is None
    assert spec.parallelism == 1
    assert spec.output_branch == "master"
    assert spec.datum_tries == 3
    assert spec.datum_timeout is None and spec.job_timeout is None
    assert spec.reprocess_spec == "until_success"
    assert spec.salt == ""
    assert spec.spout is None and spec.service is None
    assert spec.pipeline_type == "transform"
    assert spec.ignored_fields == []
    assert spec.input == PfsInput(
        name="images", repo="images", project="default", branch="master", glob="/*"
    )
    assert spec.input_names() == ["images"]
    assert spec.user_doc == EDGES


def test_no_image_means_the_host_sandbox_and_project_defaults_to_the_context() -> None:
    doc = spec_with(transform={"cmd": ["true"]})
    spec = parse_spec(doc, default_project="research")
    assert spec.transform.image == ""  # no image named: the code runs in the host sandbox
    assert "image" not in spec.to_dict()["transform"]
    assert spec.project == "research"
    assert isinstance(spec.input, PfsInput)
    assert spec.input.project == "research"  # inputs default to the pipeline's project
    explicit = spec_with(pipeline={"name": "edges", "project": {"name": "vision"}})
    assert parse_spec(explicit, default_project="research").project == "vision"


def test_montage_crosses_two_inputs() -> None:
    spec = parse_spec(MONTAGE)
    assert isinstance(spec.input, CrossInput)
    assert [leaf.name for leaf in spec.input.walk()] == ["images", "edges"]
    assert spec.input_names() == ["images", "edges"]
    assert spec.transform.stdin[0].startswith("montage -shadow")


def test_join_keeps_keys_and_outer_join() -> None:
    spec = parse_spec(RETAIL_JOIN)
    assert isinstance(spec.input, JoinInput)
    stores, purchases = spec.input.inputs
    assert isinstance(stores, PfsInput) and isinstance(purchases, PfsInput)
    assert (stores.join_on, stores.outer_join) == ("$1", False)
    assert (purchases.join_on, purchases.outer_join) == ("$1", True)
    assert spec.ignored_fields == []


def test_group_by_spec() -> None:
    spec = parse_spec(LAB_GROUP)
    assert isinstance(spec.input, GroupInput)
    (results,) = spec.input.inputs
    assert isinstance(results, PfsInput)
    assert results.group_by == "$1"
    assert results.compiled_glob.match("/T1-PATID42-LIPID7.txt") == ("42", "7")


def test_cron_input_defaults_its_repo() -> None:
    spec = parse_spec(SCRAPER_CRON)
    assert isinstance(spec.input, CronInput)
    assert spec.input.name == "tick"
    assert spec.input.repo == "scraper_tick"
    assert spec.input.overwrite is True
    assert spec.input.start is None
    assert spec.input.schedule.every == 60
    assert spec.transform.env == {"URL": "https://example.com"}


def test_cron_start_is_an_rfc3339_time() -> None:
    doc = copy.deepcopy(SCRAPER_CRON)
    doc["input"]["cron"]["start"] = "2024-03-01T12:00:00Z"
    spec = parse_spec(doc)
    assert isinstance(spec.input, CronInput)
    assert spec.input.start == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert spec.to_dict()["input"]["cron"]["start"] == "2024-03-01T12:00:00Z"


def test_union_members_may_share_a_name() -> None:
    doc = spec_with(
        input={
            "union": [
                {"pfs": {"repo": "jan", "glob": "/*", "name": "month"}},
                {"pfs": {"repo": "feb", "glob": "/*", "name": "month"}},
            ]
        }
    )
    spec = parse_spec(doc)
    assert isinstance(spec.input, UnionInput)
    assert spec.input_names() == ["month"]


# --- spellings and formats -------------------------------------------------------------------

SNAKE: dict[str, Any] = {
    "pipeline": {"name": "clean", "project": {"name": "lab"}},
    "transform": {
        "cmd": ["python3", "/clean.py"],
        "err_cmd": ["true"],
        "accept_return_code": [2],
        "working_dir": "/work",
        "datum_batching": True,
    },
    "parallelism_spec": {"constant": 4},
    "datum_tries": 1,
    "datum_timeout": "5m",
    "job_timeout": "1h30m",
    "reprocess_spec": "every_job",
    "output_branch": "staging",
    "datum_set_spec": {"number": 10},
    "input": {
        "cross": [
            {
                "join": [
                    {"pfs": {"repo": "a", "glob": "/(*).csv", "join_on": "$1", "outer_join": True}},
                    {
                        "pfs": {
                            "repo": "b",
                            "glob": "/(*).csv",
                            "join_on": "$1",
                            "empty_files": True,
                        }
                    },
                ]
            },
            {"pfs": {"repo": "c", "glob": "/*", "group_by": "", "repo_type": "user", "lazy": True}},
        ]
    },
}

CAMEL: dict[str, Any] = {
    "pipeline": {"name": "clean", "project": {"name": "lab"}},
    "transform": {
        "cmd": ["python3", "/clean.py"],
        "errCmd": ["true"],
        "acceptReturnCode": [2],
        "workingDir": "/work",
        "datumBatching": True,
    },
    "parallelismSpec": {"constant": 4},
    "datumTries": 1,
    "datumTimeout": "5m",
    "jobTimeout": "1h30m",
    "reprocessSpec": "every_job",
    "outputBranch": "staging",
    "datumSetSpec": {"number": 10},
    "input": {
        "cross": [
            {
                "join": [
                    {"pfs": {"repo": "a", "glob": "/(*).csv", "joinOn": "$1", "outerJoin": True}},
                    {"pfs": {"repo": "b", "glob": "/(*).csv", "joinOn": "$1", "emptyFiles": True}},
                ]
            },
            {"pfs": {"repo": "c", "glob": "/*", "groupBy": "", "repoType": "user", "lazy": True}},
        ]
    },
}


def test_camel_case_and_snake_case_give_the_same_effective_spec() -> None:
    snake, camel = parse_spec(SNAKE), parse_spec(CAMEL)
    assert snake == camel
    assert snake.to_dict() == camel.to_dict()
    assert camel.user_doc == CAMEL  # the document as written is kept
    assert camel.parallelism == 4
    assert camel.datum_tries == 1
    assert camel.datum_timeout == 300
    assert camel.job_timeout == 5400
    assert camel.reprocess_spec == "every_job"
    assert camel.output_branch == "staging"
    assert camel.datum_set_spec == {"number": 10}
    assert camel.transform.datum_batching is True
    assert camel.transform.working_dir == "/work"


def test_effective_spec_is_snake_case_json_and_reads_back() -> None:
    for doc in (EDGES, MONTAGE, RETAIL_JOIN, LAB_GROUP, SCRAPER_CRON, CAMEL):
        spec = parse_spec(doc)
        effective = spec.to_dict()
        text = json.dumps(effective)  # JSON-able
        assert "joinOn" not in text and "parallelismSpec" not in text
        assert parse_spec(json.loads(text)) == spec
    effective = parse_spec(CAMEL).to_dict()
    assert effective["parallelism_spec"] == {"constant": 4}
    assert effective["datum_timeout"] == "300s"
    assert effective["pipeline"] == {"name": "clean", "project": {"name": "lab"}}


def test_a_project_may_be_given_as_a_plain_string() -> None:
    doc = spec_with(pipeline={"name": "edges", "project": "vision"})
    assert parse_spec(doc).project == "vision"


def test_one_json_object() -> None:
    docs = load_spec_documents(json.dumps(EDGES), "edges.json")
    assert docs == [EDGES]


def test_json_list_and_concatenated_json_objects() -> None:
    as_list = json.dumps([EDGES, MONTAGE])
    concatenated = json.dumps(EDGES, indent=2) + "\n" + json.dumps(MONTAGE) + "\n"
    assert load_spec_documents(as_list) == [EDGES, MONTAGE]
    assert load_spec_documents(concatenated) == [EDGES, MONTAGE]
    assert [s.name for s in parse_specs(concatenated)] == ["edges", "montage"]


YAML_TWO = """\
---
pipeline:
  name: edges
transform:
  image: pachyderm/opencv
  cmd: [python3, /edges.py]
input:
  pfs:
    repo: images
    glob: "/*"
---
pipeline:
  name: scraper
transform:
  cmd: [python3, /scrape.py]
  env:
    PORT: 8080
    DEBUG: true
input:
  cron:
    name: tick
    spec: "*/10 * * * *"
    start: 2024-03-01T12:00:00Z
"""


def test_yaml_documents_separated_by_dashes() -> None:
    docs = load_spec_documents(YAML_TWO, "pipelines.yaml")
    assert [d["pipeline"]["name"] for d in docs] == ["edges", "scraper"]
    # Timestamps stay text, so the user document is still plain JSON.
    assert docs[1]["input"]["cron"]["start"] == "2024-03-01T12:00:00Z"
    edges, scraper = parse_specs(YAML_TWO, "pipelines.yaml")
    assert edges == parse_spec(spec_with(description=None))  # same as the JSON version
    # Numbers and booleans in env are written as JSON would, not refused.
    assert scraper.transform.env == {"PORT": "8080", "DEBUG": "true"}


def test_yaml_list_of_specs() -> None:
    text = "- pipeline: {name: a}\n  transform: {cmd: [x]}\n  input: {pfs: {repo: r, glob: /}}\n"
    assert [s.name for s in parse_specs(text)] == ["a"]


def test_flow_style_yaml_starting_with_a_brace() -> None:
    text = "{pipeline: {name: a}, transform: {cmd: [x]}, input: {pfs: {repo: r, glob: /}}}"
    assert load_spec_documents(text)[0]["pipeline"] == {"name": "a"}


def test_syntax_errors_give_line_and_column() -> None:
    bad_json = '{\n  "pipeline": {"name": "edges"}\n  "transform": {}\n}'
    with pytest.raises(SpecError) as info:
        load_spec_documents(bad_json, "edges.json")
    assert str(info.value).startswith("edges.json: line 3, column 3: ")
    bad_yaml = "pipeline:\n  name: edges\n transform: x\n"
    with pytest.raises(SpecError) as info:
        load_spec_documents(bad_yaml, "edges.yaml")
    assert str(info.value).startswith("edges.yaml: line 3, column ")
    assert "\n" not in str(info.value)


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(SpecError, match='duplicate key "pipeline"'):
        load_spec_documents('{"pipeline": {}, "pipeline": {}}')
    with pytest.raises(SpecError, match="line 2.*duplicate key 'a'"):
        load_spec_documents("a: 1\na: 2\n")


def test_empty_files_and_non_objects_are_refused() -> None:
    with pytest.raises(SpecError, match="no pipeline spec found"):
        load_spec_documents("  \n")
    with pytest.raises(SpecError, match="no pipeline spec found"):
        load_spec_documents("---\n---\n")
    with pytest.raises(SpecError, match=r"document 2: expected a pipeline spec object"):
        load_spec_documents("a: 1\n---\njust text\n")
    with pytest.raises(SpecError, match=r"document 1, item 2: expected a pipeline spec object"):
        load_spec_documents('[{"a": 1}, 3]')
    assert error_of([EDGES]) == "edges.json: a pipeline spec must be an object, not a list"


def test_several_specs_in_one_file_name_the_spec_in_errors() -> None:
    broken = copy.deepcopy(MONTAGE)
    del broken["input"]["cross"][1]["pfs"]["glob"]
    text = json.dumps(EDGES) + json.dumps(broken)
    with pytest.raises(SpecError) as info:
        parse_specs(text, "all.json")
    assert str(info.value) == 'all.json (spec 2): input.cross[1].pfs.glob: required (e.g. "/*")'


# --- validation: each error names the field path -------------------------------------------


def test_missing_glob_deep_in_the_tree() -> None:
    doc = copy.deepcopy(MONTAGE)
    del doc["input"]["cross"][1]["pfs"]["glob"]
    assert error_of(doc) == 'edges.json: input.cross[1].pfs.glob: required (e.g. "/*")'


@pytest.mark.parametrize(
    ("pipeline", "path", "fragment"),
    [
        ({}, "pipeline.name", "required"),
        ({"name": ""}, "pipeline.name", "required"),
        ({"name": "_edges"}, "pipeline.name", "start with a letter or digit"),
        ({"name": "edges.v2"}, "pipeline.name", "only letters, digits"),
        ({"name": "e" * 52}, "pipeline.name", "longer than 51"),
        ({"name": "ok", "project": {"name": "-bad"}}, "pipeline.project.name", "invalid"),
        ({"name": "ok", "project": {"name": "p" * 52}}, "pipeline.project.name", "longer"),
    ],
)
def test_pipeline_and_project_names(pipeline: dict[str, Any], path: str, fragment: str) -> None:
    message = error_of(spec_with(pipeline=pipeline))
    assert message.startswith(f"edges.json: {path}: ")
    assert fragment in message


def test_longest_allowed_pipeline_name() -> None:
    name = "e" * 51
    doc = spec_with(pipeline={"name": name}, input={"pfs": {"repo": "images", "glob": "/*"}})
    assert parse_spec(doc).name == name


def test_transform_rules() -> None:
    assert error_of(spec_with(transform=None)).startswith("edges.json: transform: required")
    assert error_of(spec_with(transform={"image": "x"})).startswith(
        "edges.json: transform.cmd: required"
    )
    assert error_of(spec_with(transform={"cmd": []})).startswith(
        "edges.json: transform.cmd: required"
    )
    message = error_of(spec_with(transform={"cmd": "python3 /edges.py --fast"}))
    assert message == (
        "edges.json: transform.cmd: must be a list of strings, not a string;"
        ' write ["python3", "/edges.py", "--fast"]'
    )
    assert error_of(spec_with(transform={"cmd": ["bash"], "stdin": "set -e\necho hi"})) == (
        "edges.json: transform.stdin: must be a list of lines, not one string;"
        ' write ["set -e", "echo hi"]'
    )
    assert error_of(spec_with(transform={"cmd": ["sleep", 5]})) == (
        "edges.json: transform.cmd[1]: must be a string, not a number; put it in quotes"
    )
    assert error_of(spec_with(transform={"cmd": ["x"], "accept_return_code": ["one"]})) == (
        "edges.json: transform.accept_return_code[0]: must be a whole number, not a string"
    )
    assert error_of(spec_with(transform={"cmd": ["x"], "env": {"A": ["b"]}})) == (
        "edges.json: transform.env.A: must be a string, not a list"
    )


def test_input_is_required_except_for_spouts() -> None:
    assert error_of(spec_with(input=None)).startswith("edges.json: input: required")
    spout = parse_spec(spec_with(input=None, spout={}))
    assert spout.input is None and spout.pipeline_type == "spout" and spout.input_names() == []
    assert error_of(spec_with(spout={})).startswith("edges.json: input: not allowed in a spout")
    # A spout that embeds a service may read an input.
    with_service = parse_spec(spec_with(spout={"service": {"internal_port": 8000}}))
    assert with_service.pipeline_type == "spout"


@pytest.mark.parametrize(
    ("tree", "path"),
    [
        ({}, "input"),
        ({"pfs": {"repo": "a", "glob": "/"}, "cron": {"name": "t", "spec": "@daily"}}, "input"),
        ({"cross": [{}]}, "input.cross[0]"),
        ({"union": [{"pfs": {"repo": "a", "glob": "/"}}, {"cross": [{"join": []}, {}]}]}, None),
    ],
)
def test_exactly_one_member_per_input_node(tree: dict[str, Any], path: str | None) -> None:
    message = error_of(spec_with(input=tree))
    if path is None:  # an empty join list is caught first
        assert message == "edges.json: input.union[1].cross[0].join: needs at least one input"
    else:
        assert message == (
            f"edges.json: {path}: set exactly one of pfs, cross, union, join, group, cron"
        )


def test_pfs_input_rules() -> None:
    def pfs(**fields: Any) -> str:
        return error_of(spec_with(input={"pfs": fields}))

    assert pfs(glob="/*") == 'edges.json: input.pfs.repo: required (e.g. "images")'
    assert pfs(repo="bad repo", glob="/*").startswith("edges.json: input.pfs.repo: ")
    assert pfs(repo="images", glob="/*", branch="a/b").startswith("edges.json: input.pfs.branch: ")
    assert pfs(repo="images", glob="/[a").startswith(
        "edges.json: input.pfs.glob: glob '/[a': unclosed '['"
    )
    assert pfs(repo="out", glob="/*").startswith(
        'edges.json: input.pfs.name: required when the repo is "out"'
    )
    assert parse_spec(spec_with(input={"pfs": {"repo": "out", "glob": "/", "name": "o"}}))
    assert pfs(repo="images", glob="/*", name="out").startswith(
        'edges.json: input.pfs.name: "out" is reserved'
    )
    for bad in ("a/b", "a b", "..", "x=y"):
        assert pfs(repo="images", glob="/*", name=bad) == (
            f'edges.json: input.pfs.name: "{bad}" is invalid: use only letters, digits,'
            " '_' and '-'"
        )
    assert pfs(repo="images", glob="/*", commit="0123456789abcdef0123456789abcdef") == (
        "edges.json: input.pfs.commit: not allowed: inputs follow a branch;"
        " use 'tusk create branch --head' to process a specific commit"
    )
    assert pfs(repo="images", glob="/*", repo_type="system").startswith(
        "edges.json: input.pfs.repo_type: "
    )
    assert pfs(repo="edges", glob="/*").startswith("edges.json: input.pfs.repo: ")  # itself


def test_tf_job_is_not_supported() -> None:
    assert error_of(spec_with(tf_job={"tf_job": "{}"})) == "edges.json: tf_job: not supported"


def test_join_and_group_members_must_be_keyed_pfs_inputs() -> None:
    doc = copy.deepcopy(RETAIL_JOIN)
    del doc["input"]["join"][1]["pfs"]["join_on"]
    assert error_of(doc).startswith("edges.json: input.join[1].pfs.join_on: required inside a join")
    doc = copy.deepcopy(RETAIL_JOIN)
    doc["input"]["join"][0] = {"cron": {"name": "t", "spec": "@daily"}}
    assert error_of(doc) == (
        "edges.json: input.join[0]: a join input may only contain pfs inputs (each with join_on)"
    )
    doc = copy.deepcopy(LAB_GROUP)
    doc["input"]["group"][0]["pfs"]["group_by"] = ""
    assert error_of(doc).startswith(
        "edges.json: input.group[0].pfs.group_by: required inside a group"
    )


def test_keys_may_only_name_capture_groups_the_glob_has() -> None:
    doc = copy.deepcopy(RETAIL_JOIN)
    doc["input"]["join"][0]["pfs"]["join_on"] = "$2"
    message = error_of(doc)
    assert message.startswith(
        'edges.json: input.join[0].pfs.join_on: "$2" refers to a capture group the glob'
        ' "/STOREID(*).txt" does not have (it has 1 capture group)'
    )
    doc = copy.deepcopy(RETAIL_JOIN)
    doc["input"]["join"][0]["pfs"]["glob"] = "/*.txt"
    assert "(it has 0 capture groups)" in error_of(doc)
    doc = copy.deepcopy(LAB_GROUP)
    doc["input"]["group"][0]["pfs"]["group_by"] = "${3}"
    assert error_of(doc).startswith('edges.json: input.group[0].pfs.group_by: "${3}" refers')
    # Two groups: "$2", "$1-$2" and "${2}" are fine; "$12" is group 1 followed by "2".
    for key in ("$2", "$1-$2", "${2}", "$12", "patient-$1"):
        doc["input"]["group"][0]["pfs"]["group_by"] = key
        parse_spec(doc)


def test_input_names_must_be_unique_outside_unions() -> None:
    twice = {"cross": [{"pfs": {"repo": "a", "glob": "/*"}}, {"pfs": {"repo": "a", "glob": "/"}}]}
    assert error_of(spec_with(input=twice)) == (
        'edges.json: input.cross[1].pfs.name: "a" (the repo name) is also the name of'
        " input.cross[0].pfs; inputs are mounted at /pfs/<name>, so give one of them a"
        ' different "name"'
    )
    renamed = copy.deepcopy(twice)
    renamed["cross"][1]["pfs"]["name"] = "a2"
    assert parse_spec(spec_with(input=renamed)).input_names() == ["a", "a2"]
    # A name shared inside a union still clashes with an input crossed with the union.
    crossed = {
        "cross": [
            {
                "union": [
                    {"pfs": {"repo": "jan", "glob": "/*", "name": "m"}},
                    {"pfs": {"repo": "feb", "glob": "/*", "name": "m"}},
                ]
            },
            {"pfs": {"repo": "mar", "glob": "/*", "name": "m"}},
        ]
    }
    assert error_of(spec_with(input=crossed)).startswith(
        'edges.json: input.cross[1].pfs.name: "m" is also the name of input.cross[0].union[0].pfs'
    )
    cron_clash = {
        "cross": [
            {"cron": {"name": "tick", "spec": "@daily"}},
            {"pfs": {"repo": "tick", "glob": "/"}},
        ]
    }
    assert error_of(spec_with(input=cron_clash)).startswith("edges.json: input.cross[1].pfs.name: ")


def test_cron_input_rules() -> None:
    def cron(**fields: Any) -> str:
        return error_of(spec_with(input={"cron": fields}))

    assert cron(spec="@daily").startswith("edges.json: input.cron.name: required")
    assert cron(name="tick").startswith("edges.json: input.cron.spec: required")
    assert cron(name="tick", spec="every day").startswith(
        'edges.json: input.cron.spec: cron spec "every day": expected 5 fields'
    )
    assert cron(name="tick", spec="61 * * * *").startswith(
        'edges.json: input.cron.spec: cron spec "61 * * * *": minute field "61": 61 is out of'
    )
    assert cron(name="tick", spec="@daily", start="yesterday").startswith(
        'edges.json: input.cron.start: "yesterday" is not an RFC 3339 time'
    )
    assert cron(name="t" * 60, spec="@daily").startswith("edges.json: input.cron.repo: ")
    assert cron(name="tick", spec="@daily", commit="abc").startswith(
        "edges.json: input.cron.commit: not allowed"
    )
    named = parse_spec(spec_with(input={"cron": {"name": "t", "spec": "never", "repo": "ticks"}}))
    assert isinstance(named.input, CronInput) and named.input.repo == "ticks"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"reprocess_spec": "sometimes"}, 'reprocess_spec: "sometimes" must be'),
        ({"datum_tries": 0}, "datum_tries: must be at least 1"),
        ({"datumTries": -2}, "datum_tries: must be at least 1"),
        ({"datum_tries": "three"}, "datum_tries: must be a whole number"),
        ({"parallelism_spec": {"constant": -1}}, "parallelism_spec.constant: must not be negative"),
        ({"parallelism_spec": 4}, 'parallelism_spec: must be an object, not a number; e.g. {"c'),
        ({"datum_timeout": "30"}, 'datum_timeout: invalid duration "30": missing unit; write'),
        ({"job_timeout": "soon"}, 'job_timeout: invalid duration "soon"'),
        ({"datum_timeout": "0s"}, 'datum_timeout: "0s" must be positive'),
        ({"datum_timeout": 30}, "datum_timeout: must be a string, not a number"),
        ({"maximum_expected_uptime": "1 day"}, "maximum_expected_uptime: invalid duration"),
        ({"output_branch": "a b"}, "output_branch: "),
        ({"pod_patch": "[{not json"}, "pod_patch: must be valid JSON"),
        ({"pod_spec": "{"}, "pod_spec: must be valid JSON"),
        ({"autoscaling": "yes"}, "autoscaling: must be true or false, not a string"),
        ({"description": ["x"]}, "description: must be a string, not a list"),
        ({"datum_set_spec": {"number": -1}}, "datum_set_spec.number: must not be negative"),
        ({"datum_set_spec": {"number": 2, "per_worker": 2}}, "datum_set_spec: set only one"),
        ({"service": {"type": "Magic"}}, 'service.type: "Magic" must be one of NodePort'),
        (
            {"service": {"internal_port": 80}, "parallelism_spec": {"constant": 2}},
            "parallelism_spec.constant: must be 1 for a service pipeline",
        ),
        (
            {"spout": {}, "input": None, "parallelism_spec": {"constant": 3}},
            "parallelism_spec.constant: must be 1 for a spout pipeline",
        ),
        ({"spout": {}, "input": None, "autoscaling": True}, "autoscaling: not allowed with spout"),
        ({"transform": {"err_stdin": ["x"], "cmd": ["y"]}}, "transform.err_stdin: needs"),
    ],
)
def test_top_level_rules(changes: dict[str, Any], expected: str) -> None:
    assert error_of(spec_with(**changes)).startswith(f"edges.json: {expected}")


def test_null_means_unset_and_zero_parallelism_means_one() -> None:
    spec = parse_spec(spec_with(description=None, parallelism_spec={"constant": 0}, salt="s1"))
    assert spec.parallelism == 1 and spec.description == "" and spec.salt == "s1"
    doc = spec_with()
    doc["datum_timeout"] = None  # "datum_timeout:" in YAML
    assert parse_spec(doc).datum_timeout is None


def test_numbers_as_strings_like_protobuf_json() -> None:
    spec = parse_spec(spec_with(parallelism_spec={"constant": "2"}, datum_tries="5"))
    assert (spec.parallelism, spec.datum_tries) == (2, 5)


def test_pod_patch_is_kept_as_json_text() -> None:
    patch = [{"op": "add", "path": "/spec/x", "value": 1}]
    as_text = parse_spec(spec_with(pod_patch=json.dumps(patch)))
    as_yaml_object = parse_spec(spec_with(pod_patch=patch))
    assert json.loads(as_text.extras["pod_patch"]) == patch
    assert json.loads(as_yaml_object.extras["pod_patch"]) == patch
    assert as_text.ignored_fields == ["pod_patch"]


# --- unknown fields --------------------------------------------------------------------------


def test_unknown_fields_are_errors_with_suggestions() -> None:
    doc = spec_with(input={"pfs": {"repo": "images", "globb": "/*"}})
    assert error_of(doc) == 'edges.json: input.pfs.globb: unknown field; did you mean "glob"?'
    doc = spec_with(input={"pfs": {"repo": "images", "glob": "/*", "joinOnn": "$1"}})
    assert error_of(doc) == 'edges.json: input.pfs.joinOnn: unknown field; did you mean "joinOn"?'
    assert error_of(spec_with(datum_triez=2)) == (
        'edges.json: datum_triez: unknown field; did you mean "datum_tries"?'
    )
    # A field written one level too high points to where it belongs.
    assert error_of(spec_with(cmd=["x"])) == (
        "edges.json: cmd: unknown field; did you mean transform.cmd?"
    )
    assert error_of(spec_with(input={"repo": "images"})) == (
        "edges.json: input.repo: unknown field; did you mean input.pfs.repo?"
    )
    # Nothing close: list what is allowed when that list is short.
    assert error_of(spec_with(pipeline={"name": "e", "color": "red"})) == (
        "edges.json: pipeline.color: unknown field; known fields: name, project"
    )


def test_a_field_spelled_twice_is_an_error() -> None:
    doc = spec_with(datum_tries=2)
    doc["datumTries"] = 4
    assert (
        error_of(doc) == 'edges.json: datum_tries: given twice, as "datum_tries" and "datumTries"'
    )


def test_yaml_boolean_keys_are_explained() -> None:
    doc = load_spec_documents("pipeline: {name: e}\non: 1\n")[0]
    assert "quote it" in error_of(doc)


# --- fields with no local effect ---------------------------------------------------------------


def test_kubernetes_only_fields_are_accepted_and_listed() -> None:
    doc = spec_with(
        resourceRequests={
            "cpu": 0.5,
            "memory": "1Gi",
            "gpu": {"type": "nvidia.com/gpu", "number": 1},
        },
        resource_limits={"memory": "2Gi"},
        sidecar_resource_limits={"cpu": "0.1"},
        tolerations=[
            {"key": "dedicated", "operator": "EQUAL", "value": "gpu", "effect": "NoSchedule"}
        ],
        scheduling_spec={"node_selector": {"disktype": "ssd"}},
        metadata={"labels": {"team": "vision"}},
        podPatch='[{"op": "add", "path": "/x", "value": 1}]',
        autoscaling=True,
        egress={"URL": "s3://bucket/dir"},
        s3_out=True,
        maximum_expected_uptime="10m",
        transform={
            "cmd": ["x"],
            "user": "root",
            "debug": True,
            "memoryVolume": True,
            "secrets": [{"name": "creds", "env_var": "TOKEN", "key": "token"}],
            "image_pull_secrets": ["regcred"],
            "dockerfile": "./Dockerfile",
        },
    )
    spec = parse_spec(doc)
    # resource_limits is honoured (memory, cpu, disk bound each datum), so it is not listed;
    # so are transform.user, dockerfile, secrets and image_pull_secrets (images and secrets).
    assert spec.ignored_fields == [
        "resource_requests",
        "sidecar_resource_limits",
        "pod_patch",
        "tolerations",
        "scheduling_spec",
        "metadata",
        "maximum_expected_uptime",
        "autoscaling",
        "s3_out",
        "transform.debug",
        "transform.memory_volume",
    ]
    assert spec.autoscaling is True and spec.s3_out is True
    assert spec.egress == {"URL": "s3://bucket/dir"}
    assert spec.extras["resource_requests"]["gpu"] == {"type": "nvidia.com/gpu", "number": 1}
    assert spec.extras["sidecar_resource_limits"] == {"cpu": 0.1}
    assert spec.transform.extras["memory_volume"] is True
    # Stored: the effective spec keeps them, in snake_case, and reads back to the same spec.
    effective = spec.to_dict()
    assert effective["scheduling_spec"] == {"node_selector": {"disktype": "ssd"}}
    assert effective["transform"]["memory_volume"] is True
    assert parse_spec(effective) == spec


def test_fields_left_at_their_zero_value_are_not_reported() -> None:
    doc = spec_with(autoscaling=False, transform={"cmd": ["x"], "debug": False})
    assert parse_spec(doc).ignored_fields == []


def test_input_level_fields_without_local_effect_are_listed_by_path() -> None:
    tree = {
        "cross": [
            {"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$1"}},  # not inside a join
            {"pfs": {"repo": "b", "glob": "/", "s3": True}},
        ]
    }
    spec = parse_spec(spec_with(input=tree))
    assert spec.ignored_fields == ["input.cross[0].pfs.join_on", "input.cross[1].pfs.s3"]
    bad = {"pfs": {"repo": "b", "glob": "/*", "s3": True}}
    assert (
        error_of(spec_with(input=bad)) == 'edges.json: input.pfs.glob: must be "/" for an s3 input'
    )


# --- errors ------------------------------------------------------------------------------------


def test_spec_errors_are_invalid_arguments_with_parts() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_spec(spec_with(datum_tries=0), "s.yaml")
    err = info.value
    assert isinstance(err, SpecError)
    assert (err.source, err.path) == ("s.yaml", "datum_tries")
    assert str(err) == f"s.yaml: datum_tries: {err.problem}"


def test_values_with_newlines_stay_on_one_line() -> None:
    message = error_of(spec_with(reprocess_spec="a\nb"))
    assert "\n" not in message


# --- Go durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1.5h", 5400),
        ("2h45m10s", 9910),
        ("100us", 0.0001),
        ("100µs", 0.0001),
        ("10ns", 1e-8),
        ("0", 0),
        ("-1m", -60),
        (".5s", 0.5),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "5 m", "1d", "m", "1h 30m", "s30"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_durations_format_back() -> None:
    assert format_duration(300) == "300s"
    assert format_duration(0.5) == "0.5s"
    for seconds in (1, 90, 0.25, 3600.125):
        assert parse_duration(format_duration(seconds)) == seconds


# --- cron --------------------------------------------------------------------------------------

T0 = datetime(2024, 3, 14, 10, 7, 30, tzinfo=UTC)  # a Thursday


def ticks(spec: str, start: datetime = T0, n: int = 3) -> list[datetime]:
    schedule = parse_cron(spec)
    out: list[datetime] = []
    when: datetime | None = start
    for _ in range(n):
        assert when is not None
        when = schedule.next_after(when)
        assert when is not None
        out.append(when)
    return out


def test_cron_steps_and_strictly_after() -> None:
    assert ticks("*/15 * * * *") == [
        T0.replace(minute=15, second=0),
        T0.replace(minute=30, second=0),
        T0.replace(minute=45, second=0),
    ]
    on_tick = T0.replace(minute=15, second=0)
    assert parse_cron("*/15 * * * *").next_after(on_tick) == T0.replace(minute=30, second=0)


def test_cron_hours_weekdays_and_names() -> None:
    # 09:00 on weekdays: Friday, then Monday.
    assert ticks("0 9 * * 1-5", n=2) == [
        datetime(2024, 3, 15, 9, tzinfo=UTC),
        datetime(2024, 3, 18, 9, tzinfo=UTC),
    ]
    assert ticks("0 9 * * MON-FRI", n=2) == ticks("0 9 * * 1-5", n=2)
    assert ticks("30 6 1 jan,JUL *", n=2) == [
        datetime(2024, 7, 1, 6, 30, tzinfo=UTC),
        datetime(2025, 1, 1, 6, 30, tzinfo=UTC),
    ]
    assert ticks("0 0 * * 7", n=1) == [datetime(2024, 3, 17, tzinfo=UTC)]  # 7 is Sunday


def test_cron_day_of_month_or_day_of_week() -> None:
    # Both restricted: either matches (the 13th, or any Friday).
    assert ticks("0 0 13 * 5", n=3) == [
        datetime(2024, 3, 15, tzinfo=UTC),
        datetime(2024, 3, 22, tzinfo=UTC),
        datetime(2024, 3, 29, tzinfo=UTC),
    ]
    # Day of week unrestricted: only the 13th.
    assert ticks("0 0 13 * *", n=1) == [datetime(2024, 4, 13, tzinfo=UTC)]
    assert ticks("0 0 13 * ?", n=1) == [datetime(2024, 4, 13, tzinfo=UTC)]


def test_cron_descriptors_every_and_never() -> None:
    assert ticks("@hourly", n=1) == [T0.replace(hour=11, minute=0, second=0)]
    assert ticks("@daily", n=1) == [datetime(2024, 3, 15, tzinfo=UTC)]
    assert ticks("@weekly", n=1) == [datetime(2024, 3, 17, tzinfo=UTC)]
    assert ticks("@monthly", n=1) == [datetime(2024, 4, 1, tzinfo=UTC)]
    assert ticks("@yearly", n=1) == ticks("@annually", n=1) == [datetime(2025, 1, 1, tzinfo=UTC)]
    assert ticks("@every 90s", n=2) == [
        T0 + timedelta(seconds=90),
        T0 + timedelta(seconds=180),
    ]
    assert ticks("@every 1h30m", n=1) == [T0 + timedelta(minutes=90)]
    assert parse_cron("never").next_after(T0) is None
    assert parse_cron("never").never


def test_cron_with_seconds_field() -> None:
    assert ticks("*/10 * * * * *") == [
        T0.replace(second=40),
        T0.replace(second=50),
        T0.replace(minute=8, second=0),
    ]
    assert ticks("5/20 0 12 * * *", n=3) == [
        datetime(2024, 3, 14, 12, 0, 5, tzinfo=UTC),
        datetime(2024, 3, 14, 12, 0, 25, tzinfo=UTC),
        datetime(2024, 3, 14, 12, 0, 45, tzinfo=UTC),
    ]


def test_cron_dates_that_never_come() -> None:
    assert parse_cron("0 0 30 2 *").next_after(T0) is None
    assert ticks("0 0 29 2 *", n=1) == [datetime(2028, 2, 29, tzinfo=UTC)]


def _has_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def test_cron_in_another_time_zone() -> None:
    if not _has_zone("Asia/Tokyo"):
        pytest.skip("no time zone database on this system")
    # 09:00 in Tokyo (UTC+9) is midnight UTC.
    assert parse_cron("CRON_TZ=Asia/Tokyo 0 9 * * *").next_after(T0) == datetime(
        2024, 3, 15, 0, tzinfo=UTC
    )
    naive = parse_cron("0 12 * * *").next_after(datetime(2024, 1, 1, 13))
    assert naive == datetime(2024, 1, 2, 12)
    fixed = timezone(timedelta(hours=2))
    assert parse_cron("0 12 * * *").next_after(datetime(2024, 1, 1, 11, tzinfo=fixed)) == (
        datetime(2024, 1, 1, 12, tzinfo=fixed)
    )


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("* * *", "expected 5 fields"),
        ("* * * * * * *", "expected 5 fields"),
        ("60 * * * *", "minute field"),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day of month field"),
        ("* * * 13 *", "month field"),
        ("* * * * 8", "day of week field"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "runs backwards"),
        ("* * * foo *", '"foo" is not a number'),
        ("@sometimes", "unknown descriptor"),
        ("@every 10", "missing unit"),
        ("@every 0s", "at least 1s"),
        ("CRON_TZ=Mars/Olympus 0 * * * *", "unknown time zone"),
    ],
)
def test_bad_cron_specs(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_cron(spec)
    assert str(info.value).startswith(f'cron spec "{spec}": ')
    assert fragment in str(info.value)


def test_cron_spec_in_a_trigger_is_checked() -> None:
    tree = {"pfs": {"repo": "images", "glob": "/*", "trigger": {"cronSpec": "bogus"}}}
    assert error_of(spec_with(input=tree)).startswith(
        'edges.json: input.pfs.trigger.cron_spec: cron spec "bogus"'
    )
    tree["pfs"]["trigger"] = {"branch": "staging", "size": "1MB", "commits": 10}
    spec = parse_spec(spec_with(input=tree))
    assert isinstance(spec.input, PfsInput)
    assert spec.input.trigger == {"branch": "staging", "size": "1MB", "commits": 10}


def test_pipeline_spec_is_importable_as_a_type() -> None:
    assert isinstance(parse_spec(EDGES), PipelineSpec)


# --- hostile documents: refused in one line, in time linear in their size -----------------------


def _cross(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"pfs": {"repo": "images", "glob": "/*"}}
    for _ in range(levels):
        node = {"cross": [node]}
    return {**EDGES, "input": node}


def test_nesting_is_bounded_whoever_built_the_document() -> None:
    assert parse_spec(_cross(40)).input is not None  # deep, but within reason
    assert "nested more than 100 levels" in error_of(_cross(60))
    text = '{"input": ' * 100_000 + "1" + "}" * 100_000
    with pytest.raises(SpecError, match="nested more than 100 levels"):
        parse_specs(text, "deep.json")


def test_yaml_aliases_that_explode_or_contain_themselves_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg", strict=True))
    with pytest.raises(SpecError, match="expands to more than"):
        parse_specs(bomb + "pipeline: {name: p}\ntransform: {cmd: [x], image: *g}\n", "bomb.yaml")
    with pytest.raises(SpecError, match="itself"):
        parse_specs("pipeline: {name: p}\npod_patch: &x [*x]\n", "loop.yaml")
    # A few shared anchors are fine: that is what aliases are for.
    shared = ("pipeline: {name: edges}\ntransform: {cmd: [python3]}\n"
              "input: {pfs: {repo: images, glob: /*}}\npod_patch: [&e {op: add}, *e, *e]\n")
    assert json.loads(parse_specs(shared, "ok.yaml")[0].extras["pod_patch"]) == [{"op": "add"}] * 3


def test_integers_are_64_bit() -> None:
    assert "out of range" in error_of({**EDGES, "datum_tries": 2**63})
    assert "out of range" in error_of({**EDGES, "parallelism_spec": {"constant": "9" * 30}})
    assert "whole number" in error_of({**EDGES, "datum_tries": "9" * 5000})
    with pytest.raises(SpecError, match="thousands of digits"):
        parse_specs('{"datum_tries": ' + "9" * 5000 + "}", "big.json")


def test_a_megabyte_command_string_is_refused_in_linear_time() -> None:
    import time

    start = time.monotonic()
    message = error_of({**EDGES, "transform": {"cmd": "x" * 1_000_000}})
    assert time.monotonic() - start < 2
    assert "list of strings" in message and len(message) < 300
    assert '["sh", "-c", "' in message


def test_spec_bytes_must_be_utf8_text() -> None:
    from tusk.pps.spec_files import decode_spec

    assert decode_spec(b"\xef\xbb\xbf{}", "s.json") == "{}"
    with pytest.raises(SpecError, match=r"not UTF-8 text \(byte 0xff at offset 1\)"):
        decode_spec(b"{\xff}", "s.json")
