"""Names and paths: what a project, repo or branch may be called and what a file path may be.

Validation happens here, at the edge, so nothing below ever sees a name or path that could
escape the store or be confused with ref syntax. Every failure is an ``InvalidArgument`` whose
message names the bad value and the rule.

File paths follow Pachyderm's rules (no glob characters, no '.' or '..' parts), with two
differences. Pachyderm allows only printable ASCII; tusk allows any printable Unicode, kept
exactly as given: NFC and NFD spellings of "é" are two different files, as on Linux file systems
(docs/storage.md). And tusk bounds lengths, which Pachyderm does not: every job materialises its
input files on the local file system, which refuses a name component over 255 bytes (NAME_MAX)
and a path over 4096 (PATH_MAX). Refused at the edge, such a name is one clear error at
``put file``; accepted, it failed every job that read it.
"""

from __future__ import annotations

import re

from tusk.errors import InvalidArgument

_REPO_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_BRANCH_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_COMMIT_ID_RE = re.compile(r"^[0-9a-f]{32}$")

MAX_REPO = 63
MAX_PROJECT = 51
MAX_BRANCH = 63
# Characters Pachyderm reserves for glob syntax (and '^'/'@' for refs); refused in file paths.
GLOB_CHARS = set("*?[]{}!()@+^")

DEFAULT_PROJECT = "default"

# Bytes of UTF-8, as the file system counts them (see the module docstring).
MAX_COMPONENT_BYTES = 255
# PATH_MAX (4096) less room for the datum directory a job puts the file under.
MAX_PATH_BYTES = 3584


def check_repo_name(name: str) -> str:
    if not name:
        raise InvalidArgument("repo name is empty; use letters, digits, '_' and '-'")
    if len(name) > MAX_REPO:
        raise InvalidArgument(f"repo name {name!r} is longer than {MAX_REPO} characters")
    if not _REPO_RE.fullmatch(name):
        raise InvalidArgument(
            f"repo name {name!r} is invalid: use only letters, digits, '_' and '-'"
        )
    return name


def check_project_name(name: str) -> str:
    if not name:
        raise InvalidArgument("project name is empty")
    if len(name) > MAX_PROJECT:
        raise InvalidArgument(f"project name {name!r} is longer than {MAX_PROJECT} characters")
    if not _PROJECT_RE.fullmatch(name):
        raise InvalidArgument(
            f"project name {name!r} is invalid: start with a letter or digit, then use only"
            " letters, digits, '_' and '-'"
        )
    return name


def check_branch_name(name: str) -> str:
    if not name:
        raise InvalidArgument("branch name is empty")
    if len(name) > MAX_BRANCH:
        raise InvalidArgument(f"branch name {name!r} is longer than {MAX_BRANCH} characters")
    if not _BRANCH_RE.fullmatch(name):
        raise InvalidArgument(
            f"branch name {name!r} is invalid: use only letters, digits, '_' and '-'"
        )
    if is_commit_id(name):
        raise InvalidArgument(f"branch name {name!r} looks like a commit ID; choose another name")
    return name


def is_commit_id(text: str) -> bool:
    return bool(_COMMIT_ID_RE.fullmatch(text))


def normalize_path(path: str, *, allow_root: bool = True) -> str:
    """The canonical form of a file path: leading '/', no empty, '.' or '..' parts.

    Returns "/" for the root. Raises ``InvalidArgument`` naming the problem.
    """
    if path is None:
        path = "/"
    if not path.isprintable():
        raise InvalidArgument(f"path {path!r} contains unprintable characters")
    bad = sorted(set(path) & GLOB_CHARS)
    if bad:
        raise InvalidArgument(
            f"path {path!r} contains {''.join(bad)!r}: glob characters are not allowed in file"
            " paths (use 'tusk glob file' to match patterns)"
        )
    parts = [p for p in path.split("/") if p]
    for p in parts:
        if p in (".", ".."):
            raise InvalidArgument(f"path {path!r} contains '{p}': use absolute paths without it")
    # Only a long path can break a byte limit (a character is at most 4 bytes of UTF-8).
    if len(path) * 4 > MAX_COMPONENT_BYTES:
        for p in parts:
            check_component_bytes(p)
        if len(path) * 4 > MAX_PATH_BYTES and len(path.encode()) > MAX_PATH_BYTES:
            raise InvalidArgument(
                f"path {path[:60]!r}... is {len(path.encode())} bytes long; a path may have at"
                f" most {MAX_PATH_BYTES} bytes (UTF-8)"
            )
    if not parts:
        if not allow_root:
            raise InvalidArgument("path is empty; name a file, e.g. /data/file.csv")
        return "/"
    return "/" + "/".join(parts)


def check_component_bytes(name: str) -> None:
    """Refuse a path component the local file system could not hold (see the module docstring)."""
    if len(name) * 4 > MAX_COMPONENT_BYTES and len(name.encode()) > MAX_COMPONENT_BYTES:
        raise InvalidArgument(
            f"file name {name[:40]!r}... is {len(name.encode())} bytes long; a name between"
            f" slashes may have at most {MAX_COMPONENT_BYTES} bytes (UTF-8)"
        )


def parent_dirs(path: str) -> list[str]:
    """Directories containing ``path``, outermost first, excluding the root: /a/b/c -> /a, /a/b."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def dir_prefix(path: str) -> str:
    """The key prefix of everything inside directory ``path`` ("/" -> "/", "/a" -> "/a/")."""
    return "/" if path == "/" else path + "/"
