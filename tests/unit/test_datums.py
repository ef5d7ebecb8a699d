"""Datum planning (tusk.pps.datums): how globs and input trees cut commits into datums."""

from __future__ import annotations

import random
import string

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tusk.pps.datums import (
    Cross,
    Datum,
    DatumInput,
    FileRecord,
    Group,
    Join,
    Listing,
    PfsSource,
    Union,
    content_hash,
    diff_datums,
    matches,
    plan,
)

# --- helpers ---------------------------------------------------------------------------------


def rec(path: str, content: str | None = None) -> FileRecord:
    """A file whose content defaults to its own path (so every file differs)."""
    data = (path if content is None else content).encode()
    return FileRecord(path, blake3.blake3(data).digest(), len(data))


def files(*paths: str) -> list[FileRecord]:
    return sorted((rec(p) for p in paths), key=lambda r: r.path)


def repos(**contents: list[FileRecord]) -> Listing:
    """A listing that serves each repo's files by repo name (missing repo = empty commit)."""
    return lambda source: contents.get(source.repo, [])


def pfs(repo: str, glob: str, name: str | None = None, **kw: object) -> PfsSource:
    return PfsSource(name=name or repo, repo=repo, branch="master", glob=glob, **kw)  # type: ignore[arg-type]


def shape(datums: list[Datum]) -> list[list[tuple[str, str]]]:
    """Each datum as its (input name, matched path) pairs: what a user would see mounted."""
    return [[(di.name, di.path) for di in d.inputs] for d in datums]


def paths_of(datums: list[Datum]) -> list[str]:
    """Matched paths of single-input datums."""
    assert all(len(d.inputs) == 1 for d in datums)
    return [d.inputs[0].path for d in datums]


TREE = files(
    "/a.txt",
    "/b.csv",
    "/dir/x.txt",
    "/dir/y.csv",
    "/dir/sub/z.txt",
    "/other/w.txt",
    "/notes.txt/inner.csv",
)


# --- pfs globs -------------------------------------------------------------------------------


def test_root_glob_is_one_datum_with_the_whole_repo() -> None:
    datums = plan(pfs("r", "/"), repos(r=TREE))
    assert paths_of(datums) == ["/"]
    assert datums[0].inputs[0].files == tuple(TREE)


def test_star_gives_each_top_level_file_and_directory() -> None:
    datums = plan(pfs("r", "/*"), repos(r=TREE))
    assert paths_of(datums) == ["/a.txt", "/b.csv", "/dir", "/notes.txt", "/other"]
    by_path = {d.inputs[0].path: d.inputs[0] for d in datums}
    # A matched directory carries everything beneath it, at any depth, in path order ...
    assert [f.path for f in by_path["/dir"].files] == [
        "/dir/sub/z.txt",
        "/dir/x.txt",
        "/dir/y.csv",
    ]
    # ... and its children are not datums of their own.
    assert [f.path for f in by_path["/a.txt"].files] == ["/a.txt"]


def test_star_star_one_level_down() -> None:
    datums = plan(pfs("r", "/*/*"), repos(r=TREE))
    assert paths_of(datums) == [
        "/dir/sub",
        "/dir/x.txt",
        "/dir/y.csv",
        "/notes.txt/inner.csv",
        "/other/w.txt",
    ]
    sub = datums[0].inputs[0]
    assert [f.path for f in sub.files] == ["/dir/sub/z.txt"]


def test_double_star_matches_every_file_and_directory_separately() -> None:
    datums = plan(pfs("r", "/**"), repos(r=TREE))
    dirs = ["/dir", "/dir/sub", "/notes.txt", "/other"]
    assert sorted(paths_of(datums)) == sorted([f.path for f in TREE] + dirs)
    # Ancestors come before their contents.
    got = paths_of(datums)
    assert got.index("/dir") < got.index("/dir/sub") < got.index("/dir/sub/z.txt")
    whole_dir = next(d for d in datums if d.inputs[0].path == "/dir").inputs[0]
    assert len(whole_dir.files) == 3


def test_extension_glob_matches_files_and_directories_by_name() -> None:
    datums = plan(pfs("r", "/*.txt"), repos(r=TREE))
    # "/notes.txt" is a directory whose name matches: one datum with its contents.
    assert paths_of(datums) == ["/a.txt", "/notes.txt"]
    assert [f.path for f in datums[1].inputs[0].files] == ["/notes.txt/inner.csv"]


