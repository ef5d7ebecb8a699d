"""User errors through the real CLI.

Each one must print exactly one line on stderr starting with ``tusk:``, exit non-zero, show no
traceback, and change nothing: a failed write leaves the commit history and files as they were.
"""

from __future__ import annotations

import io
import tarfile

import pytest

pytestmark = pytest.mark.e2e

MISSING_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def repo(module_tusk):
    """A repo with two finished commits; the error cases below must not change it."""
    t = module_tusk
    t.write("a.txt", "a\n")
    t.write("dir/b.txt", "b\n")
    t.write("globby/a-ok.txt", "fine\n")
    t.write("globby/z[1].txt", "a name tusk refuses\n")  # walked after a-ok.txt is staged
    t.write("notatar.tar", "this is not a tar archive\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    t.write("evil.tar", buf.getvalue())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("p", "p/q"):  # /p would be both a file and a directory
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    t.write("clash.tar", buf.getvalue())
    t.ok("create", "repo", "f")
    t.ok("put", "file", "f@master", "-f", "a.txt")
    t.ok("put", "file", "f@master", "-r", "-f", "dir")
    return t


def _state(t) -> tuple:
    """Commits of f with what they hold: any change to history or content shows here."""
    commits = t.json("list", "commit", "f", "--raw")
    return tuple((c["id"], c["state"], c["size_bytes"], c["file_count"]) for c in commits)


@pytest.fixture(scope="module")
def before(repo):
    return _state(repo)


# (args, a word the message must contain)
READ_ERRORS = [
    (["inspect", "repo", "nope"], "nope"),
    (["list", "file", "f@nobranch"], "nobranch"),
    (["inspect", "commit", f"f@{MISSING_ID}"], MISSING_ID),
    (["inspect", "commit", "f@master^5"], "master^5"),
    (["get", "file", "f@master:/missing.txt"], "/missing.txt"),
    (["get", "file", "f@master:/dir"], "-r"),  # a directory needs -r -o
    (["get", "file", "f@master:/a.txt", "--offset", "-1"], "offset"),
    (["get", "file", "f@master:/a.txt", "-o", "no/such/dir/out.txt"], "no/such/dir"),
    (["get", "file", "f@master:/dir", "-r", "-o", "a.txt"], "a.txt"),  # a file, not a dir
    (["list", "file", "f@master:/a*"], "glob"),
    (["inspect", "project", "nope"], "nope"),
    (["wait", "commit", MISSING_ID], MISSING_ID),
    (["glob", "file", "f@master:/["], "["),
    (["list", "commit", "f@master", "-n", "-1"], "-1"),
    (["list", "repo", "--project", "nope"], "nope"),
]


@pytest.mark.parametrize("args, needle", READ_ERRORS, ids=[" ".join(a) for a, _ in READ_ERRORS])
def test_read_errors(repo, args, needle):
    line = repo.fail(*args)
    assert needle in line


# Grouped so that one state check covers several failed writes (each check is a tusk run).
WRITE_ERRORS = {
    "names": [
        (["create", "repo", "bad.name"], "bad.name"),
        (["create", "repo", "f"], "exists"),
        (["create", "repo", "nope/f"], "nope"),  # missing project
        (["put", "file", "nope@master:/x", "-f", "a.txt"], "nope"),
    ],
    "paths": [
        (["put", "file", "f@master:/../x", "-f", "a.txt"], ".."),
        (["put", "file", "f@master:/a/./b", "-f", "a.txt"], "."),
        (["put", "file", "f@master:/x*y", "-f", "a.txt"], "*"),
        (["put", "file", "f@master:/a.txt/inside", "-f", "a.txt"], "/a.txt"),  # file/dir collision
        (["put", "file", "f@master:/dir", "-f", "a.txt"], "/dir"),  # a file where a directory is
        (["put", "file", "f@master^:/x", "-f", "a.txt"], "master^"),  # not a writable ref
        (["put", "file", "f@{head}:/x", "-f", "a.txt"], "finished"),  # a finished commit by ID
        (["delete", "file", "f@{head}:/a.txt"], "finished"),
    ],
    "sources": [
        (["put", "file", "f@master", "-f", "dir"], "-r"),  # a directory without -r
        (["put", "file", "f@master", "-r", "-f", "globby"], "["),  # a bad name deep in a tree
        (["put", "file", "f@master:/x", "-f", "missing.txt"], "missing.txt"),
        (["put", "file", "f@master:/in/", "-f", "a.txt", "-f", "missing.txt"], "missing.txt"),
        (["put", "file", "f@master", "-i", "missing-list.txt"], "missing-list.txt"),
        (["put", "file", "f@master"], "-f"),  # nothing to put
        (["put", "file", "f@master", "-f", "-"], "destination"),  # stdin needs a path
        (["put", "file", "f@master:/t/", "--untar", "-f", "notatar.tar"], "tar"),
        (["put", "file", "f@master:/t/", "--untar", "-f", "dir"], "dir"),
        (["put", "file", "f@master:/t/", "--untar", "-f", "evil.tar"], ".."),
        (["put", "file", "f@master", "--untar", "-f", "clash.tar"], "collision"),  # within one put
    ],
    "deletes and copies": [
        (["delete", "file", "f@master:/missing.txt"], "/missing.txt"),
        (["delete", "file", "f@master:/dir"], "-r"),
        (["copy", "file", "f@master:/missing.txt", "f@master:/y"], "/missing.txt"),
        (["copy", "file", "f@master:/a.txt", "nope@master:/y"], "nope"),
        (["delete", "commit", MISSING_ID], MISSING_ID),
        (["squash", "commit", "abc"], "abc"),
    ],
    "branches and commits": [
        (["delete", "branch", "f@nope"], "nope"),
        (["create", "branch", "f@dev", "--head", "nope"], "nope"),
        (["create", "branch", "f@dev", "-p", "f@master"], "provenance"),
        (["create", "branch", "f"], "branch"),
        (["start", "commit", "f@master", "-p", MISSING_ID], MISSING_ID),
        (["finish", "commit", "f@master"], "finish"),  # the head is already finished
    ],
}


@pytest.mark.parametrize("group", list(WRITE_ERRORS))
def test_write_errors_change_nothing(repo, before, group):
    head = before[0][0]
    for args, needle in WRITE_ERRORS[group]:
        args = [a.replace("{head}", head) for a in args]
        line = repo.fail(*args)
        assert needle in line, f"tusk {' '.join(args)}: {line!r} does not mention {needle!r}"
    assert _state(repo) == before
    if group == "branches and commits":
        assert {b["name"] for b in repo.json("list", "branch", "f", "--raw")} == {"master"}


def test_start_commit_while_head_is_open(tusk):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("good.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"good"))
    tusk.write("good.tar", buf.getvalue())
    tusk.write("bad.tar", "not a tar\n")
    tusk.ok("create", "repo", "f")
    first = tusk.ok("start", "commit", "f@master").strip()
    line = tusk.fail("start", "commit", "f@master")
    assert first in line and "finish" in line
    assert tusk.commit_ids("f") == [first]
    # a put that fails on its second source stages nothing of the first in the open commit
    tusk.ok("put", "file", "f@master:/kept", "-f", "-", input="kept")
    tusk.fail("put", "file", "f@master:/t/", "--untar", "-f", "good.tar", "-f", "bad.tar")
    tusk.ok("finish", "commit", "f@master")
    assert [f["path"] for f in tusk.json("list", "file", "f@master", "--raw")] == ["/kept"]


def test_bad_url_sources_make_no_commit(repo, before, http_dir):
    line = repo.fail("put", "file", "f@master:/in/", "-f", "a.txt", "-f",
                     f"{http_dir.url}/missing.bin")
    assert "404" in line
    # a URL with no file name needs an explicit destination
    assert "no file name" in repo.fail("put", "file", "f@master", "-f", f"{http_dir.url}/")
    assert _state(repo) == before


@pytest.mark.parametrize("args, needle", [
    (["create", "repo"], "REPO"),
    (["list", "nonsense"], "nonsense"),
    (["put", "file", "f@master", "--bogus"], "--bogus"),
    (["list", "repo", "-o", "xml"], "xml"),
])
def test_usage_errors_are_one_line_too(tusk, args, needle):
    line = tusk.fail(*args)
    assert needle in line and "--help" in line


# -- hostile input: nothing a user types or points at may crash the command ----------------------


def _spec(input_doc: str, cmd: str = '["true"]') -> str:
    return ('{"pipeline": {"name": "p"}, "transform": {"cmd": ' + cmd + '}, "input": '
            + input_doc + "}")


def _nested_cross(levels: int) -> str:
    leaf = '{"pfs": {"repo": "f", "glob": "/*"}}'
    return _spec('{"cross": [' * levels + leaf + "]}" * levels)


def _nested_yaml(levels: int) -> str:
    lines = ["pipeline: {name: p}", "transform: {cmd: [\"true\"]}", "input:"]
    for i in range(levels):
        lines.append("  " * (i + 1) + "cross:")
        lines.append("  " * (i + 1) + "-")
    lines.append("  " * (levels + 1) + "pfs: {repo: f, glob: /*}")
    return "\n".join(lines) + "\n"


HOSTILE_SPECS = {
    "cross 100 deep": (_nested_cross(100), "nested"),
    "cross 500 deep": (_nested_cross(500), "nested"),
    "cross 100000 deep": (_nested_cross(100_000), "nested"),
    "yaml cross 400 deep": (_nested_yaml(400), "nested"),
    "a million brackets": ("[" * 1_000_000, "nested"),
    "a million braces": ("{" * 1_000_000, "nested"),
    "binary": (bytes(range(256)) * 4, "UTF-8"),
    "huge integer": (_spec('{"pfs": {"repo": "f", "glob": "/*"}}').replace(
        '"input"', '"parallelism_spec": {"constant": ' + "9" * 5000 + '}, "input"'), "number"),
    "yaml alias bomb": ("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                        + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
                                  for p, c in zip("abcdefgh", "bcdefghi", strict=True))
                        + "pipeline: {name: p}\ntransform: {cmd: [\"true\"], image: *i}\n", "alias"),
    "yaml self reference": (("pipeline: {name: p}\ntransform: {cmd: [\"true\"]}\n"
                             "pod_patch: &x [*x]\ninput: {pfs: {repo: f, glob: /*}}\n"), "itself"),
}


@pytest.mark.parametrize("name", list(HOSTILE_SPECS))
def test_hostile_spec_files_are_refused_in_one_line(repo, before, name):
    text, needle = HOSTILE_SPECS[name]
    path = repo.write(f"hostile-{name.replace(' ', '-')}.json", text)
    line = repo.fail("validate", "pipeline", "-f", path, timeout=60)
    assert needle in line, line
    assert len(line) < 600, f"a {len(line)}-character message"
    for verb in (["create", "pipeline"], ["update", "pipeline"], ["list", "datum"]):
        assert needle in repo.fail(*verb, "-f", path, timeout=60)
    assert needle in repo.fail("create", "pipeline", "-f", "-", input=text, timeout=60)
    assert repo.json("list", "pipeline", "--raw") == []
    assert _state(repo) == before


def test_a_spec_file_that_is_a_device_or_directory_is_refused(repo, before):
    assert "larger than" in repo.fail("validate", "pipeline", "-f", "/dev/zero", timeout=60)
    assert "directory" in repo.fail("validate", "pipeline", "-f", str(repo.cwd))
    assert "read" in repo.fail("create", "pipeline", "-f", "/proc/self/mem")
    assert repo.json("list", "pipeline", "--raw") == []
    assert _state(repo) == before


def test_a_megabyte_cmd_validates_in_linear_time(tusk):
    import time

    tusk.write("one-word.json", _spec('{"pfs": {"repo": "f", "glob": "/*"}}', '"' + "x" * 1_000_000 + '"'))
    tusk.write("argv.json", _spec('{"pfs": {"repo": "f", "glob": "/*"}}',
                                  '["sh", "-c", "' + "x" * 1_000_000 + '"]'))
    start = time.monotonic()
    line = tusk.fail("validate", "pipeline", "-f", "one-word.json")
    assert "transform.cmd" in line and "list of strings" in line and len(line) < 600
    assert "valid" in tusk.ok("validate", "pipeline", "-f", "argv.json")
    assert time.monotonic() - start < 10


BIG = "1" + "0" * 30
BAD_NUMBERS = [
    (["list", "job", "-n", BIG], "-n"),
    (["list", "job", "-n", "-1"], "-n"),
    (["list", "commit", "f@master", "-n", BIG], "-n"),
    (["get", "file", "f@master:/a.txt", "--offset", BIG], "--offset"),
    (["wait", "commit", "f@master", "--timeout", "1e400"], "--timeout"),
    (["wait", "commit", "f@master", "--timeout", "nan"], "--timeout"),
    (["wait", "commit", "f@master", "--timeout", "-1"], "--timeout"),
    (["subscribe", "commit", "f@master", "--timeout", "1e300"], "--timeout"),
    (["wait", "job", "p@" + MISSING_ID, "--timeout", "inf"], "--timeout"),
    (["subscribe", "job", "--timeout", "1e20"], "--timeout"),
    (["create", "branch", "f@dev", "--trigger", "master", "--trigger-commits", BIG], "--trigger-commits"),
    (["lineage", "f@master:/a.txt", "--depth", BIG], "--depth"),
]


@pytest.mark.parametrize("args, needle", BAD_NUMBERS, ids=[" ".join(a) for a, _ in BAD_NUMBERS])
def test_out_of_range_numbers_are_refused(repo, args, needle):
    assert needle in repo.fail(*args)


def test_unreadable_sources_are_refused_and_change_nothing(repo, before):
    assert "/proc/self/mem" in repo.fail("put", "file", "f@master:/m", "-f", "/proc/self/mem")
    assert "/proc/self/mem" in repo.fail("put", "file", "f@master:/t/", "--untar", "-f",
                                         "/proc/self/mem")
    repo.write("binary-list.txt", b"\xff\xfe\x00bad")
    assert "UTF-8" in repo.fail("put", "file", "f@master", "-i", "binary-list.txt")
    assert "directory" in repo.fail("put", "file", "f@master", "-i", str(repo.cwd))
    assert _state(repo) == before


def test_names_longer_than_a_file_system_allows_are_refused(repo, before):
    line = repo.fail("put", "file", "f@master:/" + "a" * 256, "-f", "a.txt")
    assert "255 bytes" in line
    assert "255 bytes" in repo.fail("put", "file", "f@master:/d/" + "é" * 128 + "/x", "-f", "a.txt")
    assert "bytes" in repo.fail("put", "file", "f@master:/" + "/".join(["d" * 200] * 40), "-f", "a.txt")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("b" * 300)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    repo.write("longname.tar", buf.getvalue())
    assert "255 bytes" in repo.fail("put", "file", "f@master:/t/", "--untar", "-f", "longname.tar")
    assert _state(repo) == before


def test_control_characters_in_names_are_escaped_in_errors(repo):
    line = repo.fail("put", "file", "f@master:/x", "-f", "missing\x1b[2J\x07.txt")
    assert "\\x1b[2J\\x07" in line
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in line), repr(line)
    repo.write("nul.json", _spec('{"pfs": {"repo": "f", "glob": "/*"}}').replace(
        '"name": "p"', '"name": "p\\u0000\\u001b[31m\\u2028q"'))
    line = repo.fail("validate", "pipeline", "-f", "nul.json")
    assert "\\x00\\x1b[31m\\u2028q" in line, line


