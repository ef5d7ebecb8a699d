"""The pipeline DAG as specs describe it: which pipeline reads which repo, and its cycles.

A pipeline reads the repos of its inputs and writes the repo that takes its name, so a set of
specs is a graph from output repo to input repos. It must stay acyclic: a pipeline that reads,
through any number of others, its own output would wait for itself forever. These checks are
pure (specs in, error out), so ``validate pipeline`` finds a cycle between the specs of one file
exactly as ``create pipeline`` does, and the service checks a change against the pipelines that
exist before it writes anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from tusk.errors import InvalidArgument
from tusk.pfs.refs import RepoRef
from tusk.pps.spec_errors import SpecError

if TYPE_CHECKING:
    from tusk.pps.spec import PipelineSpec


def output_of(spec: PipelineSpec) -> RepoRef:
    return RepoRef(spec.project, spec.name)


def reads(spec: PipelineSpec) -> set[RepoRef]:
    """The repos a pipeline's inputs read (cron repos included: they are repos too)."""
    return {RepoRef(leaf.project, leaf.repo) for leaf in spec.input.walk()} if spec.input else set()


def find_cycle(graph: Mapping[RepoRef, Iterable[RepoRef]], start: RepoRef) -> list[RepoRef] | None:
    """A path ``start -> ... -> start`` following ``graph`` (output -> the repos it reads), or
    None. Iterative depth first search: a deep DAG must not hit Python's recursion limit."""
    path: list[RepoRef] = [start]
    stack = [iter(sorted(graph.get(start, ()), key=str))]
    seen: set[RepoRef] = {start}
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            path.pop()
            continue
        if nxt == start:
            return [*path, start]
        if nxt in seen or nxt not in graph:
            continue
        seen.add(nxt)
        path.append(nxt)
        stack.append(iter(sorted(graph.get(nxt, ()), key=str)))
    return None


def _show(refs: list[RepoRef], project: str) -> str:
    return " -> ".join(r.repo if r.project == project else str(r) for r in refs)


def check_file(specs: list[PipelineSpec], source: str) -> None:
    """The specs of one file: no pipeline twice, and no cycle among them."""
    seen: set[RepoRef] = set()
    for spec in specs:
        out = output_of(spec)
        if out in seen:
            raise SpecError(source, "", f"names pipeline {spec.name} twice; give each pipeline"
                            " one spec per file")
        seen.add(out)
    graph = {output_of(spec): reads(spec) for spec in specs}
    for spec in specs:
        cycle = find_cycle(graph, output_of(spec))
        if cycle is not None:
            raise SpecError(source, "", f"the pipelines form a cycle ({_show(cycle, spec.project)});"
                            " a pipeline cannot read its own output, even through others")


def check_change(existing: Iterable[PipelineSpec], spec: PipelineSpec) -> None:
    """Creating or updating ``spec`` among the ``existing`` pipelines keeps the DAG acyclic."""
    graph = {output_of(e): reads(e) for e in existing}
    graph[output_of(spec)] = reads(spec)
    cycle = find_cycle(graph, output_of(spec))
    if cycle is not None:
        raise InvalidArgument(
            f"pipeline {spec.name}: input {_show(cycle[1:2], spec.project)} would create a cycle"
            f" ({_show(cycle, spec.project)}); a pipeline cannot read its own output, even"
            " through others")