def test_literal_prefix_selects_only_inside_it() -> None:
    listing = files(
        "/data/2023/a.csv",
        "/data/2024.csv",
        "/data/2024/a.csv",
        "/data/2024/b.txt",
        "/data/2024/c.csv",
        "/data/2024x/d.csv",
        "/data/2024/deep/e.csv",
        "/zzz.csv",
    )
    datums = plan(pfs("r", "/data/2024/*.csv"), repos(r=listing))
    assert paths_of(datums) == ["/data/2024/a.csv", "/data/2024/c.csv"]
    exact = plan(pfs("r", "/data/2024"), repos(r=listing))
    assert paths_of(exact) == ["/data/2024"]
    assert len(exact[0].inputs[0].files) == 4


def test_directories_sort_as_if_their_path_ended_with_a_slash() -> None:
    # The order of the sorted file listing: "/a.txt" < "/a/x", so the file comes first, and
    # a directory comes right before its own contents.
    listing = files("/a/x", "/a.txt", "/a-b", "/a/y/z")
    assert paths_of(plan(pfs("r", "/*"), repos(r=listing))) == ["/a-b", "/a.txt", "/a"]
    assert paths_of(plan(pfs("r", "/**"), repos(r=listing))) == [
        "/a-b",
        "/a.txt",
        "/a",
        "/a/x",
        "/a/y",
        "/a/y/z",
    ]


def test_listing_order_does_not_matter() -> None:
    shuffled = list(TREE)
    random.Random(7).shuffle(shuffled)
    assert plan(pfs("r", "/*"), repos(r=shuffled)) == plan(pfs("r", "/*"), repos(r=TREE))


def test_datum_input_carries_the_source_identity() -> None:
    source = PfsSource("images", "pics", "dev", "/*", project="vision")
    (di,) = matches(source, files("/cat.png"))
    assert (di.name, di.repo, di.branch, di.project, di.path) == (
        "images",
        "pics",
        "dev",
        "vision",
        "/cat.png",
    )
    assert di.hash == content_hash("/cat.png", di.files)


@pytest.mark.parametrize("glob", ["/", "/*", "/**", "/*.txt"])
def test_empty_commit_has_no_datums(glob: str) -> None:
    assert plan(pfs("r", glob), repos()) == []


def test_no_match_gives_no_datums() -> None:
    assert plan(pfs("r", "/*.parquet"), repos(r=TREE)) == []


# --- cross and union -------------------------------------------------------------------------


def test_cross_of_two_is_the_product_first_input_slowest() -> None:
    node = Cross((pfs("left", "/*"), pfs("right", "/*")))
    datums = plan(node, repos(left=files("/1", "/2"), right=files("/a", "/b", "/c")))
    assert shape(datums) == [
        [("left", p), ("right", q)] for p in ["/1", "/2"] for q in ["/a", "/b", "/c"]
    ]


def test_cross_of_three_with_one_repo_under_two_names() -> None:
    node = Cross(
        (
            pfs("nums", "/*", name="x"),
            pfs("nums", "/*", name="y"),
            pfs("cfg", "/"),
        )
    )
    datums = plan(node, repos(nums=files("/1", "/2", "/3"), cfg=files("/c.json")))
    assert len(datums) == 3 * 3 * 1
    assert shape(datums)[1] == [("x", "/1"), ("y", "/2"), ("cfg", "/")]
    # The pairs (1, 2) and (2, 1) are different datums.
    assert len({d.id for d in datums}) == 9


def test_cross_with_an_empty_side_has_no_datums() -> None:
    node = Cross((pfs("full", "/*"), pfs("empty", "/*")))
    assert plan(node, repos(full=files("/a", "/b"))) == []


def test_union_concatenates_and_names_may_repeat() -> None:
    node = Union((pfs("jan", "/*", name="logs"), pfs("feb", "/*", name="logs")))
    datums = plan(node, repos(jan=files("/1", "/2"), feb=files("/3")))
    assert shape(datums) == [[("logs", "/1")], [("logs", "/2")], [("logs", "/3")]]
    assert [d.inputs[0].repo for d in datums] == ["jan", "jan", "feb"]


def test_union_still_yields_when_one_side_is_empty() -> None:
    node = Union((pfs("full", "/*"), pfs("empty", "/*")))
    assert shape(plan(node, repos(full=files("/a")))) == [[("full", "/a")]]


def test_union_selecting_the_same_data_twice_keeps_it_once() -> None:
    node = Union((pfs("r", "/*", name="in"), pfs("r", "/a*", name="in")))
    datums = plan(node, repos(r=files("/a", "/b")))
    assert paths_of(datums) == ["/a", "/b"]


# --- join ------------------------------------------------------------------------------------

# Pachyderm's join example: files share a number after "_"; the number is the key.
A_FILES = files("/a_1.txt", "/a_2.txt", "/a_3.txt")
B_FILES = files("/b_1.txt", "/b_2.txt", "/b_4.txt")


