"""How the CLI prints: pachctl-like aligned tables for people, JSON or YAML for machines.

Commands build rows of plain values and call ``emit``; only this module knows about formats,
relative times and size units.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

FORMATS = ("table", "json", "yaml")


def output_options(f: Callable) -> Callable:
    """Add ``--raw`` and ``-o/--output`` to a command."""
    f = click.option("--raw", is_flag=True, help="Print machine-readable JSON (same as -o json).")(f)
    f = click.option(
        "-o", "--output", "fmt", type=click.Choice(FORMATS), default="table",
        help="Output format.",
    )(f)
    return f


def fmt_of(fmt: str, raw: bool) -> str:
    return "json" if raw and fmt == "table" else fmt


def ago(ts: float | None) -> str:
    if ts is None:
        return "-"
    d = max(0.0, time.time() - ts)
    for unit, secs in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if d >= secs:
            n = int(d // secs)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "Less than a second ago"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)}{unit}" if unit == "B" else f"{value:.4g}{unit}"
        value /= 1024
    return f"{n}B"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells]
    return "\n".join(lines)


def emit(fmt: str, data: Any, headers: Sequence[str] = (), rows: Sequence[Sequence[Any]] = ()) -> None:
    """Print ``data`` (dicts/lists) as JSON/YAML, or ``rows`` as a table."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=False))
    elif fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
    else:
        click.echo(table(headers, rows))


def err(message: str) -> None:
    click.echo(message, err=True)


def is_tty(stream: Any = None) -> bool:
    stream = stream or sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()
