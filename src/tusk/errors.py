"""The error tree of tusk.

Every failure a user can cause is one of these classes. Each carries a one-line message that
names what is wrong and, where we can tell, how to fix it. Surfaces map the classes to their own
vocabulary in one place each: the CLI to exit codes (``EXIT_CODES``), the HTTP API to statuses.
Anything that is *not* a ``TuskError`` is a bug: the CLI's last-resort guard prints it as one
line with a hint to report it (``INTERNAL_ERROR_EXIT``), and its traceback under ``TUSK_DEBUG=1``.

Messages name user-supplied values (paths, refs, spec fields), so a hostile name could smuggle
terminal escapes, NUL or line breaks into a terminal, a log or an HTTP error body. ``TuskError``
escapes them once, here, for every surface: ``printable`` is the one rule.
"""

from __future__ import annotations

import re

# Every character that is not printable (str.isprintable: controls, line and paragraph
# separators, format characters such as bidi overrides, unassigned code points), but not space.
_UNPRINTABLE = re.compile(r"[^\ -~]")


def printable(text: str) -> str:
    """``text`` with each unprintable character written as its escape (``\\x1b``, ``\\u2028``).

    A backslash is kept as is, so escaping twice changes nothing: an error that travels from a
    server to a client and is raised again reads the same.
    """
    if text.isprintable():
        return text
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char.isprintable():
        return char  # non-ASCII but printable (é, 日本): kept
    return repr(char)[1:-1]  # '\x00', '\n', '\u2028', ...


# A message quoting a megabyte-long value is cut in the middle: its start says what is wrong,
# its end usually how to fix it.
MAX_MESSAGE = 1000


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    return f"{text[:head]} ... {text[len(text) - (limit - head - 5):]}"


class TuskError(Exception):
    """Base class: a user-facing error with a one-line message (escaped by ``printable``, cut
    to ``MAX_MESSAGE`` characters)."""

    def __init__(self, message: str) -> None:
        message = shorten(printable(message))
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(TuskError):
    """A named thing (project, repo, branch, commit, file, ...) does not exist."""


class AlreadyExists(TuskError):
    """Creating something whose name is taken."""


class InvalidArgument(TuskError):
    """Malformed input: a bad name, path, ref, flag combination or spec."""


class FailedPrecondition(TuskError):
    """The request is well formed but the current state forbids it (e.g. commit finished)."""


class Conflict(TuskError):
    """A concurrent change won a race (compare-and-set on a ref failed); retrying may work."""


class Busy(TuskError):
    """Another process holds a lock we need (e.g. garbage collection is running)."""


# One place for the CLI's exit codes. 1 is the generic failure pachctl uses for everything;
# the finer codes let scripts tell "missing" from "malformed" without parsing text.
EXIT_CODES: dict[type[TuskError], int] = {
    TuskError: 1,
    NotFound: 3,
    AlreadyExists: 4,
    InvalidArgument: 2,
    FailedPrecondition: 5,
    Conflict: 6,
    Busy: 7,
}
# A bug (anything but a TuskError) reaching the CLI's last-resort guard: EX_SOFTWARE of sysexits.
INTERNAL_ERROR_EXIT = 70


def exit_code(err: TuskError) -> int:
    """The CLI exit code for an error, by its most specific class."""
    for cls in type(err).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


# One place for the HTTP API's statuses (``tusk.api``). A client turns the status's error body
# back into the same class, so a remote command fails with the same line and exit code.
HTTP_STATUS: dict[type[TuskError], int] = {
    TuskError: 400,
    NotFound: 404,
    AlreadyExists: 409,
    InvalidArgument: 400,
    FailedPrecondition: 412,
    Conflict: 409,
    # 423 Locked, not 503: the server is well; the data lock is held by another writer, and the
    # answer (a 4xx, with Retry-After) tells the client to ask again, not that tusk is down.
    Busy: 423,
}


def http_class(err: TuskError) -> type[TuskError]:
    """The most specific class of ``err`` that has an HTTP status (and a name clients know)."""
    for cls in type(err).__mro__:
        if cls in HTTP_STATUS:
            return cls  # type: ignore[return-value]
    return TuskError


def http_status(err: TuskError) -> int:
    """The HTTP status for an error, by its most specific class."""
    return HTTP_STATUS[http_class(err)]
