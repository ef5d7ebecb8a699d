"""The Python SDK: ``tusk.Client``, shaped like pachyderm-sdk, embedded or against a server.

``Client()`` opens the local root (``$TUSK_ROOT``) in this process; ``Client("http://host:port",
auth_token=...)`` talks to ``tusk serve``. Either way ``client.pfs`` and ``client.pps`` offer
the same calls, which take refs as pachctl text (``"images@master:/a.png"``) or as the ref
dataclasses, and return the service's dataclasses. The underlying service (``PfsService`` or
its HTTP proxy) is ``client.pfs.service`` for anything the convenience layer does not cover.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Self

from tusk.errors import InvalidArgument
from tusk.pfs.model import BranchInfo, CommitInfo, CommitSetInfo, FileInfo, RepoInfo
from tusk.pfs.names import is_commit_id
from tusk.pfs.refs import CommitRef, FileRef, RepoRef, parse_commit, parse_file, parse_repo
from tusk.pps.model import DatumInfo, JobInfo, PipelineInfo

Source = bytes | str | os.PathLike | BinaryIO


def _repo(ref: str | RepoRef, project: str | None) -> RepoRef:
    return ref if isinstance(ref, RepoRef) else parse_repo(ref, project)


def _commit(ref: str | CommitRef, project: str | None) -> CommitRef:
    return ref if isinstance(ref, CommitRef) else parse_commit(ref, project, default_branch="master")


def _file(ref: str | FileRef, project: str | None) -> FileRef:
    return ref if isinstance(ref, FileRef) else parse_file(ref, project)


def _put(session: Any, path: str, source: Source, append: bool) -> None:
    """Put bytes, a local file (str or path) or a readable binary file object."""
    if isinstance(source, bytes):
        session.put_stream(path, io.BytesIO(source), append)
    elif isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise InvalidArgument(f"{os.fspath(source)}: no such file (pass bytes to put data)")
        session.put_path(path, Path(source), append)
    elif hasattr(source, "read"):
        session.put_stream(path, source, append)
    else:
        raise InvalidArgument(f"put_file takes bytes, a path or a binary file, not {type(source).__name__}")


class OpenCommit:
    """An open commit in ``with client.pfs.commit(...) as c``: write files, then it finishes."""

    def __init__(self, pfs: Pfs, info: CommitInfo) -> None:
        self.pfs = pfs
        self.info = info
        self.ref = CommitRef(RepoRef(info.project, info.repo), info.branch, info.id)

    @property
    def id(self) -> str:
        return self.info.id

    def put_file(self, path: str, source: Source, append: bool = False) -> None:
        with self.pfs.service.modify(self.ref) as s:
            _put(s, path, source, append)

    def delete_file(self, path: str, recursive: bool = False) -> None:
        with self.pfs.service.modify(self.ref) as s:
            s.delete(path, recursive)

    def copy_file(self, src: str | FileRef, dest: str, append: bool = False) -> None:
        with self.pfs.service.modify(self.ref) as s:
            s.copy(_file(src, self.info.project), dest, append)

    def wait(self, timeout: float | None = None) -> CommitInfo:
        """Wait until this commit is finished (after the ``with`` block, its set downstream)."""
        return self.pfs.service.inspect_commit(self.ref, wait=True, timeout=timeout)


class Pfs:
    """Repos, branches, commits and files."""

    def __init__(self, service: Any, kick: Any) -> None:
        self.service = service
        self._kick = kick

    # -- repos ---------------------------------------------------------------------------------

    def create_repo(self, repo: str | RepoRef, description: str = "", project: str | None = None) -> RepoInfo:
        return self.service.create_repo(_repo(repo, project), description)

    def inspect_repo(self, repo: str | RepoRef, project: str | None = None) -> RepoInfo:
        return self.service.inspect_repo(_repo(repo, project))

    def list_repo(self, project: str | None = "default") -> list[RepoInfo]:
        return self.service.list_repos(project)

    def delete_repo(self, repo: str | RepoRef, force: bool = False, project: str | None = None) -> None:
        self.service.delete_repo(_repo(repo, project), force)

    def list_branch(self, repo: str | RepoRef, project: str | None = None) -> list[BranchInfo]:
        return self.service.list_branches(_repo(repo, project))

    # -- commits -------------------------------------------------------------------------------

    def start_commit(self, branch: str | CommitRef, description: str = "",
                     project: str | None = None) -> CommitInfo:
        ref = _commit(branch, project)
        return self.service.start_commit(ref.repo, ref.branch or "master", None, description)

    def finish_commit(self, commit: str | CommitRef, description: str | None = None,
                      project: str | None = None) -> CommitInfo:
        info = self.service.finish_commit(_commit(commit, project), description)
        self._kick()
        return info

    @contextmanager
    def commit(self, branch: str | CommitRef, description: str = "",
               project: str | None = None) -> Iterator[OpenCommit]:
        """Start a commit, yield it for writes, finish it (with the error, if the block raised)."""
        c = OpenCommit(self, self.start_commit(branch, description, project))
        try:
            yield c
        except BaseException as e:
            self.service.finish_commit(c.ref, None, error=f"{type(e).__name__}: {e}"[:200] or "failed")
            raise
        c.info = self.service.finish_commit(c.ref)
        self._kick()

    def inspect_commit(self, commit: str | CommitRef, wait: bool = False, project: str | None = None) -> CommitInfo:
        return self.service.inspect_commit(_commit(commit, project), wait=wait)

    def list_commit(self, ref: str | CommitRef | RepoRef, number: int = 0,
                    project: str | None = None) -> list[CommitInfo]:
        target = ref
        if isinstance(ref, str):
            target = parse_commit(ref, project) if "@" in ref else parse_repo(ref, project)
        return self.service.list_commits(target, number)

    def wait_commit(self, commit: str | CommitRef, timeout: float | None = None,
                    project: str | None = None) -> list[CommitInfo]:
        """Wait for a commit (``repo@ref``) or a whole commit set (a bare ID, the DAG downstream)."""
        self._kick()
        if isinstance(commit, str) and "@" not in commit and is_commit_id(commit):
            cs: CommitSetInfo = self.service.inspect_commit_set(commit, wait=True, timeout=timeout)
            return list(cs.commits)
        return [self.service.inspect_commit(_commit(commit, project), wait=True, timeout=timeout)]

    # -- files ---------------------------------------------------------------------------------

    def put_file(self, ref: str | FileRef, source: Source, append: bool = False,
                 description: str = "", project: str | None = None) -> CommitInfo | None:
        """Write one file (bytes, a local path or a binary file object) as one commit on a
        branch, or into an open commit; returns the commit."""
        fref = _file(ref, project)
        if fref.path == "/":
            raise InvalidArgument(f"{ref}: name the file to write (repo@branch:/path)")
        commit = fref.commit
        if commit.branch is None and commit.commit_id is None:
            commit = CommitRef(commit.repo, "master")
        with self.service.modify(commit, description) as s:
            _put(s, fref.path, source, append)
        self._kick()
        return s.commit

    def get_file(self, ref: str | FileRef, offset: int = 0, project: str | None = None) -> bytes:
        """A file's bytes (use ``read_file`` to stream a large one)."""
        return b"".join(self.read_file(ref, offset, project))

    def read_file(self, ref: str | FileRef, offset: int = 0, project: str | None = None) -> Iterator[bytes]:
        return self.service.read_file(_file(ref, project), offset)

    def inspect_file(self, ref: str | FileRef, project: str | None = None) -> FileInfo:
        return self.service.inspect_file(_file(ref, project))

    def list_file(self, ref: str | FileRef, project: str | None = None) -> list[FileInfo]:
        return self.service.list_file(_file(ref, project))

    def walk_file(self, ref: str | FileRef, project: str | None = None) -> Iterator[FileInfo]:
        return self.service.walk_file(_file(ref, project))

    def glob_file(self, commit: str | CommitRef, pattern: str, project: str | None = None) -> list[FileInfo]:
        return self.service.glob_file(_commit(commit, project), pattern)

    def delete_file(self, ref: str | FileRef, recursive: bool = False, project: str | None = None) -> None:
        fref = _file(ref, project)
        with self.service.modify(fref.commit) as s:
            s.delete(fref.path, recursive)
        self._kick()


