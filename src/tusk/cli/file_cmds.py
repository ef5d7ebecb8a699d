"""Commands for files: put, get, inspect, list, glob, diff, copy, delete."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from tusk.cli.common import count, pfs, project_option
from tusk.cli.main import copy, delete, diff, get, glob, inspect, list_, put
from tusk.cli.output import emit, fmt_of, is_tty, output_options, size

FILE_HEADERS = ["NAME", "TYPE", "SIZE"]


def _rows(files) -> list:  # type: ignore[no-untyped-def]
    return [[f.path + ("/" if f.type == "dir" and f.path != "/" else ""), f.type, size(f.size)] for f in files]


class _Progress:
    """A byte-count progress bar on stderr, shown only for people (TTY or --progress)."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(TextColumn("put file"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), transient=True)
            self.task = self.bar.add_task("put", total=total)
            self.bar.start()

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@put.command("file")
@click.argument("ref", metavar="REPO@BRANCH[:PATH]")
@click.option("-f", "--file", "sources", multiple=True, metavar="SOURCE",
              help="Local file, directory (with -r), URL, or '-' for stdin. Repeatable.")
@click.option("-r", "--recursive", is_flag=True, help="Put directories recursively.")
@click.option("-i", "--input-file", default=None, metavar="FILE",
              help="A file listing sources (paths or URLs), one per line.")
@click.option("-a", "--append", is_flag=True, help="Append to existing files instead of overwriting.")
@click.option("--untar", is_flag=True, help="Sources are tar archives; put their files.")
@click.option("--full-path", is_flag=True, help="Use each local file's full path as its destination.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: on a TTY).")
@click.option("-m", "--message", default="", help="Description of the commit this makes.")
@project_option
def put_file(ref: str, sources: tuple[str, ...], recursive: bool, input_file: str | None, append: bool,
             untar: bool, full_path: bool, progress: bool | None, message: str, project: str | None) -> None:
    """Put files into a branch (one new commit) or into an open commit.

    \b
      tusk put file images@master:/liberty.png -f liberty.png
      tusk put file images@master -r -f photos/          # -> /photos/...
      tusk put file images@master:/in/ -f a.png -f b.png  # -> /in/a.png, /in/b.png
      cat log | tusk put file logs@master:/today.log -a -f -
    """
    from tusk.errors import InvalidArgument
    from tusk.pfs import sources as src
    from tusk.pfs.refs import parse_commit

    commit_text, _, dest = ref.partition(":")
    target = parse_commit(commit_text, project, default_branch="master")
    items = list(sources)
    if input_file is not None:
        items += src.read_list_file(input_file)
    if not items:
        raise InvalidArgument("nothing to put: give -f SOURCE (a file, directory, URL or '-') or -i LIST")
    many = len(items) > 1 and not (append and dest and not dest.endswith("/"))
    for item in items:
        if item != "-" and not src.is_url(item) and not os.path.exists(item):
            raise InvalidArgument(f"{item}: no such file or directory")
        if item != "-" and not src.is_url(item) and os.path.isdir(item):
            if untar:
                raise InvalidArgument(f"{item} is a directory; --untar needs a tar archive")
            if not recursive:
                raise InvalidArgument(f"{item} is a directory; use -r to put it recursively")
    # Sizing the sources costs a stat per file, so do it only when a person is watching.
    show = progress if progress is not None else is_tty()
    total = None
    if show and all(i != "-" and not src.is_url(i) for i in items):
        total = sum(_local_size(Path(i)) for i in items)
        show = progress or (total or 0) > (64 << 20)
    bar = _Progress(bool(show), total)
    from tusk.cli.txn_cmds import txn_pfs

    svc = txn_pfs()  # inside a transaction the write goes to its commit
    try:
        with svc.modify(target, description=message) as session:
            for item in items:
                if untar:
                    with src.open_source(item) as stream:
                        session.put_tar(stream, dest or "/", append, bar)
                elif item == "-" or src.is_url(item):
                    with src.open_source(item) as stream:
                        session.put_stream(src.destination(item, dest, many), stream, append, bar)
                elif os.path.isdir(item):
                    base = os.path.basename(os.path.abspath(item))
                    if full_path:
                        dest_dir = os.path.abspath(item)
                    elif dest and (len(items) == 1 or dest.endswith("/")):
                        dest_dir = dest if len(items) == 1 else src.join_dest(dest, base)
                    else:
                        dest_dir = src.join_dest(dest or "/", base)
                    session.put_many(src.walk_local(item, dest_dir), append, bar, normalized=True)
                else:
                    session.put_path(src.destination(item, dest, many, full_path), Path(item), append)
                    bar(os.path.getsize(item))
    finally:
        bar.close()


