"""Behaviour of the glob language (tusk.pfs.globs): what a user selecting paths would notice."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tusk.pfs.globs import Glob, GlobError, compile_glob, glob_match


def ok(pattern: str, path: str) -> bool:
    return compile_glob(pattern).matches(path)


# --- wildcards -------------------------------------------------------------------------------


def test_star_stays_within_one_segment() -> None:
    assert ok("/*", "/a.txt")
    assert ok("/*", "/dir")
    assert not ok("/*", "/dir/a.txt")
    assert ok("/dir/*.txt", "/dir/a.txt")
    assert not ok("/*.txt", "/dir/a.txt")
    assert ok("/a*b", "/ab")  # '*' may be empty
    assert ok("/*/*", "/d/f")
    assert not ok("/*/*", "/d")


def test_double_star_crosses_directories() -> None:
    for path in ["/a", "/a/b", "/a/b/c.txt"]:
        assert ok("/**", path)
    assert ok("/**.txt", "/x.txt")
    assert ok("/**.txt", "/a/b/x.txt")
    assert not ok("/**.txt", "/a/b/x.csv")
    assert ok("/**test*.txt", "/deep/dir/my_test_1.txt")
    assert ok("/data/**", "/data/2024/01/x.csv")
    assert not ok("/data/**", "/other/x.csv")
    # "**" is "any characters", so "/**/" needs at least one directory in between.
    assert ok("/**/*.txt", "/a/x.txt")
    assert not ok("/**/*.txt", "/x.txt")


def test_question_mark_is_one_char_but_not_slash() -> None:
    assert ok("/?.txt", "/a.txt")
    assert not ok("/?.txt", "/ab.txt")
    assert not ok("/?.txt", "/.txt")
    assert not ok("/a?b", "/a/b")
    assert ok("/??", "/ab")
    assert not ok("/??", "/a")


def test_whole_path_must_match() -> None:
    assert not ok("/a", "/ab")
    assert not ok("/a", "/xa")
    assert not ok("/a", "/a/b")
    assert ok("/a/b.txt", "/a/b.txt")


def test_leading_slash_optional_and_trailing_slash_ignored() -> None:
    assert compile_glob("*.txt").pattern == "/*.txt"
    assert ok("*.txt", "/a.txt")
    assert compile_glob("/dir/").pattern == "/dir"
    assert ok("/dir/", "/dir")
    assert compile_glob("dir/*/").pattern == "/dir/*"
    assert Glob("*.txt") == compile_glob("/*.txt")


def test_directory_paths_with_trailing_slash_match_like_without() -> None:
    assert ok("/*", "/dir/")
    assert ok("/dir/*", "/dir/sub/")
    assert not ok("/dir/*", "/dir/")


def test_root_pattern_matches_only_root() -> None:
    for pattern in ["/", "", "//"]:
        g = compile_glob(pattern)
        assert g.pattern == "/"
        assert g.match("/") == ()
        assert not g.matches("/a")
        assert not g.matches("/a/b")
    # and the root path is only ever selected by the root pattern
    for pattern in ["/*", "/**", "/?(x)", "/{,a}"]:
        assert not ok(pattern, "/")


def test_escapes() -> None:
    assert ok(r"/a\*b", "/a*b")
    assert not ok(r"/a\*b", "/axb")
    assert ok(r"/\[x\]", "/[x]")
    assert ok(r"/a\(b", "/a(b")
    assert glob_match(r"/\(*\)", "/(x)") == ()
    assert ok(r"/\{a,b\}", "/{a,b}")
    assert ok(r"/a\\b", "/a\\b")


def test_stray_closers_are_literal() -> None:
    assert ok("/a)b", "/a)b")
    assert ok("/a}b", "/a}b")
    assert ok("/a]b", "/a]b")
    assert ok("/a,b|c", "/a,b|c")
    assert ok("/!x", "/!x")
    assert ok("/a+b@c", "/a+b@c")


# --- character classes -----------------------------------------------------------------------


def test_character_classes() -> None:
    assert ok("/[abc].txt", "/b.txt")
    assert not ok("/[abc].txt", "/d.txt")
    assert ok("/file[0-9]", "/file7")
    assert not ok("/file[0-9]", "/filex")
    assert ok("/[a-cx-z]", "/y")
    assert ok("/[!a-c]", "/d")
    assert not ok("/[!a-c]", "/b")
    assert ok("/[^a-c]", "/d")
    assert not ok("/[^a-c]", "/a")
    assert ok("/[]x]", "/]")  # ']' first is a member
    assert ok(r"/[\]]", "/]")
    assert ok("/[a-]", "/-")
    assert ok("/[[:digit:]][[:alpha:]]", "/7q")
    assert not ok("/[[:digit:]]", "/q")


def test_classes_never_match_slash() -> None:
    assert not ok("/a[!x]b", "/a/b")
    assert not ok("/a[^x]b", "/a/b")
    assert not ok("/a[/]b", "/a/b")
    assert not ok("/a[!-0]b", "/a/b")  # a range that spans '/'
    assert not ok("/a[[:punct:]]b", "/a/b")
    assert ok("/a[[:punct:]]b", "/a-b")


# --- braces ----------------------------------------------------------------------------------


def test_braces() -> None:
    g = compile_glob("/{foo,bar,baz}.txt")
    assert g.matches("/foo.txt") and g.matches("/baz.txt")
    assert not g.matches("/qux.txt")
    assert g.match("/foo.txt") == ()  # braces do not capture
    assert ok("/{a,b/c}", "/b/c")
    assert ok("/x{,.bak}", "/x") and ok("/x{,.bak}", "/x.bak")
    assert ok("/{*.csv,data/*}", "/data/x")
    assert not ok("/{*.csv,data/*}", "/data/x/y")


def test_nested_braces() -> None:
    g = compile_glob("/{a,b{1,2}}/x")
    for path in ["/a/x", "/b1/x", "/b2/x"]:
        assert g.matches(path)
    assert not g.matches("/b3/x")
    assert not g.matches("/b/x")
    assert ok("/{a,{b,{c,d}}}", "/d")


# --- extglobs --------------------------------------------------------------------------------


def test_extglob_exactly_one() -> None:
    assert glob_match("/para@(chute|graph)", "/paragraph") == ("graph",)
    assert not ok("/para@(chute|graph)", "/paramour")
    assert not ok("/@(a)b", "/aa")


def test_extglob_zero_or_one() -> None:
    assert ok("/a?(x)", "/a")
    assert ok("/a?(x)", "/ax")
    assert not ok("/a?(x)", "/axx")
    assert ok("/para?([345]|99)1", "/para991")
    assert not ok("/para?([345]|99)1", "/para381")


def test_extglob_zero_or_more() -> None:
    assert ok("/para*([0-9])", "/para")
    assert ok("/para*([0-9])", "/para13829383746592")
    assert not ok("/para*([0-9])", "/paragraph")
    assert ok("/*(fo|foo)", "/fofoofoofofoo")
    assert ok("/*(0|1|3|5|7|9)", "/137577991")
    assert not ok("/*(0|1|3|5|7|9)", "/2468")


def test_extglob_one_or_more() -> None:
    assert not ok("/para+([0-9])", "/para")
    assert ok("/para+([0-9])", "/para987346523")
    assert ok("/a+(b|c)d", "/abcbd")
    assert not ok("/a+(b|c)d", "/ad")
    assert ok("/*.+(b|d)", "/d.a.d")
    assert not ok("/*.+(b|d)", "/a.a")


def test_extglob_not() -> None:
    no_dot = compile_glob("/!(*.*)")
    assert no_dot.matches("/README")
    assert no_dot.matches("/dir")
    assert not no_dot.matches("/a.txt")
    assert not no_dot.matches("/dir/README")  # stays in one segment
    assert not ok("/!(foo)", "/foo")
    assert ok("/!(foo)", "/foobar")
    assert ok("/!(foo)", "/fo")
    assert not ok("/!(*.js|*.json)", "/a.js")
    assert ok("/!(*.js|*.json)", "/a.js.gz")
    assert ok("/*.!(js)", "/foo.js.js")  # '*' takes "foo", the negation "js.js"
    assert not ok("/*.!(js)", "/foo.js")
    assert ok("/a!(x)", "/a")
    assert not ok("/a!(x)", "/ax")


def test_extglob_not_followed_by_more_path() -> None:
    g = compile_glob("/!(tmp)/*.csv")
    assert g.matches("/data/x.csv")
    assert g.matches("/tmpfiles/x.csv")  # only the exact name "tmp" is excluded
    assert not g.matches("/tmp/x.csv")
    # literal text after the negation in the same segment is taken into account
    assert ok("/!(*.*).txt", "/readme.txt")
    assert not ok("/!(*.tmp).csv", "/a.tmp.csv")
    assert ok("/!(*.tmp).csv", "/a.csv")


def test_extglob_not_followed_by_wildcards_rejects_prefixes() -> None:
    # ohmyglob's reading: with wildcards after it, "!(foo)" refuses text *starting* with foo.
    assert not ok("/!(foo)*", "/foo")
    assert not ok("/!(foo)*", "/foobar")
    assert ok("/!(foo)*", "/barfoo")


def test_extglob_nested_negations() -> None:
    assert ok("/!(!(foo))", "/foo")
    assert not ok("/!(!(!(foo)))", "/foo")
    assert ok("/@(!(z*)|*x)", "/foot")
    assert not ok("/@(!(z*)|*x)", "/zoot")
    assert ok("/@(!(z*)|*x)", "/zoox")
    assert ok("/*(!(f))", "/fff")
    assert not ok("/*(!(f))", "/f")


def test_extglobs_nest_and_mix() -> None:
    assert ok("/@(b+(c)d|e*(f)g?|?(h)i@(j|k))", "/effgz")
    assert not ok("/@(b+(c)d|e+(f)g?|?(h)i@(j|k))", "/egz")
    assert ok("/*(f*(o))", "/fooofoofofooo")
    assert not ok("/*(f*(o))", "/xfoooofof")
    assert ok("/*(of|oof+(o))", "/oofooofo")
    assert ok("/{a,@(b|c)}x", "/cx")


def test_bare_parens_are_groups_not_extglob() -> None:
    assert glob_match("/(a|b).txt", "/b.txt") == ("b",)
    assert not ok("/(a|b).txt", "/ab.txt")
    assert glob_match("/(a)", "/a") == ("a",)


# --- capture groups --------------------------------------------------------------------------


def test_plain_capture_groups() -> None:
    assert glob_match("/(*)_(*).txt", "/a_b.txt") == ("a", "b")
    assert glob_match("/(*)/(*)", "/dir/file") == ("dir", "file")
    assert glob_match("/(**)/x.txt", "/a/b/x.txt") == ("a/b",)
    assert glob_match("/*.txt", "/a.txt") == ()
    assert glob_match("/(*)_(*).txt", "/ab.txt") is None


def test_groups_numbered_by_opening_parenthesis() -> None:
    # ((a)(b)) -> 1 is the outer group, then 2 and 3 inside it, then 4 after it
    assert glob_match("/((?)(?))-(*)", "/ab-c") == ("ab", "a", "b", "c")
    assert glob_match("/test*(/?(+(a|b)/*.go))", "/test/a/x.go") == ("/a/x.go", "a/x.go", "a")


def test_extglob_groups_capture_whole_extglob_text() -> None:
    assert glob_match("/+(a|b)/x.go", "/aba/x.go") == ("aba",)
    assert glob_match("/a*(a|b)/x.go", "/aba/x.go") == ("ba",)
    assert glob_match("/a?(a|b)/x.go", "/a/x.go") == ("",)
    assert glob_match("/@(a|b)/(*).go", "/a/x.go") == ("a", "x")
    assert glob_match("/(*)-!(*.tmp)", "/x-data.csv") == ("x", "data.csv")
    assert glob_match("/(x)-@(a|b)-(*)", "/x-b-z") == ("x", "b", "z")


def test_group_that_did_not_participate_is_empty() -> None:
    g = compile_glob("/{(a*),b}")
    assert g.match("/b") == ("",)
    assert g.match("/a1") == ("a1",)
    assert glob_match("/@((x)|y)", "/y") == ("y", "")


def test_braces_do_not_shift_group_numbers() -> None:
    assert glob_match("/{x,y}(*)/{(a),b}", "/y1/a") == ("1", "a")


# --- expand_groups ---------------------------------------------------------------------------


def test_expand_groups_basic() -> None:
    g = compile_glob("/(*)_(*).txt")
    groups = g.match("/a_b.txt")
    assert groups == ("a", "b")
    assert g.expand_groups("$1", groups) == "a"
    assert g.expand_groups("$1$2", groups) == "ab"
    assert g.expand_groups("$2-x-$1", groups) == "b-x-a"
    assert g.expand_groups("plain", groups) == "plain"


def test_expand_groups_longest_number_first() -> None:
    g = compile_glob("/" + "".join("(?)" for _ in range(12)))
    groups = g.match("/abcdefghijkl")
    assert groups == tuple("abcdefghijkl")
    assert g.expand_groups("$1", groups) == "a"
    assert g.expand_groups("$10", groups) == "j"
    assert g.expand_groups("$11$12", groups) == "kl"
    assert g.expand_groups("$1-$12-$9", groups) == "a-l-i"
    assert g.expand_groups("$123", groups) == "l3"  # longest *existing* group number
    # with only three groups "$12" is group 1 followed by a literal "2"
    assert g.expand_groups("$12", ("x", "y", "z")) == "x2"


def test_expand_groups_edge_cases() -> None:
    g = compile_glob("/(*)")
    assert g.expand_groups("${1}0", ("a",)) == "a0"
    assert g.expand_groups("$$1", ("a",)) == "$1"
    assert g.expand_groups("$5", ("a",)) == "$5"  # missing groups stay visible
    assert g.expand_groups("$0", ("a",)) == "$0"
    assert g.expand_groups("cost: $", ("a",)) == "cost: $"
    # substitution is one pass: group text that looks like a reference is not re-expanded
    assert g.expand_groups("$1$2", ("$2", "b")) == "$2b"


# --- literal_prefix and max_depth ------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("/data/2024/*.csv", "/data/2024/"),
        ("/*", "/"),
        ("/", "/"),
        ("", "/"),
        ("/a/b.txt", "/a/b.txt"),
        ("a/b.txt", "/a/b.txt"),
        ("/data/2024*", "/data/"),
        ("/data/x?", "/data/"),
        ("/logs/{a,b}/x", "/logs/"),
        ("/logs/[ab]", "/logs/"),
        ("/a/+(x)", "/a/"),
        ("/a/(x)", "/a/"),
        ("/a/**", "/a/"),
        (r"/we\*ird/*", "/we*ird/"),
        ("/x+y/*", "/x+y/"),
    ],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    assert compile_glob(pattern).literal_prefix == prefix


@pytest.mark.parametrize(
    ("pattern", "depth"),
    [
        ("/", 0),
        ("/*", 1),
        ("/*/*", 2),
        ("/a/b/c.txt", 3),
        ("/{a,b/c}", 2),
        ("/{a,b/c}/*", 3),
        ("/**", None),
        ("/a/**.txt", None),
        ("/*(a|b)", 1),
        ("/+(a/)", None),
        ("/!(a/b)", 1),
        ("/[!x]/?", 2),
    ],
)
def test_max_depth(pattern: str, depth: int | None) -> None:
    assert compile_glob(pattern).max_depth == depth


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("/[a", "glob '/[a': unclosed '['"),
        ("/[!", "glob '/[!': unclosed '['"),
        ("/[]", "glob '/[]': unclosed '['"),
        ("/{a,b", "glob '/{a,b': unclosed '{'"),
        ("/{a,{b}", "glob '/{a,{b}': unclosed '{'"),
        ("/(a|b", "glob '/(a|b': unclosed '('"),
        ("/+(a", "glob '/+(a': unclosed '('"),
        ("/!(", "glob '/!(': unclosed '('"),
        ("a\\", "glob 'a\\': trailing '\\' escapes nothing"),
        ("/[z-a]", "glob '/[z-a]': bad range 'z-a' in '['"),
        ("/[[:nope:]]", "glob '/[[:nope:]]': unknown character class '[:nope:]'"),
    ],
)
def test_errors_name_the_problem(pattern: str, message: str) -> None:
    with pytest.raises(GlobError) as info:
        compile_glob(pattern)
    assert str(info.value) == message
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_innermost_unclosed_construct_is_reported() -> None:
    with pytest.raises(GlobError, match=re.escape("unclosed '('")):
        compile_glob("/{a,(b}")


# --- API details -----------------------------------------------------------------------------


def test_compile_is_cached_and_globs_are_values() -> None:
    assert compile_glob("/a/*") is compile_glob("/a/*")
    assert compile_glob("/a/*") == Glob("a/*/")
    assert hash(compile_glob("/a/*")) == hash(Glob("/a/*"))
    with pytest.raises(AttributeError):
        compile_glob("/a").pattern = "/b"  # type: ignore[misc]


def test_glob_match_convenience() -> None:
    assert glob_match("/(*).csv", "/x.csv") == ("x",)
    assert glob_match("/(*).csv", "/x.txt") is None


# --- properties ------------------------------------------------------------------------------

_segment = st.text(
    alphabet=st.characters(blacklist_characters="/", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
)
_plain_segment = st.text(alphabet="abcxyz019._-", min_size=1, max_size=8)
_paths = st.lists(_segment, min_size=1, max_size=5).map(lambda segs: "/" + "/".join(segs))


def _escape(segment: str) -> str:
    return "".join("\\" + c for c in segment)


@given(st.lists(_segment, min_size=1, max_size=5))
def test_escaped_literal_pattern_matches_exactly_its_path(segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    g = compile_glob("/" + "/".join(_escape(s) for s in segments))
    assert g.match(path) == ()
    assert g.literal_prefix == path
    assert g.max_depth == len(segments)
    assert not g.matches(path + "x")
    assert not g.matches(path + "/x")


@given(st.lists(_plain_segment, min_size=1, max_size=5), _paths)
def test_plain_literal_pattern_matches_only_itself(segments: list[str], other: str) -> None:
    path = "/" + "/".join(segments)
    assert ok(path, path)
    assert ok(path, other) == (other == path)


@given(st.text(max_size=20))
def test_star_never_matches_a_slash(text: str) -> None:
    assert ok("/x*y", "/x" + text + "y") == ("/" not in text)
    # (a trailing "x" so the path is not a directory path with a trailing '/')
    assert glob_match("/(*)", "/" + text + "x") == (None if "/" in text else (text + "x",))


@given(_paths)
def test_double_star_matches_every_path(path: str) -> None:
    assert ok("/**", path)
    assert glob_match("/(**)", path) == (path[1:],)


@given(_paths, st.sampled_from(["/*", "/*/*", "/**", "/?*/**", "/{a,b}*/*", "/(*)/+(?)", "/!(x)"]))
def test_matches_respect_prefix_and_depth(path: str, pattern: str) -> None:
    g = compile_glob(pattern)
    if g.matches(path):
        assert path.startswith(g.literal_prefix)
        if g.max_depth is not None:
            assert path.count("/") <= g.max_depth


@given(_segment)
def test_negation_excludes_exactly_its_alternatives(name: str) -> None:
    assert ok("/!(*.txt)", "/" + name) == (not name.endswith(".txt"))
    assert ok("/!(*.*)", "/" + name) == ("." not in name)
    assert ok("/!(*.tmp).csv", "/" + name) == (
        name.endswith(".csv") and not name[: -len(".csv")].endswith(".tmp")
    )
