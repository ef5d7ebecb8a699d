"""Runtimes, and which one runs a pipeline's code.

The implementations of ``tusk.workers.base.Runtime``: ``image`` (the spec's
``transform.image``, under bubblewrap), ``sandbox`` (bubblewrap over the host's system; the
default where it works) and ``process`` (no isolation). Which one a pipeline gets, in order:

1. the installation's override: ``TUSK_RUNNER`` in the controller's environment (or a runtime
   handed to the controller, as tests do);
2. the pipeline's own choice, the tusk-specific spec field ``"tusk": {"runtime": "process"}``;
3. ``image`` when the spec names ``transform.image``;
4. the sandbox where bubblewrap can run, else the process runtime (said once).

Running a spec that names an image on the host instead is therefore always a choice someone
wrote down (1 or 2), never a fallback; ``image`` for a spec without an image means 3 and 4.

A spout writes into the tusk root with ``tusk put file``, which only a runtime that
``reaches_root`` allows: the process runtime, or the image runtime, which shows a spout the
root and the ``tusk`` command in its image. A spout without an image runs in the process
runtime whatever the default or override says, and a spout spec that asks for the sandbox is
refused when it is created.

This is the only place that knows runtimes by name; everything else reads ``Capabilities``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tusk.errors import FailedPrecondition

if TYPE_CHECKING:
    from tusk.workers.base import Capabilities, Runtime

NAMES = ("image", "sandbox", "process")
OVERRIDE = "TUSK_RUNNER"  # the installation-wide override, read by the controller
_said_fallback = False


def requested(spec: Any) -> str | None:
    """The runtime a pipeline spec names (``"tusk": {"runtime": ...}``), or None."""
    options = spec.extras.get("tusk") or {}
    return options.get("runtime") or None


def sandbox_usable() -> bool:
    from tusk.workers.runtimes.sandbox import bwrap_usable

    return bwrap_usable()


def _class(name: str) -> Any:
    if name == "image":
        from tusk.workers.runtimes.image import ImageRuntime

        return ImageRuntime
    if name == "sandbox":
        from tusk.workers.runtimes.sandbox import SandboxRuntime

        return SandboxRuntime
    from tusk.workers.runtimes.process import ProcessRuntime

    return ProcessRuntime


def _make(name: str, root: Path | None) -> Runtime:
    cls = _class(name)
    # An isolated runtime is told the tusk root, which it hides from the code.
    caps = _static_capabilities(name)
    return cls(root) if caps is not None and caps.isolated else cls()  # type: ignore[no-any-return]


def _static_capabilities(name: str) -> Capabilities | None:
    """A runtime's capabilities when they do not depend on the machine (else None)."""
    caps = _class(name).__dict__.get("capabilities")
    return caps if not isinstance(caps, property) else None


def choice_problem(name: str, kind: str) -> str:
    """What is wrong with a spec naming runtime ``name`` for a pipeline of ``kind`` ("spout",
    "service", "transform"); "" when nothing is."""
    if name not in NAMES:
        return f'"{name}" is not a runtime; use "image", "sandbox" or "process"'
    caps = _static_capabilities(name)
    if kind == "spout" and caps is not None and not caps.reaches_root:
        return (f'a spout cannot run in the {name} runtime: it writes into the tusk root with'
                ' \'tusk put file\', which only the "process" runtime allows; use "process" or'
                " leave it out")
    return ""


class Runtimes:
    """The runtimes of one controller, made once each, and the choice of one per pipeline."""

    def __init__(self, root: Path | None, fixed: Runtime | None = None) -> None:
        self.root = root  # hidden from sandboxed code, like every tusk root
        self.fixed = fixed
        self._made: dict[str, Runtime] = {}

    def for_pipeline(self, spec: Any) -> Runtime:
        """The runtime that runs ``spec``'s code; ``FailedPrecondition`` (with the fix) when the
        one asked for cannot run here."""
        runtime = self.fixed if self.fixed is not None else self._named(self._wanted(spec))
        if spec.pipeline_type == "spout" and not runtime.capabilities.reaches_root:
            runtime = self._named("process")
        return runtime

    def _wanted(self, spec: Any) -> str | None:
        override = os.environ.get(OVERRIDE) or None
        if override is not None and override not in NAMES:
            raise FailedPrecondition(
                f'{OVERRIDE}="{override}" is not a runtime; set it to one of: '
                f'{", ".join(NAMES)} (or unset it)')
        return chosen(spec)[0]

    def _named(self, name: str | None) -> Runtime:
        if name is None:
            name = "sandbox" if sandbox_usable() else "process"
            if name == "process":
                _say_fallback()
        elif name in ("sandbox", "image") and not sandbox_usable():
            raise FailedPrecondition(
                f"the {name} runtime needs bubblewrap, which cannot run here: apt-get install"
                ' bubblewrap, or run the pipeline with "tusk": {"runtime": "process"}')
        if name not in self._made:
            self._made[name] = _make(name, self.root)
        return self._made[name]


def chosen(spec: Any) -> tuple[str | None, str]:
    """The runtime ``spec`` asks for, by the rules above (None: the default), and who chose
    it ("TUSK_RUNNER", "the spec", "transform.image" or "")."""
    override = os.environ.get(OVERRIDE) or None
    if override is not None:
        name, by = override, OVERRIDE
    elif requested(spec):
        name, by = requested(spec), "the spec"
    elif spec.transform.image:
        name, by = "image", "transform.image"
    else:
        return None, ""
    caps = _static_capabilities(name) if name in NAMES else None
    if caps is not None and caps.honours_image and not spec.transform.image:
        return None, ""
    return name, by


def runs_image(spec: Any) -> bool:
    """``spec``'s code will run in its image (so the image must exist)."""
    name, _ = chosen(spec)
    caps = _static_capabilities(name) if name in NAMES else None
    return caps is not None and caps.honours_image


def fallback_notes(specs: list[Any]) -> list[str]:
    """What to tell the user who just created ``specs`` about where their code will run: when
    it will run without the sandbox, or cannot run at all. Empty when all is as expected."""
    override = os.environ.get(OVERRIDE) or None
    if override == "process" or sandbox_usable():
        return []
    wants = {requested(s) for s in specs if s.pipeline_type != "spout"}
    if override == "sandbox":
        wants = {"sandbox"}
    notes = []
    if "sandbox" in wants:
        notes.append("tusk: the sandbox runtime needs bubblewrap, which cannot run here: jobs"
                     " that ask for it fail until it can (apt-get install bubblewrap)")
    if None in wants:
        notes.append("tusk: bubblewrap (bwrap) is not available: pipelines run user code as"
                     " plain processes, with /pfs paths rewritten to a scratch directory"
                     " (install bubblewrap for the sandbox)")
    return notes


def _say_fallback() -> None:
    global _said_fallback
    if not _said_fallback:
        print("tusk: bubblewrap (bwrap) not found; running user code without a sandbox "
              "(/pfs paths are rewritten to a scratch directory)", file=sys.stderr)
        _said_fallback = True
