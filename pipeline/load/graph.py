"""The stage DAG: an edge runs from the stage that writes a path to each stage that reads it.

A dep matches an out when they are the same path, when the dep lies inside an out directory, or
when the dep is a directory containing an out. Conflicting outputs and cycles are manifest errors.
"""

from __future__ import annotations

import bisect
import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pipeline.core.paths import ancestors, is_within
from pipeline.core.yamlio import YamlDoc
from pipeline.errors import ManifestError

if TYPE_CHECKING:
    from pipeline.core.stage import Out, Stage


class OutputIndex:
    """Which stage writes which path, with fast lookups by path, parent or prefix."""

    def __init__(self, stages: Iterable[Stage]) -> None:
        self.owner: dict[str, tuple[str, Out]] = {}
        for stage in stages:
            for out in stage.outs:
                self.owner.setdefault(out.path, (stage.name, out))
        self.sorted_paths = sorted(self.owner)

    def producers(self, dep: str) -> set[str]:
        """Stages whose outputs `dep` reads: the same path, an enclosing out, or outs inside."""
        found = {self.owner[p][0] for p in (dep, *ancestors(dep)) if p in self.owner}
        return found | {self.owner[p][0] for p in self.inside(dep)}

    def producers_of(self, deps: Iterable[str]) -> set[str]:
        """Stages whose outputs any of `deps` reads."""
        return set().union(*map(self.producers, deps))

    def inside(self, path: str) -> list[str]:
        """Output paths strictly inside directory `path`."""
        prefix = path + "/"
        start = bisect.bisect_left(self.sorted_paths, prefix)
        found = []
        for candidate in self.sorted_paths[start:]:
            if not candidate.startswith(prefix):
                break
            found.append(candidate)
        return found


@dataclass(frozen=True)
class StageGraph:
    """The DAG as adjacency maps plus a deterministic topological order.

    Planning needs only upstream lookups and an order, which the standard library's graphlib
    gives without networkx's import cost (~0.1 s, a fifth of the no-op `status` budget);
    `to_networkx()` hands the same graph to networkx for analysis.
    """

    upstream: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]

    @property
    def edges(self) -> list[tuple[str, str]]:
        """(producer, consumer) pairs in execution order."""
        return [(u, name) for name in self.order for u in self.upstream[name]]

    def ancestors(self, names: Iterable[str], stop: Iterable[str] = ()) -> set[str]:
        """Every stage upstream of `names`, transitively, not looking past `stop` stages."""
        return _reachable(names, self.upstream, set(stop))

    @cached_property
    def downstream(self) -> dict[str, tuple[str, ...]]:
        """Stage → the stages that read its outputs, in execution order."""
        found: dict[str, list[str]] = {name: [] for name in self.order}
        for producer, consumer in self.edges:
            found[producer].append(consumer)
        return {name: tuple(consumers) for name, consumers in found.items()}

    def descendants(self, names: Iterable[str]) -> set[str]:
        """Every stage downstream of `names`, transitively (not including them)."""
        return _reachable(names, self.downstream)

    def to_networkx(self) -> Any:
        """A `networkx.DiGraph` with an edge from each producer to each consumer."""
        import networkx as nx  # noqa: PLC0415 - only for callers that want graph algorithms

        dag = nx.DiGraph()
        dag.add_nodes_from(self.order)
        dag.add_edges_from(self.edges)
        return dag


def _reachable(
    starts: Iterable[str], edges: Mapping[str, Iterable[str]], stop: set[str] | None = None
) -> set[str]:
    stop = stop or set()
    found: set[str] = set()
    stack = [nxt for name in starts if name not in stop for nxt in edges[name]]
    while stack:
        name = stack.pop()
        if name not in found:
            found.add(name)
            if name not in stop:
                stack.extend(edges[name])
    return found


def build_graph(stages: Mapping[str, Stage], doc: YamlDoc) -> tuple[StageGraph, OutputIndex]:
    """Validate outputs, connect deps to producers, and reject cycles."""
    index = OutputIndex(stages.values())
    _check_outputs(stages, index, doc)
    position = {name: i for i, name in enumerate(stages)}
    upstream = {
        stage.name: tuple(sorted(index.producers_of(stage.deps), key=position.__getitem__))
        for stage in stages.values()
    }
    try:
        order = _topological(upstream, position)
    except graphlib.CycleError as exc:
        raise _cycle_error(list(exc.args[1]), stages, doc) from None
    return StageGraph(upstream, order), index


def _topological(
    upstream: Mapping[str, Iterable[str]], position: dict[str, int]
) -> tuple[str, ...]:
    """Upstream first; stages that become ready together keep their manifest order."""
    sorter = graphlib.TopologicalSorter(upstream)
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return tuple(order)


def _check_outputs(stages: Mapping[str, Stage], index: OutputIndex, doc: YamlDoc) -> None:
    for stage in stages.values():
        for out in stage.outs:
            owner, first = index.owner[out.path]
            if first is not out:
                raise doc.error(
                    out.loc,
                    f"{out.path} is already an output of stage {owner!r}",
                    "each path can be written by one stage only",
                )
            for parent in ancestors(out.path):
                if parent in index.owner:
                    raise doc.error(
                        out.loc,
                        f"output {out.path} is inside output {parent} "
                        f"of stage {index.owner[parent][0]!r}",
                        "declare only the enclosing directory, or split it into sibling paths",
                    )


def _cycle_error(cycle: list[str], stages: Mapping[str, Stage], doc: YamlDoc) -> ManifestError:
    first = stages[cycle[0]]
    if len(cycle) == 2:
        dep = next(
            d
            for d in first.deps
            if any(is_within(d, o) or is_within(o, d) for o in first.out_paths)
        )
        return doc.error(
            ("stages", first.name, "deps"),
            f"stage {first.name!r} depends on its own output {dep}",
            "a stage cannot read what it writes; split it into two stages",
        )
    return doc.error(
        ("stages", first.name),
        "dependency cycle: " + " → ".join(cycle),
        "remove one of these deps so the stages form a DAG",
    )
