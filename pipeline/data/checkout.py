"""`pipeline checkout`: make the workspace match `pipeline.lock` from the cache.

After `git checkout <old commit>`, the lock describes that commit's outputs and data; every
cached output and tracked path whose bytes differ is restored, and what the cache lacks is
reported. Outputs with `cache: false` live in git and are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.core.hashing import HashInfo
from pipeline.core.paths import is_within
from pipeline.core.suggest import closest
from pipeline.errors import DataError, UsageError
from pipeline.plan.selection import target_stages
from pipeline.plan.session import Session
from pipeline.store.restore import ParentIsAFile, Restorer

RunNames = Callable[[], list[str]] | None  # the recorded runs' names and ids, when asked


@dataclass
class CheckoutReport:
    """What `checkout` did, path by path."""

    restored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # not in the cache
    corrupt: list[str] = field(default_factory=list)  # in the cache, but damaged


def wanted(
    session: Session, targets: tuple[str, ...], runs: RunNames = None
) -> dict[str, HashInfo]:
    """The paths `checkout` should restore: cached stage outputs and tracked data.

    A target that names nothing is an error; `runs` (the recorded runs' names, asked only
    then) lets its did-you-mean suggest a run too."""
    lock, project = session.lock, session.project
    found: dict[str, HashInfo] = {}
    for name, entry in lock.stages.items():
        stage = project.stages.get(name)
        cached = {o.path for o in stage.outs if o.cache} if stage else set()
        found.update({o.path: o.info for o in entry.outs if o.path in cached})
    found.update(lock.data)
    if not targets:
        return found
    chosen: dict[str, HashInfo] = {}
    for target in targets:
        chosen.update(_target(session, found, target, runs))
    return chosen


def _target(
    session: Session, found: dict[str, HashInfo], target: str, runs: RunNames
) -> dict[str, HashInfo]:
    target = target.rstrip("/").removeprefix("./")
    by_path = {p: i for p, i in found.items() if is_within(p, target)}
    if by_path:
        return by_path
    inside = _inside_tracked_directory(session, found, target)
    if inside is not None:
        return {target: inside}
    try:
        names = target_stages(session.project, target)
    except UsageError as exc:
        if ":" in target:  # `file:stage` naming another manifest: its own message says so
            raise
        raise _unknown_target(session, found, target, runs) from exc
    entries = [session.lock.stages[n] for n in names if n in session.lock.stages]
    return {o.path: found[o.path] for e in entries for o in e.outs if o.path in found}


def _unknown_target(
    session: Session, found: dict[str, HashInfo], target: str, runs: RunNames
) -> UsageError:
    """Say what `target` is not (a stage, a path `checkout` restores, a run), with a did-you-mean
    over all three kinds; a file of the workspace that nothing tracks is named as such."""
    if os.path.lexists(session.project.root / target):
        return UsageError(
            f"{target} is neither a stage's cached output nor tracked data: checkout does not "
            "restore it",
            f"`git checkout -- {target}` restores a file git tracks",
        )
    kinds = dict.fromkeys(runs() if runs is not None else [], "run")
    kinds.update(dict.fromkeys(found, "path"))
    kinds.update(dict.fromkeys(session.project.stages, "stage"))
    close = closest(target, list(kinds))
    hint = "`pipeline dag` lists the stages, `pipeline runs` the runs"
    if close is not None:
        hint = f"did you mean {kinds[close]} {close!r}?"
    what = "a stage, a cached output, tracked data or a recorded run"
    return UsageError(f"{target!r} is not {what}", hint)


def _inside_tracked_directory(
    session: Session, found: dict[str, HashInfo], target: str
) -> HashInfo | None:
    """A single file of a tracked or output directory, looked up in its stored listing."""
    for path, info in found.items():
        if info.isdir and is_within(target, path) and session.store.has(info.hash):
            rel = target[len(path) + 1 :]
            for entry in session.store.read_tree(info.hash):
                if entry.path == rel:
                    return HashInfo(entry.hash, -1, 1)
    return None


def checkout(
    session: Session, targets: tuple[str, ...], *, verify: bool = False, runs: RunNames = None
) -> CheckoutReport:
    """Restore every wanted path whose workspace content differs from the lock."""
    restorer = Restorer(
        session.project.root, session.store, session.hasher, session.config.cache_type, verify
    )
    report = CheckoutReport()
    for path, info in sorted(wanted(session, targets, runs).items()):
        current = session.hasher.hash(path)
        if current is not None and current.hash == info.hash:
            report.unchanged.append(path)
            continue
        try:
            if not session.store.complete(info):
                report.missing.append(path)
                continue
            restorer.restore(path, info)
        except ParentIsAFile:  # the object is fine: the workspace must change, say how
            raise
        except DataError:
            report.corrupt.append(path)
            continue
        report.restored.append(path)
    return report
