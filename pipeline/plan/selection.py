"""Which stages a command acts on: targets (stages, `foreach` groups, `file:stage`) and flags.

DVC's semantics: a target brings its upstream along (`repro train` also brings `prepare` up
to date), `single_item` takes the targets alone, and `downstream` takes the targets and every
stage that depends on them instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.errors import UsageError
from pipeline.load.project import Project


@dataclass(frozen=True)
class Selection:
    """The chosen stages in execution order, and the targets among them."""

    order: tuple[str, ...]
    targets: frozenset[str]


def select(
    project: Project,
    targets: Iterable[str],
    *,
    single_item: bool = False,
    downstream: bool = False,
) -> Selection:
    """Resolve `targets` (all stages when empty) and expand them as the flags say."""
    named: set[str] = set()
    for target in targets:
        named |= target_stages(project, target)
    if not named:
        return Selection(project.graph.order, frozenset(project.stages))
    if single_item:
        chosen = set(named)
    elif downstream:
        chosen = named | project.graph.descendants(named)
    else:  # as in DVC, a frozen stage's upstream is not brought along through it
        frozen = {n for n, stage in project.stages.items() if stage.frozen}
        chosen = named | project.graph.ancestors(named, stop=frozen)
    order = tuple(n for n in project.graph.order if n in chosen)
    return Selection(order, frozenset(named))


def target_stages(project: Project, target: str) -> set[str]:
    """Stage names a target means: a stage, a group (`build` → `build@*`), or `file:stage`."""
    manifest = project.manifest.name
    if target in (manifest, f"./{manifest}", str(project.manifest)):
        return set(project.stages)
    file, sep, name = target.rpartition(":")
    if sep and file:
        if file not in (manifest, str(project.manifest), f"./{manifest}"):
            raise UsageError(
                f"target {target!r} names {file}, but this project's manifest is {manifest}",
                f"write {manifest}:{name}, or just {name}",
            )
        target = name
    if target in project.stages:
        return {target}
    group = {n for n in project.stages if n.startswith(target + "@")}
    if group:
        return group
    close = difflib.get_close_matches(target, list(project.stages), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "`pipeline dag` lists the stages"
    raise UsageError(f"unknown stage {target!r}", hint)