def test_unicode_normalisation_forms_are_different_paths(tusk):
    """Like Linux file systems (and git), tusk keeps a path's characters as given: NFC and NFD
    spellings of /é.txt are two files. See docs/storage.md."""
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "/é.txt"), unicodedata.normalize("NFD", "/é.txt")
    assert nfc != nfd
    tusk.ok("create", "repo", "u")
    tusk.ok("put", "file", f"u@master:{nfc}", "-f", "-", input="composed")
    tusk.ok("put", "file", f"u@master:{nfd}", "-f", "-", input="decomposed")
    assert sorted(f["path"] for f in tusk.json("list", "file", "u@master", "--raw")) == sorted([nfc, nfd])
    assert tusk.ok("get", "file", f"u@master:{nfc}") == "composed"
    assert tusk.ok("get", "file", f"u@master:{nfd}") == "decomposed"


def test_an_unexpected_failure_is_one_line_and_debuggable(tusk):
    tusk.ok("create", "repo", "r")
    (tusk.root / "meta.db").write_bytes(b"this is not a database" * 1000)
    line = tusk.fail("list", "repo")
    assert "TUSK_DEBUG=1" in line
    tusk.env["TUSK_DEBUG"] = "1"
    r = tusk("list", "repo")
    assert r.returncode != 0 and "Traceback" in r.stderr