class Pps:
    """Pipelines, jobs, datums and logs."""

    def __init__(self, service: Any, kick: Any) -> None:
        self.service = service
        self._kick = kick

    def create_pipeline(self, spec: dict[str, Any], update: bool = False, reprocess: bool = False,
                        project: str | None = None) -> PipelineInfo:
        """Create (or update) a pipeline from a Pachyderm spec (a dict, as in a spec file)."""
        from tusk.pps.spec import parse_spec

        info = self.service.create_pipeline(parse_spec(spec, "<spec>", project or "default"),
                                            update=update, reprocess=reprocess)
        self._kick()
        return info

    def inspect_pipeline(self, name: str, project: str = "default") -> PipelineInfo:
        return self.service.inspect_pipeline(name, project)

    def list_pipeline(self, project: str | None = "default") -> list[PipelineInfo]:
        return self.service.list_pipelines(project)

    def delete_pipeline(self, name: str, project: str = "default", keep_repo: bool = False,
                        force: bool = False) -> None:
        self.service.delete_pipeline(name, project, keep_repo, force)

    def list_job(self, pipeline: str | None = None, job_id: str | None = None,
                 project: str = "default", number: int = 0) -> list[JobInfo]:
        return self.service.list_jobs(pipeline, job_id, project, number)

    def inspect_job(self, pipeline: str, job_id: str, wait: bool = False, timeout: float | None = None,
                    project: str = "default") -> JobInfo:
        if wait:
            self._kick()
        return self.service.inspect_job(pipeline, job_id, project, wait=wait, timeout=timeout)

    def list_datum(self, pipeline: str, job_id: str | None = None, project: str = "default") -> list[DatumInfo]:
        return self.service.list_datums(pipeline, job_id, project)

    def get_logs(self, pipeline: str, job_id: str | None = None, datum: str | None = None,
                 project: str = "default", follow: bool = False) -> Iterator[Any]:
        return self.service.logs(pipeline, job_id, datum, project, (), follow)


