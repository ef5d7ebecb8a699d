"""Glob patterns over repository paths: Pachyderm's glob language.

This module owns the *glob language* that selects paths inside a commit: the pattern in
``tusk glob file repo@ref:/pattern`` and in a pipeline's ``input.pfs.glob``, plus the capture
groups that ``join_on`` / ``group_by`` templates (``"$1"``, ``"$1-$2"``) refer to. The semantics
follow Pachyderm's ``ohmyglob`` dialect:

* ``*`` any run of characters except ``/``; ``?`` one character except ``/``;
* ``**`` any run of characters *including* ``/`` (``/**.txt`` matches at any depth);
* ``[abc]``, ``[a-c]``, ``[!a-c]``/``[^a-c]`` and ``[[:digit:]]``-style classes, never ``/``;
* ``{a,b,c}`` alternatives (nestable, may hold any glob syntax; they do not capture);
* extglobs ``@(a|b)`` one of, ``?(a|b)`` zero or one, ``*(a|b)`` zero or more, ``+(a|b)`` one
  or more and ``!(a|b)`` anything in the segment except the alternatives;
* ``( ... )`` is a capture group; every extglob captures too. Groups are numbered 1, 2, ... by
  the position of their opening parenthesis, as in regular expressions;
* ``\\`` escapes the next character.

Patterns and paths are absolute and '/'-separated. A pattern always matches the *whole* path; its
leading ``/`` is optional and a trailing ``/`` is ignored. The root pattern ``/`` matches only the
root path ``/`` (the whole repository as one datum), and the root path matches nothing else.

A pattern is parsed once into a small syntax tree and translated into one Python regular
expression, so matching a path is a single ``re`` call. ``compile_glob`` caches compiled globs.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import NoReturn

__all__ = ["Glob", "GlobError", "compile_glob", "glob_match"]


class GlobError(ValueError):
    """A glob pattern that cannot be parsed; the message names the pattern and the problem."""


# --------------------------------------------------------------------------------------------
# Syntax tree. Kept deliberately tiny: everything that is not a group is a leaf.


@dataclass(frozen=True, slots=True)
class _Lit:
    """Literal text (escapes already resolved)."""

    text: str


@dataclass(frozen=True, slots=True)
class _Wild:
    """A wildcard leaf: ``*``, ``**``, ``?`` or a character class, already as regex text."""

    regex: str
    crosses_slash: bool = False


@dataclass(frozen=True, slots=True)
class _Group:
    """Alternatives: braces (kind ``{``), a plain capture group (``(``) or an extglob."""

    kind: str  # one of "{", "(", "@", "?", "*", "+", "!"
    alts: tuple[tuple[_Node, ...], ...]
    number: int  # 1-based capture group number; 0 for braces, which do not capture


_Node = _Lit | _Wild | _Group

_STAR = _Wild("[^/]*")
_SUPER = _Wild(".*", crosses_slash=True)
_ONE = _Wild("[^/]")

# POSIX classes as regex class bodies (ASCII, like Go's regexp which ohmyglob builds on).
_POSIX: dict[str, str] = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}


class _Parser:
    """Recursive-descent parser from pattern text (without its leading '/') to a node list."""

    def __init__(self, text: str, shown: str) -> None:
        self.text = text
        self.shown = shown  # the pattern as the user wrote it, for error messages
        self.pos = 0
        self.groups = 0

    def fail(self, problem: str) -> NoReturn:
        raise GlobError(f"glob '{self.shown}': {problem}")

    def parse(self) -> tuple[_Node, ...]:
        nodes, _ = self._sequence("")
        return nodes

    def _sequence(self, stops: str) -> tuple[tuple[_Node, ...], str]:
        """Parse until one of ``stops`` (consumed and returned) or the end (returns "")."""
        text, n = self.text, len(self.text)
        nodes: list[_Node] = []
        literal: list[str] = []

        def flush() -> None:
            # Adjacent literal characters become one node, which keeps the regex short and lets
            # literal_prefix and the negation logic look at whole literal runs.
            if literal:
                nodes.append(_Lit("".join(literal)))
                literal.clear()

        while self.pos < n:
            c = text[self.pos]
            if c in stops:
                self.pos += 1
                flush()
                return tuple(nodes), c
            nxt = text[self.pos + 1] if self.pos + 1 < n else ""
            if c == "\\":
                if not nxt:
                    self.fail("trailing '\\' escapes nothing")
                literal.append(nxt)
                self.pos += 2
            elif c == "*":
                end = self.pos
                while end < n and text[end] == "*":
                    end += 1
                # In "**(x)" the star touching "(" opens an extglob; the rest are wildcards.
                extglob = end < n and text[end] == "("
                stars = end - self.pos - (1 if extglob else 0)
                flush()
                if stars == 1:
                    nodes.append(_STAR)
                elif stars >= 2:
                    nodes.append(_SUPER)
                if extglob:
                    self.pos = end + 1
                    nodes.append(self._group("*"))
                else:
                    self.pos = end
            elif c in "?+@!" and nxt == "(":
                flush()
                self.pos += 2
                nodes.append(self._group(c))
            elif c == "?":
                flush()
                nodes.append(_ONE)
                self.pos += 1
            elif c == "(":
                flush()
                self.pos += 1
                nodes.append(self._group("("))
            elif c == "{":
                flush()
                self.pos += 1
                nodes.append(self._group("{"))
            elif c == "[":
                flush()
                nodes.append(self._char_class())
            else:
                # Stray closers (")", "}", "]") and separators outside their group are plain
                # characters: file names may contain them.
                literal.append(c)
                self.pos += 1
        flush()
        return tuple(nodes), ""

    def _group(self, kind: str) -> _Group:
        """Parse alternatives after the opening bracket (already consumed)."""
        number = 0
        if kind != "{":
            # Numbered on opening, before the contents, so nesting numbers outer groups first.
            self.groups += 1
            number = self.groups
        opener, stops, closer = ("{", ",}", "}") if kind == "{" else ("(", "|)", ")")
        alts: list[tuple[_Node, ...]] = []
        while True:
            seq, stop = self._sequence(stops)
            alts.append(seq)
            if stop == closer:
                return _Group(kind, tuple(alts), number)
            if not stop:
                self.fail(f"unclosed '{opener}'")

    def _char_class(self) -> _Wild:
        text, n = self.text, len(self.text)
        i = self.pos + 1
        negated = i < n and text[i] in "!^"
        if negated:
            i += 1
        parts: list[str] = []
        first = True

        def read_char() -> str:
            nonlocal i
            if i < n and text[i] == "\\":
                i += 1
            if i >= n:
                self.fail("unclosed '['")
            i += 1
            return text[i - 1]

        while True:
            if i >= n:
                self.fail("unclosed '['")
            c = text[i]
            # A ']' right after the opening bracket is a member, as in shell globs.
            if c == "]" and not first:
                i += 1
                break
            first = False
            if text.startswith("[:", i):
                end = text.find(":]", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    if name not in _POSIX:
                        self.fail(f"unknown character class '[:{name}:]'")
                    parts.append(_POSIX[name])
                    i = end + 2
                    continue
            lo = read_char()
            if i + 1 < n and text[i] == "-" and text[i + 1] != "]":
                i += 1
                hi = read_char()
                if lo > hi:
                    self.fail(f"bad range '{lo}-{hi}' in '['")
                parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
            else:
                parts.append(re.escape(lo))
        self.pos = i
        body = "".join(parts)
        if negated:
            # Classes never match '/': adding it to a negated set is the cheap way to say so.
            return _Wild(f"[^{body}/]")
        regex = f"[{body}]"
        if re.fullmatch(regex, "/"):
            regex = "(?!/)" + regex
        return _Wild(regex)


# --------------------------------------------------------------------------------------------
# Translation to a Python regular expression.


def _literal_follow(nodes: tuple[_Node, ...], index: int, follow: str | None) -> str | None:
    """The literal text that must follow ``nodes[index]`` up to the end of its path segment.

    ``follow`` is the same for whatever follows ``nodes`` as a whole. None means "unknown"
    (a wildcard or group comes before the segment ends).
    """
    acc: list[str] = []
    for node in nodes[index + 1 :]:
        if not isinstance(node, _Lit):
            return None
        cut = node.text.find("/")
        if cut >= 0:
            acc.append(node.text[:cut])
            return "".join(acc)
        acc.append(node.text)
    if follow is None:
        return None
    return "".join(acc) + follow


class _Emitter:
    def __init__(self) -> None:
        self.tails = 0

    def sequence(self, nodes: tuple[_Node, ...], follow: str | None) -> str:
        out: list[str] = []
        for i, node in enumerate(nodes):
            if isinstance(node, _Lit):
                out.append(re.escape(node.text))
            elif isinstance(node, _Wild):
                out.append(node.regex)
            else:
                out.append(self.group(node, _literal_follow(nodes, i, follow)))
        return "".join(out)

    def group(self, g: _Group, follow: str | None) -> str:
        name = f"g{g.number}"
        if g.kind != "!":
            # A repetition's inner follow is not really `follow` (another round may come
            # first), but only negations look at it and for them the stricter reading is fine.
            alts = "|".join(self.sequence(a, follow) for a in g.alts)
            if g.kind == "{":
                return f"(?:{alts})"
            if g.kind in "(@":
                return f"(?P<{name}>{alts})"
            quantifier = {"?": "?", "*": "*", "+": "+"}[g.kind]
            return f"(?P<{name}>(?:{alts}){quantifier})"

        if follow is None:
            # Something other than literal text follows in this segment, so the negation's
            # extent is not known here. Like ohmyglob, reject if an alternative matches at
            # the start of the rest: "!(foo)*" does not match "foobar".
            alts = "|".join(self.sequence(a, None) for a in g.alts)
            return f"(?P<{name}>(?!(?:{alts}))[^/]*)"

        # Only literal text L follows until the segment ends, so the negated text is exactly
        # "the rest of the segment minus L". Capture everything from where L starts (the
        # lookahead is deterministic: L must end at the segment end), refuse if an alternative
        # followed by exactly that tail matches, then consume up to the tail. This gives shell
        # semantics: "/!(*.*)" is "a top-level name without a dot", "*.!(js)" matches "a.js.js".
        self.tails += 1
        tail = f"_t{self.tails}"
        lit = re.escape(follow)
        alts = "|".join(self.sequence(a, follow) for a in g.alts)
        return (
            f"(?P<{name}>(?=[^/]*?(?P<{tail}>{lit}(?![^/]).*))"
            f"(?!(?:{alts})(?P={tail})\\Z)"
            f"[^/]*?(?=(?P={tail})\\Z))"
        )


def _max_slashes(nodes: tuple[_Node, ...]) -> float:
    """How many '/' a match of ``nodes`` can contain (math.inf if unbounded)."""
    total: float = 0
    for node in nodes:
        if isinstance(node, _Lit):
            total += node.text.count("/")
        elif isinstance(node, _Wild):
            if node.crosses_slash:
                return math.inf
        elif node.kind != "!":  # a negation consumes within one segment
            inner = max(_max_slashes(a) for a in node.alts)
            if node.kind in "*+" and inner > 0:
                return math.inf
            total += inner
    return total


def _normalise(pattern: str) -> str:
    """Exactly one leading '/', no (unescaped) trailing '/'."""
    body = pattern.lstrip("/")
    while body.endswith("/"):
        stem = body[:-1]
        backslashes = len(stem) - len(stem.rstrip("\\"))
        if backslashes % 2:  # "\/" is an escaped slash, keep it
            break
        body = stem
    return "/" + body


# --------------------------------------------------------------------------------------------
# Public API.

_GROUP_REF = re.compile(r"\$(?:\$|\{(\d+)\}|(\d+))")


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled glob pattern. Build with ``compile_glob`` (cached) or ``Glob(pattern)``."""

    pattern: str  # normalised: leading '/', no trailing '/'
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _group_index: tuple[int, ...] | None = field(init=False, repr=False, compare=False)
    _literal_prefix: str = field(init=False, repr=False, compare=False)
    _max_depth: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shown = self.pattern
        norm = _normalise(shown)
        nodes = _Parser(norm[1:], shown).parse()
        source = _Emitter().sequence(nodes, "")
        try:
            regex = re.compile(source, re.DOTALL)
        except re.error as err:  # should not happen for a parsed pattern; report it usefully
            raise GlobError(f"glob '{shown}': {err}") from None
        groups = sorted(
            (int(name[1:]), index)
            for name, index in regex.groupindex.items()
            if name.startswith("g")
        )
        index = tuple(i for _, i in groups)
        # Usually user groups are exactly the regex's groups 1..n; then m.groups() is the answer.
        plain = index == tuple(range(1, len(index) + 1)) and regex.groups == len(index)

        first = nodes[0] if nodes else None
        lead = "/" + (first.text if isinstance(first, _Lit) else "")  # escapes resolved
        if len(nodes) <= 1 and (first is None or isinstance(first, _Lit)):
            prefix = lead  # entirely literal: the prefix is the one path it can match
        else:
            prefix = lead[: lead.rfind("/") + 1]

        if not nodes:
            depth: int | None = 0
        else:
            slashes = _max_slashes(nodes)
            depth = None if slashes == math.inf else 1 + int(slashes)

        object.__setattr__(self, "pattern", norm)
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_group_index", None if plain else index)
        object.__setattr__(self, "_literal_prefix", prefix)
        object.__setattr__(self, "_max_depth", depth)

    def match(self, path: str) -> tuple[str, ...] | None:
        """None if ``path`` does not match, else the capture group texts in group order.

        A group that took no part in the match gives "". Directory paths may carry a trailing
        '/' and a missing leading '/' is assumed.
        """
        if len(path) > 1 and path[-1] == "/":
            path = path.rstrip("/") or "/"
        if path[:1] != "/":
            path = "/" + path
        if path == "/":
            # Root is the whole repo as one datum: only the root pattern selects it ("/*"
            # would otherwise match it through an empty "*").
            return () if self.pattern == "/" else None
        m = self._regex.fullmatch(path, 1)
        if m is None:
            return None
        values = m.groups("")
        if self._group_index is None:
            return values
        return tuple(values[i - 1] for i in self._group_index)

    def matches(self, path: str) -> bool:
        """Whether ``path`` matches."""
        return self.match(path) is not None

    @property
    def literal_prefix(self) -> str:
        """Every match starts with this: the literal lead of the pattern, cut back to a '/'.

        "/data/2024/*.csv" -> "/data/2024/", "/*" -> "/", "/a/b.txt" -> "/a/b.txt".
        Escapes are resolved, so it can be compared with paths directly.
        """
        return self._literal_prefix

    @property
    def max_depth(self) -> int | None:
        """Most path segments a match can have ("/*/*" -> 2, "/" -> 0); None if unbounded."""
        return self._max_depth

    def expand_groups(self, template: str, groups: tuple[str, ...]) -> str:
        """Fill a ``join_on`` / ``group_by`` template such as ``"$1-$2"`` from ``groups``.

        ``$N`` takes the longest run of digits that names an existing group, so with twelve
        groups "$12" is group 12 and with three it is group 1 followed by "2". ``${N}`` names
        a group exactly and ``$$`` is a literal "$". References to groups that do not exist
        are left as written, so the mistake stays visible in the output.
        """

        def substitute(m: re.Match[str]) -> str:
            braced, digits = m.group(1), m.group(2)
            if braced is None and digits is None:
                return "$"
            if braced is not None:
                k = int(braced)
                return groups[k - 1] if 1 <= k <= len(groups) else m.group(0)
            for cut in range(len(digits), 0, -1):
                k = int(digits[:cut])
                if 1 <= k <= len(groups):
                    return groups[k - 1] + digits[cut:]
            return m.group(0)

        return _GROUP_REF.sub(substitute, template)


@functools.lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> Glob:
    """Parse and compile ``pattern`` (cached). Raises GlobError on bad syntax; "" means "/"."""
    return Glob(pattern)


def glob_match(pattern: str, path: str) -> tuple[str, ...] | None:
    """``compile_glob(pattern).match(path)``."""
    return compile_glob(pattern).match(path)
