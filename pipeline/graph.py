"""The stage DAG: an edge runs from the stage that writes a path to each stage that reads it.

A dep matches an out when they are the same path, when the dep lies inside an out directory, or
when the dep is a directory containing an out. Conflicting outputs and cycles are manifest errors.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import networkx as nx

from pipeline.paths import ancestors, is_within
from pipeline.yamlio import YamlDoc

if TYPE_CHECKING:
    from pipeline.project import Out, Stage


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


def build_graph(stages: Mapping[str, Stage], doc: YamlDoc) -> tuple[nx.DiGraph, OutputIndex]:
    """Validate outputs, connect deps to producers, and reject cycles."""
    index = OutputIndex(stages.values())
    _check_outputs(stages, index, doc)
    dag = nx.DiGraph()
    dag.add_nodes_from(stages)
    for stage in stages.values():
        for dep in stage.deps:
            dag.add_edges_from((producer, stage.name) for producer in index.producers(dep))
    _check_acyclic(dag, stages, doc)
    return dag, index


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


def _check_acyclic(dag: nx.DiGraph, stages: Mapping[str, Stage], doc: YamlDoc) -> None:
    try:
        cycle = nx.find_cycle(dag)
    except nx.NetworkXNoCycle:
        return
    names = [edge[0] for edge in cycle] + [cycle[0][0]]
    first = stages[names[0]]
    if len(cycle) == 1:
        dep = next(
            d
            for d in first.deps
            if any(is_within(d, o) or is_within(o, d) for o in first.out_paths)
        )
        raise doc.error(
            ("stages", first.name, "deps"),
            f"stage {first.name!r} depends on its own output {dep}",
            "a stage cannot read what it writes; split it into two stages",
        )
    raise doc.error(
        ("stages", first.name),
        "dependency cycle: " + " → ".join(names),
        "remove one of these deps so the stages form a DAG",
    )
