"""Egress: after a job's output commit is sealed, copy every file of it to an outside place.

A pipeline spec's ``egress`` names the place, as Pachyderm's does:

* ``{"URL": "file:///abs/dir"}`` - a local directory; ``/a/b.txt`` lands at ``/abs/dir/a/b.txt``.
* ``{"URL": "s3://bucket/prefix"}`` - S3 or any S3-compatible store; ``/a/b.txt`` becomes the
  object ``prefix/a/b.txt``. The endpoint and credentials come from the environment as for any
  AWS tool (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, profiles, ...), read by boto3.
* ``{"object_storage": {"url": ...}}`` - Pachyderm 2.x's newer spelling of the same thing.
* ``{"sql_database": ...}`` is refused when the pipeline is created: tusk has no SQL egress.

The job life cycle (see ``JobRunner.run``): the output commit is sealed with the job's output and
the job goes to EGRESSING in the same transaction; the copy runs; the job then becomes SUCCESS, or
FAILURE with "egress to <url> failed: <why>". A failed egress keeps the output commit as it is
(finished, no error), as Pachyderm does: the data was produced correctly, only the copy failed,
so downstream pipelines still run on it.

Egress is idempotent: it overwrites whatever the target holds at the same paths and never
deletes anything there (a file a later job no longer outputs stays at the target, as in
Pachyderm). So a controller that dies mid-copy leaves the job EGRESSING and the next controller
simply copies everything again (``resume``).

File bytes are streamed chunk by chunk from the content store: local files get kernel copies,
S3 objects at or above ``MULTIPART_THRESHOLD`` go up as multipart uploads whose parts are read
as they are sent, so no large file is ever held in memory whole (a smaller one is one PUT body).
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from tusk.pfs import trees
from tusk.pps.spec_errors import FieldError
from tusk.storage import schema as s

if TYPE_CHECKING:
    from sqlalchemy import Row

    from tusk.pfs.service import PfsService
    from tusk.storage.content import ContentReader

SCHEMES = ("file", "s3")
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
S3_CONCURRENCY = 8
IN_MEMORY_PARTS = 4
# Uploads submitted but not finished at once: bounds memory (each may buffer one part).
S3_WINDOW = 32
# How often (seconds) a long copy looks whether the job was stopped or deleted meanwhile.
CANCEL_CHECK = 0.5


class EgressError(Exception):
    """Why an egress failed, in one line (the job's reason wraps it with the URL)."""


@dataclass(frozen=True)
class Target:
    url: str  # as the spec wrote it, for messages
    scheme: str  # "file" | "s3"
    location: str  # file: absolute directory; s3: bucket
    prefix: str = ""  # s3 only: key prefix without leading or trailing "/"

    def key(self, path: str) -> str:
        """The object key of the commit file ``path`` ("/a/b.txt")."""
        rel = path.lstrip("/")
        return f"{self.prefix}/{rel}" if self.prefix else rel


# -- the spec -----------------------------------------------------------------------------------


def target_of(egress: Mapping[str, Any]) -> Target:
    """The egress target of a (normalised) spec ``egress`` block; FieldError if unusable."""
    given = [k for k in ("URL", "object_storage", "sql_database") if k in egress]
    if "sql_database" in given:
        raise FieldError("egress.sql_database", "SQL egress is not supported by tusk; egress to a"
                         " file:// directory or an s3:// bucket with egress.URL instead")
    if len(given) > 1:
        raise FieldError("egress", "set only one of URL and object_storage")
    if not given:
        raise FieldError("egress", 'needs a URL (e.g. {"URL": "s3://bucket/dir"})')
    if given[0] == "URL":
        return parse_url(egress["URL"], "egress.URL")
    url = egress["object_storage"].get("url", "")
    if not url:
        raise FieldError("egress.object_storage.url", 'required (e.g. "s3://bucket/dir")')
    return parse_url(url, "egress.object_storage.url")


def parse_url(url: str, where: str = "egress.URL") -> Target:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        what = f'scheme "{parts.scheme}" is not supported' if parts.scheme else "has no scheme"
        raise FieldError(where, f'"{url}": {what}; tusk egresses to file:///dir'
                         " or s3://bucket/prefix")
    if parts.query or parts.fragment:
        # Pachyderm's Go CDK URLs may carry ?endpoint=&region=; here the environment does that.
        raise FieldError(where, f'"{url}": query parameters are not supported; set AWS_ENDPOINT_URL'
                         " and AWS_DEFAULT_REGION in the environment instead")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise FieldError(where, f'"{url}" must be an absolute path:'
                             " file:///dir (three slashes)")
        path = urllib.parse.unquote(parts.path)
        if not path.startswith("/"):
            raise FieldError(where, f'"{url}" must be an absolute path: file:///dir')
        return Target(url, "file", os.path.normpath(path))
    if not parts.netloc:
        raise FieldError(where, f'"{url}" names no bucket; write s3://bucket/prefix')
    return Target(url, "s3", parts.netloc, urllib.parse.unquote(parts.path).strip("/"))


# -- copying --------------------------------------------------------------------------------------


def copy_tree(target: Target, files: Iterable[trees.Entry], reader: ContentReader,
              cancelled: Callable[[], bool] = lambda: False) -> int:
    """Copy every file to ``target``; returns how many. Raises EgressError with the cause."""
    if target.scheme == "file":
        return _to_dir(Path(target.location), files, reader, cancelled)
    return _to_s3(target, files, reader, cancelled)


def _to_dir(root: Path, files: Iterable[trees.Entry], reader: ContentReader,
            cancelled: Callable[[], bool]) -> int:
    n = 0
    try:
        root.mkdir(parents=True, exist_ok=True)
        for e in files:
            if cancelled():
                raise EgressError("the job was stopped")
            dest = root / e.path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the destination, then rename: a reader of the directory never sees
            # a half-written file, and a rerun after a crash just replaces it.
            tmp = dest.parent / f".{dest.name}.tusk-egress-{uuid.uuid4().hex[:8]}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    reader.copy_to_fd(e.chunks, fd)
                finally:
                    os.close(fd)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            n += 1
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        raise EgressError(f"{(err.strerror or str(err)).lower()}{where}") from None
    return n


class _Stream:
    """A committed file as a forward-only stream; ``read(n)`` returns n bytes unless at the end
    (multipart parts must be full-sized), fetching chunks from the store only as needed."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        out: list[bytes] = []
        want = size if size is not None and size >= 0 else None
        got = 0
        while want is None or got < want:
            if not self._buf:
                nxt = next(self._pieces, None)
                if nxt is None:
                    break
                self._buf = memoryview(nxt)
                continue
            take = len(self._buf) if want is None else min(len(self._buf), want - got)
            out.append(bytes(self._buf[:take]))
            self._buf = self._buf[take:]
            got += take
        return b"".join(out)


def s3_client() -> Any:
    """A boto3 S3 client configured from the environment (endpoint, credentials, region)."""
    import boto3  # imported here: only pipelines with S3 egress pay for it
    from botocore.config import Config

    cfg = Config(connect_timeout=10, read_timeout=120,
                 retries={"max_attempts": 3, "mode": "standard"})
    # botocore reads AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL by itself; passing it explicitly as
    # well keeps older setups working where a config file disables that.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=cfg)


def _to_s3(target: Target, files: Iterable[trees.Entry], reader: ContentReader,
           cancelled: Callable[[], bool]) -> int:
    from s3transfer.manager import TransferConfig, TransferManager
    from s3transfer.subscribers import BaseSubscriber

    class _Size(BaseSubscriber):  # the size is known: s3transfer need not read ahead to learn it
        def __init__(self, size: int) -> None:
            self.size = size

        def on_queued(self, future: Any, **kwargs: Any) -> None:
            future.meta.provide_transfer_size(self.size)

    bucket = target.location
    n = 0
    try:
        client = s3_client()
        # At most IN_MEMORY_PARTS parts are buffered at once, whatever the file sizes.
        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD,
                                multipart_chunksize=PART_SIZE,
                                max_request_concurrency=S3_CONCURRENCY,
                                max_in_memory_upload_chunks=IN_MEMORY_PARTS)
        manager = TransferManager(client, config)
    except Exception as err:  # noqa: BLE001 - a bad environment (region, endpoint URL) is the cause
        raise EgressError(_s3_reason(err, bucket, "")) from None
    pending: deque[tuple[str, Any]] = deque()
    ok = False
    try:
        for e in files:
            if cancelled():
                raise EgressError("the job was stopped")
            key = target.key(e.path)
            fut = manager.upload(_Stream(reader.iter_bytes(e.chunks)), bucket, key,
                                 subscribers=[_Size(e.size)])
            pending.append((key, fut))
            while len(pending) >= S3_WINDOW:
                n += _settle(pending.popleft(), bucket)
        while pending:
            n += _settle(pending.popleft(), bucket)
        ok = True
    finally:
        # On failure, drop the queued uploads rather than waiting for every one to fail too.
        manager.shutdown(cancel=not ok)
    return n


def _settle(item: tuple[str, Any], bucket: str) -> int:
    key, fut = item
    try:
        fut.result()
    except EgressError:
        raise
    except Exception as err:  # noqa: BLE001 - every cause becomes the job's reason
        raise EgressError(_s3_reason(err, bucket, key)) from None
    return 1


def _s3_reason(err: BaseException, bucket: str, key: str) -> str:
    """One line saying why an S3 call failed, without botocore's noise."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(err, ClientError):
        info = err.response.get("Error", {})
        code = str(info.get("Code", ""))
        msg = str(info.get("Message", "")) or str(err)
        if code == "NoSuchBucket" or (code == "404" and not key):
            return f'bucket "{bucket}" does not exist'
        if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId",
                    "SignatureDoesNotMatch"):
            obj = f"s3://{bucket}/{key}" if key else f"bucket {bucket}"
            return f"access denied writing {obj} ({code}: {msg})"
        return f"{code or type(err).__name__}: {msg}"
    if isinstance(err, NoCredentialsError):
        return "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if isinstance(err, NoRegionError):
        return "no AWS region configured (set AWS_DEFAULT_REGION)"
    text = " ".join(str(err).split()) or type(err).__name__
    return text


