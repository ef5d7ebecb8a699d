"""Parsing pachctl-style references: ``project/repo@branch^2:/path`` and friends.

Grammar (as pachctl):
  repo ref     ``[project/]repo``
  commit ref   ``repo@branch``, ``repo@<32-hex id>``, ``repo@branch=<id>``,
               ancestry suffixes ``^`` (parent), ``^N`` / ``~N`` (N-th ancestor), ``.N``
               (N-th commit from the start of the branch)
  file ref     ``<commit ref>:/path``
Pure functions; the catalog resolves a parsed ref against the metadata store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tusk.errors import InvalidArgument
from tusk.pfs.names import (
    DEFAULT_PROJECT,
    check_branch_name,
    check_project_name,
    check_repo_name,
    is_commit_id,
    normalize_path,
)

_ANCESTRY_RE = re.compile(r"^(?P<base>[^\^~.]+)(?P<suffix>(?:\^\d*|~\d*)*)(?:\.(?P<index>\d+))?$")


@dataclass(frozen=True)
class RepoRef:
    project: str
    repo: str

    def __str__(self) -> str:
        return self.repo if self.project == DEFAULT_PROJECT else f"{self.project}/{self.repo}"


@dataclass(frozen=True)
class CommitRef:
    repo: RepoRef
    branch: str | None = None
    commit_id: str | None = None
    ancestors: int = 0  # how many parents to walk back
    index: int | None = None  # ``branch.N``: N-th commit from the start of the branch

    def __str__(self) -> str:
        text = f"{self.repo}@"
        if self.branch and self.commit_id:
            text += f"{self.branch}={self.commit_id}"
        else:
            text += self.branch or self.commit_id or ""
        if self.ancestors:
            text += f"^{self.ancestors}"
        if self.index is not None:
            text += f".{self.index}"
        return text


@dataclass(frozen=True)
class FileRef:
    commit: CommitRef
    path: str


def parse_repo(text: str, project: str | None = None) -> RepoRef:
    if "@" in text or ":" in text:
        raise InvalidArgument(f"{text!r} is not a repo name (drop the '@...' part)")
    proj = project or DEFAULT_PROJECT
    if "/" in text:
        proj, _, text = text.partition("/")
    return RepoRef(check_project_name(proj), check_repo_name(text))


def parse_commit(text: str, project: str | None = None, *, default_branch: str | None = None) -> CommitRef:
    """``repo@ref``; without ``@`` uses ``default_branch`` or fails."""
    repo_text, at, ref = text.partition("@")
    repo = parse_repo(repo_text, project)
    if not at:
        if default_branch is None:
            raise InvalidArgument(f"{text!r} names no branch or commit: write {text}@master")
        ref = default_branch
    if not ref:
        raise InvalidArgument(f"{text!r} has an empty ref after '@': write {repo_text}@master")
    branch: str | None = None
    commit_id: str | None = None
    if "=" in ref:
        branch, _, ref = ref.partition("=")
        check_branch_name(branch)
    m = _ANCESTRY_RE.match(ref)
    if not m:
        raise InvalidArgument(
            f"bad ref {ref!r} in {text!r}: use a branch, a 32-hex commit ID, 'branch^N' or 'branch.N'"
        )
    base = m.group("base")
    ancestors = 0
    for part in re.findall(r"[\^~]\d*", m.group("suffix") or ""):
        ancestors += int(part[1:]) if len(part) > 1 else 1
    index = int(m.group("index")) if m.group("index") is not None else None
    if is_commit_id(base):
        commit_id = base
    elif branch is None:
        branch = check_branch_name(base)
    else:
        raise InvalidArgument(f"bad ref {text!r}: after 'branch=' comes a 32-hex commit ID")
    return CommitRef(repo, branch, commit_id, ancestors, index)


def parse_file(
    text: str, project: str | None = None, *, require_path: bool = False, default_path: str = "/"
) -> FileRef:
    """``repo@ref:/path``."""
    if "@" not in text:
        raise InvalidArgument(f"{text!r} is not a file ref: write repo@branch:/path")
    commit_text, colon, path = text.partition(":")
    if not colon or not path:
        if require_path:
            raise InvalidArgument(f"{text!r} names no file: write {commit_text}:/path")
        path = default_path
    return FileRef(parse_commit(commit_text, project), normalize_path(path))