def _local_size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


@get.command("file")
@click.argument("ref", metavar="REPO@REF:PATH")
@click.option("-o", "--output", "out", default=None, help="Write to this path instead of stdout.")
@click.option("-r", "--recursive", is_flag=True, help="Download a directory (needs -o).")
@click.option("--offset", type=count(), default=0, help="Start at this byte of the file.")
@project_option
def get_file(ref: str, out: str | None, recursive: bool, offset: int, project: str | None) -> None:
    """Print a file, or download a file or directory."""
    from tusk.errors import InvalidArgument
    from tusk.pfs.refs import FileRef, parse_file

    fref = parse_file(ref, project, require_path=not recursive)
    svc = pfs()
    info = svc.inspect_file(fref)
    # Against a server the bytes stream from read_file; locally straight from the chunks.
    reader = None if getattr(svc, "remote", False) else svc.b.reader()
    if info.type == "dir":
        if not recursive:
            raise InvalidArgument(f"{fref.path} is a directory; use -r -o DIR to download it")
        if out is None:
            raise InvalidArgument("downloading a directory needs -o DIR")
        if os.path.exists(out) and not os.path.isdir(out):
            raise InvalidArgument(f"{out} exists and is not a directory")
        prefix = "" if fref.path == "/" else fref.path
        with _local_errors():
            Path(out).mkdir(parents=True, exist_ok=True)
            for f in svc.walk_file(FileRef(fref.commit, fref.path)):
                target = Path(out) / f.path[len(prefix):].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                _write_file(_copier(svc, reader, FileRef(fref.commit, f.path), f), target, 0)
        return
    copy_to = _copier(svc, reader, fref, info)
    if out is None:
        sys.stdout.flush()
        copy_to(sys.stdout.buffer.fileno(), offset)
    else:
        target = Path(out)
        if target.is_dir():
            target = target / os.path.basename(fref.path)
        with _local_errors():
            _write_file(copy_to, target, offset)


def _copier(svc, reader, fref, info):  # type: ignore[no-untyped-def]
    """A function (fd, offset) that writes the file's bytes to fd."""
    if reader is not None:
        return lambda fd, offset: reader.copy_to_fd(info.chunks, fd, offset)

    def copy_remote(fd: int, offset: int) -> None:
        for piece in svc.read_file(fref, offset):
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view):]

    return copy_remote


@contextlib.contextmanager
def _local_errors() -> Iterator[None]:
    """A local file that cannot be written is the user's error: one line, not a traceback."""
    from tusk.errors import TuskError

    try:
        yield
    except OSError as e:
        raise TuskError(f"cannot write {e.filename or 'output'}: {e.strerror or e}") from None


