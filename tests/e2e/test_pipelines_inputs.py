"""Combined inputs end to end: join (inner and outer) by key, group_by across two inputs, and a
3-way cross with one repo mounted twice under two names (after Pachyderm's joins, group and
cross examples). User code finds its key in ``PACH_DATUM_<input>_JOIN_ON`` / ``_GROUP_BY``.
"""

from __future__ import annotations

import pytest
from pipeline_helpers import Pipes, bash, pfs_input, pipes_fixture, spec  # noqa: F401

pytestmark = pytest.mark.e2e

# Store id -> amounts, one file per store in each repo.
PURCHASES = {"1.txt": "10\n20\n", "2.txt": "5\n", "3.txt": "7\n"}
RETURNS = {"1.txt": "3\n", "2.txt": "5\n", "4.txt": "1\n"}

# Net sales of a store: its purchases minus its returns (a side may be missing in an outer join).
NET = bash(
    "set -e; key=${PACH_DATUM_purchases_JOIN_ON:-$PACH_DATUM_returns_JOIN_ON}; mkdir -p /pfs/out/$key;"
    " p=$(cat /pfs/purchases/*.txt 2>/dev/null | awk '{s+=$1} END {print s+0}');"
    " r=$(cat /pfs/returns/*.txt 2>/dev/null | awk '{s+=$1} END {print s+0}');"
    " echo $((p - r)) > /pfs/out/$key/net;"
    " echo \"${PACH_DATUM_purchases_JOIN_ON:--}/${PACH_DATUM_returns_JOIN_ON:--}\" > /pfs/out/$key/keys"
)


def join_input(outer: bool) -> dict:
    return {"join": [
        pfs_input("purchases", "/(*).txt", join_on="$1", outer_join=outer),
        pfs_input("returns", "/(*).txt", join_on="$1"),
    ]}


def test_inner_and_outer_join(pipes: Pipes) -> None:
    p = pipes
    p.repo("purchases", PURCHASES)
    p.repo("returns", RETURNS)
    p.create(spec("inner", join_input(False), NET))
    p.create(spec("outer", join_input(True), NET))
    p.wait("inner@master")
    p.wait("outer@master")

    inner = p.text_tree("inner@master")
    assert inner == {"/1/net": "27\n", "/1/keys": "1/1\n", "/2/net": "0\n", "/2/keys": "2/2\n"}
    assert p.job("inner")["total"] == 2

    # Outer on purchases: store 3 (no returns) gets a datum with only purchases mounted;
    # store 4 (only returns, which is not outer) does not.
    outer = p.text_tree("outer@master")
    assert outer == {**inner, "/3/net": "7\n", "/3/keys": "3/-\n"}
    datums = p.datums("outer", p.job("outer")["id"])
    assert sorted(sorted(d["files"]) for d in datums) == [
        ["purchases:/1.txt", "returns:/1.txt"], ["purchases:/2.txt", "returns:/2.txt"],
        ["purchases:/3.txt"]]

    # A return for store 3 turns the outer-only datum into a joined one (a new datum ID): the
    # old output of store 3 is replaced, and the inner join gains store 3.
    c = p.put("returns", {"3.txt": "2\n"})
    p.wait(c)
    assert p.text_tree("outer@master")["/3/net"] == "5\n"
    assert p.text_tree("inner@master")["/3/keys"] == "3/3\n"
    assert p.states("inner", c) == {"SUCCESS": 1, "SKIPPED": 2}


def test_group_by_across_two_inputs(pipes: Pipes) -> None:
    p = pipes
    p.repo("purchases", {"p_1_a.txt": "1", "p_1_b.txt": "2", "p_2_a.txt": "3"})
    p.repo("returns", {"r_1.txt": "4", "r_3.txt": "5"})
    group = {"group": [
        {"pfs": {"repo": "purchases", "glob": "/p_(*)_*.txt", "group_by": "$1"}},
        {"pfs": {"repo": "returns", "glob": "/r_(*).txt", "group_by": "$1"}},
    ]}
    cmd = bash(
        "set -e; key=${PACH_DATUM_purchases_GROUP_BY:-$PACH_DATUM_returns_GROUP_BY};"
        " cd /pfs; ls purchases/* returns/* 2>/dev/null | sort > /pfs/out/$key.files;"
        " echo \"${PACH_DATUM_purchases_GROUP_BY:--} ${PACH_DATUM_returns_GROUP_BY:--}\" > /pfs/out/$key.keys"
    )
    p.create(spec("grouped", group, cmd))
    p.wait("grouped@master")
    assert p.text_tree("grouped@master") == {
        "/1.files": "purchases/p_1_a.txt\npurchases/p_1_b.txt\nreturns/r_1.txt\n",
        "/1.keys": "1 1\n",
        "/2.files": "purchases/p_2_a.txt\n",
        "/2.keys": "2 -\n",
        "/3.files": "returns/r_3.txt\n",
        "/3.keys": "- 3\n",
    }
    assert p.job("grouped")["total"] == 3


def test_cross_with_one_repo_mounted_twice(pipes: Pipes) -> None:
    p = pipes
    p.repo("nums", {"2": "2", "3": "3", "5": "5"})
    p.repo("ops", {"add": "+", "mul": "*"})
    cross = {"cross": [
        {"pfs": {"repo": "nums", "glob": "/*", "name": "left"}},
        {"pfs": {"repo": "nums", "glob": "/*", "name": "right"}},
        {"pfs": {"repo": "ops", "glob": "/*"}},
    ]}
    cmd = bash(
        "set -e; a=$(cat $left); b=$(cat $right); o=$(cat $ops);"
        " test -d /pfs/left && test -d /pfs/right && test -d /pfs/ops;"
        " echo $((a $o b)) > /pfs/out/$(basename $left)_$(basename $ops)_$(basename $right)"
    )
    s = spec("table", cross, cmd)
    # The datums can be previewed before the pipeline exists, and previewing creates nothing.
    preview = p.raw("list", "datum", "-f", str(p.spec_file(s)))
    assert len(preview) == 3 * 3 * 2
    assert "table" not in {r["name"] for r in p.raw("list", "repo")}

    p.create(s)
    p.wait("table@master")
    job = p.job("table")
    assert (job["state"], job["total"], job["processed"]) == ("SUCCESS", 18, 18)
    out = p.text_tree("table@master")
    assert len(out) == 18
    assert out["/3_mul_5"] == "15\n" and out["/5_add_2"] == "7\n" and out["/2_mul_2"] == "4\n"
    files = {tuple(sorted(d["files"])) for d in p.datums("table", job["id"])}
    assert ("left:/3", "ops:/mul", "right:/5") in files

    # A new number adds 2*3 + 2*3 + 2 = 14 datums (crossed with every left, right and op).
    c = p.put("nums", {"7": "7"})
    p.wait(c)
    job = p.job("table", c)
    assert (job["total"], job["processed"], job["skipped"]) == (32, 14, 18)
    assert p.text_tree("table@master")["/7_mul_7"] == "49\n"