class Client:
    """``Client()``: the local root, in process. ``Client(address, auth_token=...)``: a server.

    ``address`` defaults to ``$TUSK_ADDRESS`` when set; ``auth_token`` to ``$TUSK_AUTH_TOKEN``.
    """

    def __init__(self, address: str | None = None, auth_token: str | None = None,
                 root: str | os.PathLike | None = None) -> None:
        if address is None and root is None:
            address = os.environ.get("TUSK_ADDRESS") or None
        if address is not None:
            from tusk.api.remote import Connection, RemotePfs, RemotePps

            token = auth_token if auth_token is not None else os.environ.get("TUSK_AUTH_TOKEN")
            pfs_svc: Any = RemotePfs(Connection(address, token))
            pps_svc: Any = RemotePps(pfs_svc)
            kick = _nothing
        else:
            from tusk.pfs.service import PfsService
            from tusk.pps.service import PpsService

            pfs_svc = PfsService.open(Path(root) if root is not None else None)
            pps_svc = PpsService(pfs_svc)
            kick = _Kicker(pfs_svc)
            pfs_svc.wait_hook = kick
        self.address = address
        self.pfs = Pfs(pfs_svc, kick)
        self.pps = Pps(pps_svc, kick)

    @property
    def remote(self) -> bool:
        return self.address is not None

    def close(self) -> None:
        self.pfs.service.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _nothing() -> None:
    """Against a server, its own controller does the work."""


class _Kicker:
    """Embedded mode: make sure a background controller runs when pipelines have work."""

    def __init__(self, pfs: Any) -> None:
        self.pfs = pfs
        self.last = 0.0

    def __call__(self) -> None:
        if time.monotonic() - self.last < 3.0:
            return
        self.last = time.monotonic()
        from tusk.pps.launch import ensure_running_if_needed

        ensure_running_if_needed(self.pfs)
