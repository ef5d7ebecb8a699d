"""Egress targets from specs, and the forward-only stream S3 uploads read files through."""

from __future__ import annotations

import pytest

from tusk.errors import InvalidArgument
from tusk.pps.egress import Target, _Stream, parse_url, target_of
from tusk.pps.spec import parse_spec

BASE = {"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "transform": {"cmd": ["true"]}}


def test_urls() -> None:
    assert parse_url("file:///tmp/out/") == Target("file:///tmp/out/", "file", "/tmp/out")
    assert parse_url("file://localhost/a%20b").location == "/a b"
    t = parse_url("s3://bucket/some/prefix/")
    assert (t.location, t.prefix) == ("bucket", "some/prefix")
    assert t.key("/a/b.txt") == "some/prefix/a/b.txt"
    assert parse_url("s3://bucket").key("/x") == "x"


def test_object_storage_is_the_same_as_url() -> None:
    assert target_of({"object_storage": {"url": "s3://b/p"}}) == parse_url("s3://b/p")


@pytest.mark.parametrize("egress, problem", [
    ({"sql_database": {"url": "snowflake://x"}}, "egress.sql_database: SQL egress is not"),
    ({"URL": "gs://bucket/dir"}, 'scheme "gs" is not supported'),
    ({"URL": "/tmp/dir"}, "has no scheme"),
    ({"URL": "file://relative/dir"}, "must be an absolute path"),
    ({"URL": "s3://"}, "names no bucket"),
    ({"URL": "s3://b/p?region=eu-west-1"}, "query parameters are not supported"),
    ({"URL": "s3://b", "object_storage": {"url": "s3://c"}}, "set only one of"),
    ({"object_storage": {}}, "egress.object_storage.url: required"),
])
def test_bad_egress_is_refused_at_parse_time(egress: dict, problem: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_spec({**BASE, "egress": egress})
    message = str(info.value)
    assert problem in message and "\n" not in message


def test_egress_is_kept_and_round_trips() -> None:
    spec = parse_spec({**BASE, "egress": {"url": "s3://b/p"}})
    assert spec.egress == {"URL": "s3://b/p"} and "egress" not in spec.ignored_fields
    assert parse_spec(spec.to_dict()) == spec
    assert parse_spec({**BASE, "egress": {}}).egress is None


def test_stream_reads_exact_sizes_across_chunks() -> None:
    s = _Stream(iter([b"abc", b"", b"defgh", b"ij"]))
    assert s.read(4) == b"abcd"  # spans two chunks: parts of a multipart upload must be full
    assert s.read(0) == b""
    assert s.read(100) == b"efghij"
    assert s.read(1) == b""
    assert _Stream(iter([b"ab", b"cd"])).read() == b"abcd"