def join_of(outer_a: bool = False, outer_b: bool = False, on: str = "$1") -> Join:
    return Join(
        (
            pfs("A", "/*_(*).txt", join_on=on, outer_join=outer_a),
            pfs("B", "/*_(*).txt", join_on=on, outer_join=outer_b),
        )
    )


def test_inner_join_pairs_matching_keys_only() -> None:
    datums = plan(join_of(), repos(A=A_FILES, B=B_FILES))
    assert shape(datums) == [
        [("A", "/a_1.txt"), ("B", "/b_1.txt")],
        [("A", "/a_2.txt"), ("B", "/b_2.txt")],
    ]
    assert [[di.join_key for di in d.inputs] for d in datums] == [["1", "1"], ["2", "2"]]


def test_join_on_a_later_capture_group() -> None:
    node = Join(
        (
            pfs("A", "/(*)_(*).txt", join_on="$2"),
            pfs("B", "/(*)_(*).txt", join_on="$2"),
        )
    )
    datums = plan(node, repos(A=A_FILES, B=B_FILES))
    assert shape(datums) == shape(plan(join_of(), repos(A=A_FILES, B=B_FILES)))


def test_outer_join_on_one_side_keeps_its_unmatched_files() -> None:
    datums = plan(join_of(outer_a=True), repos(A=A_FILES, B=B_FILES))
    assert shape(datums) == [
        [("A", "/a_1.txt"), ("B", "/b_1.txt")],
        [("A", "/a_2.txt"), ("B", "/b_2.txt")],
        [("A", "/a_3.txt")],  # B has no 3; B's lone 4 is dropped (B is inner)
    ]


def test_outer_join_on_both_sides_keeps_everything() -> None:
    datums = plan(join_of(outer_a=True, outer_b=True), repos(A=A_FILES, B=B_FILES))
    assert shape(datums) == [
        [("A", "/a_1.txt"), ("B", "/b_1.txt")],
        [("A", "/a_2.txt"), ("B", "/b_2.txt")],
        [("A", "/a_3.txt")],
        [("B", "/b_4.txt")],
    ]


def test_join_crosses_several_matches_with_one_key() -> None:
    node = Join(
        (
            pfs("A", "/(*)_(*).txt", join_on="$2"),
            pfs("B", "/(*)_(*).txt", join_on="$2"),
        )
    )
    datums = plan(node, repos(A=files("/a_1.txt", "/c_1.txt"), B=files("/b_1.txt", "/d_1.txt")))
    assert shape(datums) == [
        [("A", "/a_1.txt"), ("B", "/b_1.txt")],
        [("A", "/a_1.txt"), ("B", "/d_1.txt")],
        [("A", "/c_1.txt"), ("B", "/b_1.txt")],
        [("A", "/c_1.txt"), ("B", "/d_1.txt")],
    ]


def test_partial_key_keeps_only_outer_inputs() -> None:
    node = Join(
        (
            pfs("A", "/*_(*).txt", join_on="$1", outer_join=True),
            pfs("B", "/*_(*).txt", join_on="$1"),
            pfs("C", "/*_(*).txt", join_on="$1"),
        )
    )
    datums = plan(node, repos(A=files("/a_1.txt"), B=files("/b_1.txt"), C=files("/c_2.txt")))
    # Key 1 lacks C: only the outer input A sees it. Key 2 has no outer input: dropped.
    assert shape(datums) == [[("A", "/a_1.txt")]]


def test_join_keys_come_out_sorted() -> None:
    node = Join(
        (
            pfs("A", "/(*).txt", join_on="$1", outer_join=True),
            pfs("B", "/(*).txt", join_on="$1", outer_join=True),
        )
    )
    datums = plan(node, repos(A=files("/m.txt", "/c.txt"), B=files("/z.txt", "/a.txt")))
    assert [d.inputs[0].join_key for d in datums] == ["a", "c", "m", "z"]


def test_join_with_an_empty_input_is_empty_unless_outer() -> None:
    assert plan(join_of(), repos(A=A_FILES)) == []
    assert len(plan(join_of(outer_a=True), repos(A=A_FILES))) == 3


def test_join_rejects_non_pfs_inputs() -> None:
    bad = Join((Cross((pfs("a", "/*"),)),))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pfs"):
        plan(bad, repos())


# --- group -----------------------------------------------------------------------------------


