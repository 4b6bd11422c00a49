"""Which stages a command acts on: targets (stages, `foreach` groups, `file:stage`) and flags.

Without targets, a command acts on the stages of the folder it started in (all of them at the
project root); `file:stage` and manifest targets may name any manifest of the project.

DVC's semantics: a target brings its upstream along (`repro train` also brings `prepare` up
to date), `single_item` takes the targets alone, and `downstream` takes the targets and every
stage that depends on them instead.
"""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.paths import is_within
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
    """Resolve `targets` (when empty: the stages of the folder the command started in, or all
    of them at the root) and expand them as the flags say."""
    named: set[str] = set()
    for target in targets:
        named |= target_stages(project, target)
    if not named:
        named = _in_scope(project)
        if named == set(project.stages):
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


def _in_scope(project: Project) -> set[str]:
    """Stages of the manifests at or below `project.scope` (in a subfolder, DVC's `repro`
    acts on that folder's dvc.yaml); all stages at the root or when none is there."""
    if project.scope == ".":
        return set(project.stages)
    inside = {
        name
        for name, manifest in project.origins.items()
        if is_within(posixpath.dirname(manifest) or ".", project.scope)
    }
    return inside or set(project.stages)


def target_stages(project: Project, target: str) -> set[str]:
    """Stage names a target means: a stage, a group (`build` → `build@*`), a manifest (all its
    stages), or `file:stage`; a file is relative to where the command started, or the root."""
    if target in project.stages:
        return {target}
    whole = _manifest_named(project, target)
    if whole is not None:
        return {n for n, m in project.origins.items() if m == whole} or set(project.stages)
    file, sep, name = target.rpartition(":")
    if sep and file:
        manifest = _manifest_named(project, file)
        if manifest is None:
            raise _not_a_manifest(project, target, file, name)
        target = name if "/" not in manifest else f"{manifest}:{name}"
    if target in project.stages:
        return {target}
    group = {n for n in project.stages if n.startswith(target + "@")}
    if group:
        return group
    close = difflib.get_close_matches(target, list(project.stages), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "`pipeline dag` lists the stages"
    raise UsageError(f"unknown stage {target!r}", hint)


def _not_a_manifest(project: Project, target: str, file: str, name: str) -> UsageError:
    known = project.manifests or (project.manifest.name,)
    listed = f"manifest is {known[0]}" if len(known) == 1 else f"manifests are {', '.join(known)}"
    return UsageError(
        f"target {target!r} names {file}, but this project's {listed}",
        f"write {known[0]}:{name}, or just {name}",
    )


def _manifest_named(project: Project, file: str) -> str | None:
    """The root-relative manifest `file` names: seen from the folder the command started in,
    from the root, or as an absolute path."""
    if file == str(project.manifest):
        return project.manifest.relative_to(project.root).as_posix()
    known = project.manifests or (project.manifest.relative_to(project.root).as_posix(),)
    for base in (project.scope, "."):
        relpath = posixpath.normpath(posixpath.join(base, file))
        if relpath in known:
            return relpath
    absolute = Path(file)
    if absolute.is_absolute() and absolute.is_relative_to(project.root):
        relpath = absolute.relative_to(project.root).as_posix()
        return relpath if relpath in known else None
    return None
