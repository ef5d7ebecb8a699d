"""The HTTP API's wire format: every model value survives a JSON round trip, nothing else is built."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tusk.api import codec
from tusk.errors import InvalidArgument
from tusk.pfs.model import CommitInfo, CommitSetInfo, FileInfo
from tusk.pfs.refs import CommitRef, FileRef, RepoRef
from tusk.pps.model import DatumInfo


def roundtrip(value: object) -> object:
    return codec.decode(json.loads(json.dumps(codec.encode(value))))


def commit(i: str) -> CommitInfo:
    return CommitInfo("default", "r", i, "master", None, "USER", "", "FINISHED", "", 1.5, 2.5, 3, 1,
                      ("a@master",), ("c1",))


def test_refs_and_infos_roundtrip() -> None:
    ref = FileRef(CommitRef(RepoRef("p", "r"), "master", None, 2, None), "/a.txt")
    assert roundtrip(ref) == ref
    cs = CommitSetInfo("x", (commit("1"), commit("2")), 1.0)
    back = roundtrip(cs)
    assert back == cs and isinstance(back.commits, tuple) and isinstance(back.commits[0].provenance, tuple)
    d = DatumInfo("id", "SUCCESS", "j", ("in:/a",), (), "", 1, 0.5, {"k": [1, 2]})
    assert roundtrip(d) == d
    assert roundtrip({"ids": [1, 2], "n": None}) == {"ids": [1, 2], "n": None}


def test_sets_bytes_and_private_fields() -> None:
    assert roundtrip(frozenset({RepoRef("default", "a")})) == frozenset({RepoRef("default", "a")})
    assert roundtrip(b"\x00\xff") == b"\x00\xff"
    f = FileInfo("/a", "file", 3, "ab", "c", "d", (("pack", 0, 3),))
    wire = codec.encode(f)
    assert "chunks" not in wire  # chunk locations stay inside the server
    assert roundtrip(f) == f  # chunks do not take part in equality


def test_pipeline_spec_is_validated_again() -> None:
    from tusk.pps.spec import parse_spec

    doc = {"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "r", "glob": "/*"}},
           "transform": {"cmd": ["true"]}}
    spec = parse_spec(doc, "x", "proj")
    back = roundtrip(spec)
    assert back == spec and back.project == "proj"
    bad = codec.encode(spec)
    bad["doc"]["pipeline"] = {"name": "bad name!"}
    with pytest.raises(InvalidArgument):
        codec.decode(bad)


def test_unknown_types_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown type"):
        codec.decode({"__type__": "Popen", "args": ["rm"]})
    with pytest.raises(TypeError):
        codec.encode(object())
    with pytest.raises(InvalidArgument, match="bad RepoRef"):
        codec.decode({"__type__": "RepoRef", "project": "p"})  # a field missing


# -- the escape hatches (``__bytes__``, ``__set__``, ``__type__``) on any JSON ---------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_tags = st.sampled_from(["__bytes__", "__set__", "__type__", "doc", "project", "repo", "x"])
_json = st.recursive(
    _scalars | st.sampled_from(["RepoRef", "CommitRef", "PipelineSpec", "AAAA", "!!"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_tags, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_decode_of_any_json_is_a_value_or_a_one_line_refusal(data: object) -> None:
    try:
        codec.decode(data)
    except InvalidArgument as e:
        assert e.message and "\n" not in e.message


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64), st.frozensets(st.text(max_size=4) | st.integers(), max_size=4))
def test_bytes_and_sets_roundtrip(data: bytes, items: frozenset) -> None:
    assert roundtrip(data) == data
    assert roundtrip(items) == items


def test_broken_escape_hatches_are_refused() -> None:
    for bad, what in [({"__bytes__": "!!not base64"}, "__bytes__"), ({"__bytes__": 5}, "__bytes__"),
                      ({"__set__": 5}, "__set__"), ({"__set__": [[1], [2]]}, "__set__"),
                      ({"__set__": [{"a": 1}]}, "__set__")]:
        with pytest.raises(InvalidArgument, match=what):
            codec.decode(bad)