def test_group_by_collects_all_matches_of_all_inputs_per_key() -> None:
    node = Group(
        (
            pfs("sales", "/(*)_*.csv", group_by="$1"),
            pfs("stores", "/(*).txt", group_by="$1"),
        )
    )
    listing = repos(
        sales=files("/s1_jan.csv", "/s1_feb.csv", "/s2_jan.csv"),
        stores=files("/s1.txt", "/s3.txt"),
    )
    datums = plan(node, listing)
    assert shape(datums) == [
        [("sales", "/s1_feb.csv"), ("sales", "/s1_jan.csv"), ("stores", "/s1.txt")],
        [("sales", "/s2_jan.csv")],
        [("stores", "/s3.txt")],
    ]
    assert [{di.group_key for di in d.inputs} for d in datums] == [{"s1"}, {"s2"}, {"s3"}]


# --- nesting ---------------------------------------------------------------------------------


def test_cross_of_a_join_and_a_pfs_input() -> None:
    node = Cross((join_of(), pfs("model", "/*")))
    datums = plan(node, repos(A=A_FILES, B=B_FILES, model=files("/m1", "/m2")))
    assert shape(datums) == [
        [("A", "/a_1.txt"), ("B", "/b_1.txt"), ("model", "/m1")],
        [("A", "/a_1.txt"), ("B", "/b_1.txt"), ("model", "/m2")],
        [("A", "/a_2.txt"), ("B", "/b_2.txt"), ("model", "/m1")],
        [("A", "/a_2.txt"), ("B", "/b_2.txt"), ("model", "/m2")],
    ]


def test_union_inside_cross() -> None:
    node = Cross((Union((pfs("a", "/*"), pfs("b", "/*"))), pfs("c", "/")))
    datums = plan(node, repos(a=files("/1"), b=files("/2"), c=files("/x")))
    assert shape(datums) == [[("a", "/1"), ("c", "/")], [("b", "/2"), ("c", "/")]]


# --- identity and hashing --------------------------------------------------------------------


def test_datum_id_depends_on_paths_not_contents() -> None:
    before = plan(pfs("r", "/*"), repos(r=[rec("/a", "one"), rec("/d/x", "1")]))
    after = plan(pfs("r", "/*"), repos(r=[rec("/a", "two"), rec("/d/x", "2"), rec("/d/y")]))
    assert [d.id for d in before] == [d.id for d in after]
    assert all(len(d.id) == 64 and int(d.id, 16) >= 0 for d in before)


def test_datum_id_tells_inputs_apart() -> None:
    base = PfsSource("in", "r", "master", "/*")
    variants = [
        base,
        PfsSource("other", "r", "master", "/*"),
        PfsSource("in", "r2", "master", "/*"),
        PfsSource("in", "r", "dev", "/*"),
        PfsSource("in", "r", "master", "/*", project="p2"),
    ]
    ids = {plan(v, lambda _: files("/a"))[0].id for v in variants}
    assert len(ids) == len(variants)
    # Field boundaries are framed: "ab"+"c" is not "a"+"bc".
    one = plan(PfsSource("ab", "c", "m", "/*"), lambda _: files("/a"))[0].id
    two = plan(PfsSource("a", "bc", "m", "/*"), lambda _: files("/a"))[0].id
    assert one != two


def _hashes(listing: list[FileRecord], glob: str = "/*", salt: str = "s") -> dict[str, str]:
    return {d.inputs[0].path: d.hash(salt) for d in plan(pfs("r", glob), repos(r=listing))}


def test_hash_follows_content_additions_and_removals() -> None:
    base = [rec("/a", "1"), rec("/d/x", "2"), rec("/d/y", "3")]
    h0 = _hashes(base)
    assert _hashes(list(base)) == h0  # deterministic

    edited = _hashes([rec("/a", "1"), rec("/d/x", "CHANGED"), rec("/d/y", "3")])
    assert edited["/a"] == h0["/a"] and edited["/d"] != h0["/d"]

    added = _hashes([*base, rec("/d/z", "4")])
    assert added["/a"] == h0["/a"] and added["/d"] != h0["/d"]

    removed = _hashes([rec("/a", "1"), rec("/d/x", "2")])
    assert removed["/d"] != h0["/d"]

    # Same contents in the same order under other names: still a different datum.
    renamed = _hashes([rec("/a", "1"), rec("/d/x", "2"), rec("/d/z", "3")])
    assert renamed["/d"] != h0["/d"]


def test_hash_follows_salt_and_extra() -> None:
    (d,) = plan(pfs("r", "/"), repos(r=files("/a")))
    assert d.hash("s1") != d.hash("s2")
    assert d.hash("s1") != d.hash("s1", b"transform-v2")
    assert d.hash("s1", b"x") == d.hash("s1", b"x")