def _write_file(copy_to, target: Path, offset: int) -> None:  # type: ignore[no-untyped-def]
    tmp = target.with_name(f".{target.name}.tusk-partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        copy_to(fd, offset)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, target)  # a download is whole or absent, never half a file


@inspect.command("file")
@click.argument("ref", metavar="REPO@REF:PATH")
@project_option
@output_options
def inspect_file(ref: str, project: str | None, fmt: str, raw: bool) -> None:
    """Show a file's or directory's type, size and hash."""
    from tusk.pfs.refs import parse_file

    f = pfs().inspect_file(parse_file(ref, project, require_path=True))
    if fmt_of(fmt, raw) == "table":
        lines = [f"Path: {f.path}", f"Type: {f.type}", f"Size: {size(f.size)}", f"Commit: {f.commit}"]
        if f.type == "file":
            lines.append(f"Hash: {f.hash}")
        click.echo("\n".join(lines))
        return
    emit(fmt_of(fmt, raw), f.to_dict())


@list_.command("file")
@click.argument("ref", metavar="REPO@REF[:DIR]")
@project_option
@output_options
def list_file(ref: str, project: str | None, fmt: str, raw: bool) -> None:
    """List the direct children of a directory."""
    from tusk.pfs.refs import parse_file

    files = pfs().list_file(parse_file(ref, project))
    emit(fmt_of(fmt, raw), [f.to_dict() for f in files], FILE_HEADERS, _rows(files))


@glob.command("file")
@click.argument("ref", metavar="REPO@REF:PATTERN")
@project_option
@output_options
def glob_file(ref: str, project: str | None, fmt: str, raw: bool) -> None:
    """List files and directories matching a glob pattern (as pipeline inputs see them)."""
    from tusk.errors import InvalidArgument
    from tusk.pfs.refs import parse_commit

    commit_text, colon, pattern = ref.partition(":")
    if not colon or not pattern:
        raise InvalidArgument(f"{ref!r} has no pattern: write repo@branch:/pattern")
    files = pfs().glob_file(parse_commit(commit_text, project), pattern)
    emit(fmt_of(fmt, raw), [f.to_dict() for f in files], FILE_HEADERS, _rows(files))


@diff.command("file")
@click.argument("new", metavar="NEW_REPO@REF[:PATH]")
@click.argument("old", required=False, metavar="[OLD_REPO@REF[:PATH]]")
@click.option("--name-only", is_flag=True, help="Print only the changed paths.")
@click.option("-s", "--shallow", is_flag=True, help="Accepted for pachctl compatibility.")
@click.option("--old-project", default=None, help="Project of the old ref.")
@project_option
@output_options
def diff_file(new: str, old: str | None, name_only: bool, shallow: bool, old_project: str | None,
              project: str | None, fmt: str, raw: bool) -> None:
    """Show files added, removed or changed (OLD defaults to NEW's parent)."""
    from tusk.pfs.refs import parse_file

    new_ref = parse_file(new, project)
    old_ref = None
    if old is not None:
        old_ref = parse_file(old, old_project or project, default_path=new_ref.path)
    diffs = pfs().diff_file(new_ref, old_ref)
    f = fmt_of(fmt, raw)
    if name_only and f == "table":
        for d in diffs:
            click.echo(d.path)
        return
    sign = {"added": "+", "removed": "-", "changed": "~"}
    emit(f, [d.to_dict() for d in diffs], ["CHANGE", "PATH", "OLD SIZE", "NEW SIZE"],
         [[sign[d.change], d.path, size(d.old_size), size(d.new_size)] for d in diffs])


@copy.command("file")
@click.argument("src", metavar="SRC_REPO@REF:PATH")
@click.argument("dst", metavar="DST_REPO@BRANCH:PATH")
@click.option("-a", "--append", is_flag=True, help="Append to the destination instead of replacing.")
@click.option("--src-project", default=None, help="Project of the source repo.")
@click.option("--dest-project", default=None, help="Project of the destination repo.")
@project_option
def copy_file(src: str, dst: str, append: bool, src_project: str | None, dest_project: str | None,
              project: str | None) -> None:
    """Copy a file or directory without moving bytes (works across repos and projects)."""
    from tusk.pfs.refs import parse_commit, parse_file

    src_ref = parse_file(src, src_project or project, require_path=True)
    commit_text, _, dest = dst.partition(":")
    from tusk.cli.txn_cmds import txn_pfs

    with txn_pfs().modify(parse_commit(commit_text, dest_project or project, default_branch="master")) as s:
        s.copy(src_ref, dest or src_ref.path, append)


@delete.command("file")
@click.argument("ref", metavar="REPO@BRANCH:PATH")
@click.option("-r", "--recursive", is_flag=True, help="Delete a directory and everything in it.")
@project_option
def delete_file(ref: str, recursive: bool, project: str | None) -> None:
    """Delete a file (a new commit; earlier commits keep it)."""
    from tusk.pfs.refs import parse_file

    fref = parse_file(ref, project, require_path=True)
    from tusk.cli.txn_cmds import txn_pfs

    with txn_pfs().modify(fref.commit) as session:
        session.delete(fref.path, recursive)
