"""The ``tusk`` command: pachctl's grammar (``tusk <verb> <noun> ...``) over the services.

This module defines the verb groups and the error boundary: every ``TuskError`` becomes one
line on stderr and its exit code, never a traceback. Anything else is a bug or a broken
environment; the last-resort guard (``_unexpected``) still prints one line, with a hint to
report it, and shows the traceback only when ``TUSK_DEBUG`` is set. The commands themselves live in one
module per noun (``repo_cmds``, ``commit_cmds``, ...) and stay thin: parse, call the service,
print. Heavy imports happen inside commands so ``tusk --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import click

from tusk.errors import INTERNAL_ERROR_EXIT, TuskError, exit_code, printable

# Verbs after which a controller may have work (new commits on pipeline inputs, new specs).
MUTATING = {"put", "delete", "copy", "finish", "create", "update", "start", "squash", "run", "rerun",
            "edit", "restart"}

# Commands that run a controller themselves (or are the controller).
OWN_CONTROLLER = {"controller", "serve", "worker"}


class TuskGroup(click.Group):
    """A group that turns user errors into one clear line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            if ctx.parent is None and ctx.invoked_subcommand not in OWN_CONTROLLER:
                from tusk.cli import common

                if common._service is not None:  # the command touched a root
                    if ctx.invoked_subcommand in MUTATING:
                        common.kick()
                    else:
                        common.revive()  # a job in flight and no controller: start one
            return result
        except TuskError as e:
            click.echo(f"tusk: {e.message}", err=True)
            ctx.exit(exit_code(e))
        except click.exceptions.NoArgsIsHelpError:
            raise  # 'tusk create' alone: click shows the group's help
        except click.UsageError as e:
            # Bad flags or arguments: one line like every other user error, with where to look.
            where = e.ctx.command_path if e.ctx is not None else "tusk"
            message = e.format_message().replace("\n", " ")
            click.echo(f"tusk: {message} (see '{where} --help')", err=True)
            ctx.exit(e.exit_code)
        except click.ClickException as e:  # e.g. click.edit's "Editing failed"
            click.echo(f"tusk: {printable(' '.join(e.format_message().split()))}", err=True)
            ctx.exit(e.exit_code)
        except BrokenPipeError:
            sys.stderr.close()
            ctx.exit(141)
        except KeyboardInterrupt:
            click.echo("tusk: interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own control flow (ctx.exit), not failures
        except Exception as e:  # noqa: BLE001 - the last resort: see _unexpected
            _unexpected(ctx, e)


def _unexpected(ctx: click.Context, e: Exception) -> NoReturn:
    """One line for an exception no command turned into a ``TuskError``.

    With ``TUSK_DEBUG`` set the exception propagates, so Python prints the whole traceback.
    """
    if os.environ.get("TUSK_DEBUG"):
        raise e
    hint = "run again with TUSK_DEBUG=1 for the traceback"
    if isinstance(e, UnicodeEncodeError) and "surrogate" in e.reason:
        # An argument held bytes that are not UTF-8 (Python keeps them as lone surrogates): fine
        # for a local file name, but no name, path or description tusk stores may carry them.
        bad = printable(e.object[max(e.start - 20, 0):e.end + 20])
        click.echo(f"tusk: '{bad}' is not UTF-8 text; names, paths and descriptions must be",
                   err=True)
        ctx.exit(2)
    if isinstance(e, MemoryError):
        message = f"out of memory ({hint})"
    elif isinstance(e, RecursionError):
        message = f"input nested too deeply to handle ({hint}, and please report it)"
    elif isinstance(e, OSError) and e.strerror:
        # The environment more often than a bug: a full disk, a permission, a vanished file.
        where = f"{e.filename}: " if e.filename else ""
        message = f"{where}{e.strerror} ({hint})"
    else:
        text = " ".join(str(e).split())
        if len(text) > 300:
            text = text[:300] + "..."
        detail = f"{type(e).__name__}: {text}" if text else type(e).__name__
        message = f"internal error: {detail} ({hint}, and please report it)"
    click.echo(f"tusk: {printable(message)}", err=True)
    ctx.exit(INTERNAL_ERROR_EXIT)


@click.group(cls=TuskGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tusk", prog_name="tusk")
def cli() -> None:
    """tusk: versioned data and data-driven pipelines, Pachyderm-style, with no cluster.

    State lives in $TUSK_ROOT (default ~/.tusk).
    """


def _verb(name: str, help_text: str) -> click.Group:
    group = click.Group(name, help=help_text)
    cli.add_command(group)
    return group


create = _verb("create", "Create a project, repo, branch or pipeline.")
list_ = _verb("list", "List projects, repos, branches, commits, files, pipelines, jobs or datums.")
inspect = _verb("inspect", "Show details of a project, repo, branch, commit, file, pipeline or job.")
update = _verb("update", "Update a project, repo or pipeline.")
delete = _verb("delete", "Delete a project, repo, branch, commit set, file or pipeline.")
start = _verb("start", "Start a commit, or restart a stopped pipeline.")
finish = _verb("finish", "Finish a commit.")
wait = _verb("wait", "Wait for a commit, commit set or job to finish.")
subscribe = _verb("subscribe", "Stream commits or job changes as they happen.")
squash = _verb("squash", "Squash a commit set into its children.")
put = _verb("put", "Put files into a repo.")
get = _verb("get", "Get files from a repo.")
glob = _verb("glob", "Match files with a glob pattern.")
diff = _verb("diff", "Show what changed between two commits.")
copy = _verb("copy", "Copy files between commits, repos and projects (metadata only).")
validate = _verb("validate", "Check a pipeline spec without creating anything.")
stop = _verb("stop", "Stop a pipeline or a job.")
rerun = _verb("rerun", "Run a pipeline again on the current input heads.")
edit = _verb("edit", "Edit a pipeline's spec in $EDITOR and update it.")
draw = _verb("draw", "Draw the DAG of repos and pipelines as text.")
run = _verb("run", "Run something now (a cron tick).")
restart = _verb("restart", "Restart datums of a running job.")
next_ = _verb("next", "Move datum-batching user code on to the next datum.")
context = _verb("context", "Name tusk servers and choose where commands go ('local': this root).")


def main() -> None:
    # Import the noun modules so their commands register on the verb groups.
    from tusk.cli import (  # noqa: F401
        admin_cmds,
        batch_cmds,
        branch_cmds,
        commit_cmds,
        context_cmds,
        file_cmds,
        lifecycle_cmds,
        lineage_cmds,
        log_cmds,
        pps_cmds,
        repo_cmds,
        secret_cmds,
        serve_cmds,
        txn_cmds,
    )

    cli(prog_name="tusk")


if __name__ == "__main__":
    main()