def test_hash_of_a_cross_changes_with_either_side() -> None:
    node = Cross((pfs("a", "/*"), pfs("b", "/*")))
    h1 = plan(node, repos(a=[rec("/1", "x")], b=[rec("/2", "y")]))[0].hash("s")
    h2 = plan(node, repos(a=[rec("/1", "x")], b=[rec("/2", "z")]))[0].hash("s")
    assert h1 != h2


# --- incremental processing ------------------------------------------------------------------


def test_diff_datums_skips_unchanged_runs_new_and_changed_removes_gone() -> None:
    source = pfs("r", "/*")
    job1 = plan(source, repos(r=[rec("/keep", "1"), rec("/edit", "2"), rec("/drop", "3")]))
    previous = {d.id: d.hash("salt") for d in job1}

    job2 = plan(source, repos(r=[rec("/keep", "1"), rec("/edit", "2!"), rec("/new", "4")]))
    to_run, skipped, removed = diff_datums(previous, job2, "salt")
    assert paths_of(to_run) == ["/edit", "/new"]
    assert paths_of(skipped) == ["/keep"]
    drop_id = next(d.id for d in job1 if d.inputs[0].path == "/drop")
    assert removed == [drop_id]

    # A new salt (reprocess) runs everything again.
    to_run, skipped, removed = diff_datums(previous, job2, "new-salt")
    assert len(to_run) == 3 and skipped == [] and removed == [drop_id]


def test_diff_datums_with_no_base_runs_everything() -> None:
    datums = plan(pfs("r", "/*"), repos(r=files("/a", "/b")))
    assert diff_datums({}, datums, "s") == (datums, [], [])


# --- scale -----------------------------------------------------------------------------------


def test_a_hundred_thousand_files_plan_quickly() -> None:
    # 100 directories of 1,000 files; the globs below make few datums, so the cost is the scan.
    big = [
        FileRecord(f"/d{i // 1000:03d}/f{i:06d}.txt", i.to_bytes(32, "big"), 1)
        for i in range(100_000)
    ]
    top = plan(pfs("r", "/*"), repos(r=big))
    assert len(top) == 100
    assert all(len(d.inputs[0].files) == 1000 for d in top)
    assert len(plan(pfs("r", "/"), repos(r=big))[0].inputs[0].files) == 100_000
    one_dir = plan(pfs("r", "/d042/*"), repos(r=big))
    assert len(one_dir) == 1000 and one_dir[0].inputs[0].path == "/d042/f042000.txt"
    assert len(plan(pfs("r", "/*/f00000?.txt"), repos(r=big))) == 10


# --- properties ------------------------------------------------------------------------------

_names = st.text(string.ascii_lowercase, min_size=1, max_size=3)
_listings = st.lists(
    st.sets(_names.map(lambda n: "/" + n), max_size=5).map(sorted),
    min_size=1,
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(_listings)
def test_cross_size_is_the_product_and_union_size_the_sum(listings: list[list[str]]) -> None:
    contents = {f"r{i}": files(*paths) for i, paths in enumerate(listings)}
    sources = [pfs(repo, "/*") for repo in contents]
    listing = repos(**contents)
    product = 1
    for paths in listings:
        product *= len(paths)
    assert len(plan(Cross(tuple(sources)), listing)) == product
    assert len(plan(Union(tuple(sources)), listing)) == sum(len(p) for p in listings)


_paths = st.lists(
    st.lists(st.sampled_from(["a", "b", "c.txt", "d"]), min_size=1, max_size=4).map(
        lambda parts: "/" + "/".join(parts)
    ),
    max_size=12,
)


@settings(max_examples=100, deadline=None)
@given(_paths)
def test_star_partitions_files_and_double_star_sees_every_entry(raw: list[str]) -> None:
    # Keep only listings that are a valid tree: no path is both a file and a directory.
    chosen = sorted(set(raw))
    valid = [p for p in chosen if not any(q.startswith(p + "/") for q in chosen)]
    listing = files(*valid)
    top = matches(pfs("r", "/*"), listing)
    # Every file is in exactly one top-level datum.
    assert sorted(f.path for di in top for f in di.files) == valid
    # "/**" yields each file and each implied directory exactly once.
    entries = set(valid)
    for p in valid:
        parts = p.split("/")[1:-1]
        entries.update("/" + "/".join(parts[: i + 1]) for i in range(len(parts)))
    every = matches(pfs("r", "/**"), listing)
    assert sorted(di.path for di in every) == sorted(entries)
    for di in every:
        assert all(f.path == di.path or f.path.startswith(di.path + "/") for f in di.files)
        assert isinstance(di, DatumInput) and di.files
