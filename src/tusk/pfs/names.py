"""Names and paths: what a project, repo or branch may be called and what a file path may be.

Validation happens here, at the edge, so nothing below ever sees a name or path that could
escape the store or be confused with ref syntax. Every failure is an ``InvalidArgument`` whose
message names the bad value and the rule.
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
    if not parts:
        if not allow_root:
            raise InvalidArgument("path is empty; name a file, e.g. /data/file.csv")
        return "/"
    return "/" + "/".join(parts)


def parent_dirs(path: str) -> list[str]:
    """Directories containing ``path``, outermost first, excluding the root: /a/b/c -> /a, /a/b."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def dir_prefix(path: str) -> str:
    """The key prefix of everything inside directory ``path`` ("/" -> "/", "/a" -> "/a/")."""
    return "/" if path == "/" else path + "/"
