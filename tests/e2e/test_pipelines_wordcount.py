"""Word count as map and reduce (after Pachyderm's word-count example), incremental processing,
and retraction of a deleted input's outputs.

The map pipeline runs one datum per input file and writes ``/pfs/out/<file>/counts``; the
reduce pipeline sees the whole map output as one datum (glob ``/``) and sums per word.
"""

from __future__ import annotations

from collections import Counter

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, pipes_fixture, process_pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e

MAP = bash(
    "set -e; for f in /pfs/words/*; do n=$(basename \"$f\"); mkdir -p /pfs/out/$n;"
    " tr -s ' \\n' '\\n\\n' < \"$f\" | grep -v '^$' | sort | uniq -c"
    " | awk '{print $2, $1}' > /pfs/out/$n/counts; echo counted $n; done"
)
REDUCE = bash(
    "set -e; cat /pfs/wc_map/*/counts | awk '{s[$1]+=$2} END {for (w in s) print w, s[w]}'"
    " | sort > /pfs/out/totals"
)

TEXTS = {
    "a.txt": "the cat sat on the mat\n",
    "b.txt": "the dog sat\n",
    "c.txt": "a cat and a dog\n",
}


def expected(texts: dict[str, str]) -> dict[str, int]:
    return dict(Counter(w for t in texts.values() for w in t.split()))


def parse(text: str) -> dict[str, int]:
    return {w: int(n) for w, n in (line.split() for line in text.splitlines() if line)}


def make_dag(p: Pipes, texts: dict[str, str]) -> None:
    """Creating a pipeline runs an initial job on the current heads (its own commit set)."""
    p.repo("words", texts)
    p.create(spec("wc_map", pfs_input("words", "/*"), MAP))
    p.create(spec("wc_reduce", pfs_input("wc_map", "/"), REDUCE))
    p.wait("wc_map@master")
    p.wait("wc_reduce@master")


def check_outputs(p: Pipes, texts: dict[str, str]) -> None:
    tree = p.text_tree("wc_map@master")
    assert sorted(tree) == sorted(f"/{n}/counts" for n in texts)
    for name, text in texts.items():
        assert parse(tree[f"/{name}/counts"]) == expected({name: text})
    totals = p.text_tree("wc_reduce@master")
    assert list(totals) == ["/totals"]
    assert parse(totals["/totals"]) == expected(texts)


def run_word_count(p: Pipes) -> None:
    make_dag(p, TEXTS)
    check_outputs(p, TEXTS)
    job = p.job("wc_map")
    assert job["state"] == "SUCCESS" and job["total"] == 3 and job["processed"] == 3

    # One more file: exactly one map datum runs, the others are skipped; reduce runs again.
    more = {**TEXTS, "d.txt": "cat cat cat\n"}
    second = p.put("words", {"d.txt": more["d.txt"]})
    p.wait(second)
    check_outputs(p, more)
    jobs = {j["pipeline"]: j for j in p.jobs(second)}
    assert set(jobs) == {"wc_map", "wc_reduce"}
    assert all(j["state"] == "SUCCESS" for j in jobs.values())
    assert (jobs["wc_map"]["processed"], jobs["wc_map"]["skipped"], jobs["wc_map"]["total"]) == (1, 3, 4)
    assert p.states("wc_map", second) == {"SUCCESS": 1, "SKIPPED": 3}
    ran = [d for d in p.datums("wc_map", second) if d["state"] == "SUCCESS"]
    assert ran[0]["files"] == ["words:/d.txt"]
    assert p.states("wc_reduce", second) == {"SUCCESS": 1}
    # The user code's stdout is in the logs of the datum that printed it.
    assert "counted d.txt" in p.logs("wc_map", "--job", second)


def test_word_count_map_reduce_incremental(pipes: Pipes) -> None:
    run_word_count(pipes)


def test_word_count_process_runner(process_pipes: Pipes) -> None:
    """The fallback runner (no mount namespace, /pfs rewritten) runs the same code."""
    make_dag(process_pipes, TEXTS)
    check_outputs(process_pipes, TEXTS)


def test_changed_and_deleted_inputs(pipes: Pipes) -> None:
    p = pipes
    make_dag(p, TEXTS)
    before = p.tree("wc_map@master")

    # Changing a file reruns only its datum and replaces its output.
    changed = {**TEXTS, "b.txt": "dog dog dog\n"}
    c = p.put("words", {"b.txt": changed["b.txt"]})
    p.wait(c)
    assert p.states("wc_map", c) == {"SUCCESS": 1, "SKIPPED": 2}
    check_outputs(p, changed)

    # Deleting a file retracts exactly its outputs; the other outputs are unchanged.
    d = p.delete("words", "/a.txt")
    p.wait(d)
    after = p.tree("wc_map@master")
    assert sorted(after) == ["/b.txt/counts", "/c.txt/counts"]
    assert after["/c.txt/counts"] == before["/c.txt/counts"]
    job = p.job("wc_map", d)
    assert (job["processed"], job["skipped"], job["total"]) == (0, 2, 2)
    remaining = {k: v for k, v in changed.items() if k != "a.txt"}
    check_outputs(p, remaining)
    assert p.states("wc_reduce", d) == {"SUCCESS": 1}