def _peak_rss_mb(tusk, *args: str) -> tuple[int, float]:
    """Run tusk in a fresh parent whose only child it is; (exit code, the child's peak RSS)."""
    import subprocess
    import sys

    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]);"
             " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    p = subprocess.run([sys.executable, "-c", probe, tusk.exe, *args], env=tusk.env, cwd=tusk.cwd,
                       capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, int(p.stdout.split()[-1]) / 1024


def test_a_pipe_or_device_source_streams_in_bounded_memory(tusk):
    import os
    import subprocess

    size = 300 << 20
    fifo = tusk.cwd / "zeros.fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(f"head -c {size} /dev/zero > {fifo}", shell=True)
    tusk.ok("create", "repo", "z")
    code, peak = _peak_rss_mb(tusk, "put", "file", "z@master:/zeros", "-f", str(fifo))
    assert writer.wait(timeout=60) == 0
    assert code == 0
    assert peak < 200, f"peak RSS {peak:.0f} MB for a {size >> 20} MB stream"
    assert tusk.json("inspect", "file", "z@master:/zeros", "--raw")["size"] == size
    reader = subprocess.Popen([tusk.exe, "get", "file", "z@master:/zeros"], env=tusk.env,
                              stdout=subprocess.PIPE)
    seen = 0
    while chunk := reader.stdout.read(1 << 20):
        assert chunk.count(0) == len(chunk)
        seen += len(chunk)
    assert reader.wait() == 0 and seen == size