# -- the job ------------------------------------------------------------------------------------


def _egress_spec(conn: Any, job: Row) -> dict[str, Any] | None:
    """The egress block of the pipeline version the job ran (a later update may have changed
    or removed it); falls back to the current spec when the version is not recorded."""
    pv = s.pipeline_versions
    text = conn.execute(select(pv.c.spec).where(
        pv.c.pipeline_id == job.pipeline_id, pv.c.version == job.version)).scalar()
    if text is None:
        text = conn.execute(select(s.pipelines.c.spec).where(
            s.pipelines.c.id == job.pipeline_id)).scalar()
    if text is None:
        return None
    return json.loads(text).get("egress") or None


def run_job_egress(pfs: PfsService, job: Row,
                   say: Callable[[str], None] = lambda m: None) -> tuple[str, str]:
    """Copy the sealed output commit of an EGRESSING job, then finish the job: SUCCESS, or
    FAILURE with the reason. Returns (state, reason); if the job was stopped or deleted
    meanwhile, its state then (or KILLED) and the reason is left alone."""
    b = pfs.b
    with b.db.read() as conn:
        spec_egress = _egress_spec(conn, job)
        tree = pfs.view(conn, pfs.commit_by_pk(conn, job.commit_pk))
    url = "(none)"
    reason = ""
    try:
        if spec_egress is None:
            raise EgressError("the pipeline no longer has an egress block")
        target = target_of(spec_egress)
        url = target.url
        say(f"job {job.job_id}: egress of {tree.count} file(s) to {url}")
        last = [time.monotonic()]

        def cancelled() -> bool:
            if time.monotonic() - last[0] < CANCEL_CHECK:
                return False
            last[0] = time.monotonic()
            with b.db.read() as conn:
                state = conn.execute(select(s.jobs.c.state).where(s.jobs.c.id == job.id)).scalar()
            return state != "EGRESSING"

        copy_tree(target, tree, b.reader(), cancelled)
    except FieldError as err:  # the stored spec no longer validates (should not happen)
        reason = f"egress to {url} failed: {err.problem}"
    except EgressError as err:
        reason = f"egress to {url} failed: {err}"
    except Exception as err:  # noqa: BLE001 - left EGRESSING, the job would be retried forever
        reason = f"egress to {url} failed: {type(err).__name__}: {' '.join(str(err).split())}"
    state = "FAILURE" if reason else "SUCCESS"
    with b.db.tx() as conn:
        # Only an EGRESSING job is finished here: one stopped or deleted meanwhile stays so.
        done = conn.execute(
            update(s.jobs).where(s.jobs.c.id == job.id, s.jobs.c.state == "EGRESSING")
            .values(state=state, reason=reason, finished_at=time.time())).rowcount
        if not done:
            now = conn.execute(
                select(s.jobs.c.state, s.jobs.c.reason).where(s.jobs.c.id == job.id)).first()
            return (now.state, now.reason) if now is not None else ("KILLED", "job was deleted")
    return state, reason
