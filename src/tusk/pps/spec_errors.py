"""Errors of pipeline specs: a one-line ``SpecError`` naming the source and the field path.

Validators deep in the spec raise ``FieldError`` (a field path and a problem); ``parse_spec``
turns it into a ``SpecError`` that also names the file the spec came from.
"""

from __future__ import annotations

import re

from tusk.errors import InvalidArgument

# --------------------------------------------------------------------------------------------
# Errors.


class SpecError(InvalidArgument):
    """An invalid pipeline spec. ``str(e)`` is one line: ``<source>: <field.path>: <problem>``."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        # Messages end up on one terminal line and in logs; never let a value's newline split it.
        problem = re.sub(r"\s*\n\s*", " ", problem).strip()
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.path = path
        self.problem = problem


class FieldError(Exception):
    """A problem at one field path, raised while the source name is not known yet."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def join_path(path: str, key: str | int) -> str:
    """``input.cross`` + 1 -> ``input.cross[1]``; ``input`` + ``pfs`` -> ``input.pfs``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key
