"""Params and metrics of a workspace, a recorded run or a git revision, and their differences.

A REF is `workspace`, a run (id, id prefix, name, `latest`) or anything `git rev-parse`
accepts. A revision's params come from its `pipeline.lock` (every stage's params), and its
metrics from the metrics files (stage `metrics:` outs and the top-level `metrics:` list) as git
holds them at that revision, or else from the cache object that revision's lock names
(`cache: true` metrics are not in git), found inside a directory out if need be.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.git import git, repo_prefix
from pipeline.core.lockfile import LOCK_NAME, Lock, parse_lock
from pipeline.core.paths import ancestors
from pipeline.core.yamlio import parse_yaml
from pipeline.errors import AmbiguousRun, UsageError
from pipeline.load.params import flatten_all, parse_text
from pipeline.load.project import Project
from pipeline.runs.record import effective_params, metrics_paths, param_key, read_metrics

if TYPE_CHECKING:
    from pipeline.runs.runstore import RunStore

WORKSPACE = "workspace"


@dataclass(frozen=True)
class Workspace:
    """The project a REF is read in, and where its cache keeps an object (by digest)."""

    project: Project
    object_path: Callable[[str], Path]


@dataclass(frozen=True)
class Values:
    """The params or metrics of one REF."""

    ref: str
    label: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any

    @property
    def delta(self) -> float | None:
        numbers = all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in (self.old, self.new)
        )
        return float(self.new - self.old) if numbers else None


def params_of(workspace: Workspace, store: RunStore | None, ref: str) -> Values:
    if ref == WORKSPACE:
        return Values(ref, "workspace", effective_params(workspace.project))
    if store is not None and (run := _run(store, ref)) is not None:
        return Values(ref, f"run {run}", store.params_of([run])[run])
    lock = _lock_at(workspace.project.root, ref)
    found: dict[str, Any] = {}
    for file in workspace.project.params_files:  # top-level `params:`, as git holds them
        data = _from_git(workspace.project.root, ref, file) or {}
        found.update({param_key(file, k): v for k, v in flatten_all(data).items()})
    for entry in lock.stages.values():
        for file, values in entry.params.items():
            found.update({param_key(file, k): v for k, v in values.items()})
    return Values(ref, f"commit {ref}", dict(sorted(found.items())))


def metrics_of(workspace: Workspace, store: RunStore | None, ref: str) -> Values:
    if ref == WORKSPACE:
        return Values(ref, "workspace", read_metrics(workspace.project))
    if store is not None and (run := _run(store, ref)) is not None:
        return Values(ref, f"run {run}", store.metrics_of([run])[run])
    lock = _lock_at(workspace.project.root, ref)
    found: dict[str, Any] = {}
    for path in metrics_paths(workspace.project):
        data = _from_git(workspace.project.root, ref, path)
        if data is None:  # not in git (`cache: true`): the object the lock names
            digest = _locked_hash(workspace, lock, path)
            data = {} if digest is None else _read_object(workspace, digest, path)
        found.update({f"{path}:{k}": v for k, v in flatten_all(data).items()})
    return Values(ref, f"commit {ref}", dict(sorted(found.items())))


def _locked_hash(workspace: Workspace, lock: Lock, path: str) -> str | None:
    """The cached object of `path` at a revision: its own out, or a file in a directory out."""
    for owner in (path, *ancestors(path)):
        writer = workspace.project.outputs.owner.get(owner)
        entry = lock.stages.get(writer[0]) if writer else None
        info = entry.out(owner) if entry else None
        if info is None:
            continue
        if owner == path:
            return info.hash
        return _tree_member(workspace, info.hash, path[len(owner) + 1 :])
    return None


def _tree_member(workspace: Workspace, digest: str, relpath: str) -> str | None:
    """The hash of `relpath` in a cached directory (its tree manifest: objects.py's format)."""
    try:
        rows = json.loads(workspace.object_path(digest).read_bytes())
        return next((str(r["hash"]) for r in rows if r["path"] == relpath), None)
    except (OSError, ValueError, TypeError, KeyError):  # absent or damaged: no metrics
        return None


def diff(old: Values, new: Values, *, all_keys: bool = False) -> list[Change]:
    keys = sorted(set(old.values) | set(new.values))
    changes = [Change(k, old.values.get(k), new.values.get(k)) for k in keys]
    return changes if all_keys else [c for c in changes if c.old != c.new]


def _run(store: RunStore, ref: str) -> str | None:
    try:
        return store.find(ref).id
    except AmbiguousRun:
        raise
    except UsageError:
        return None


def _lock_at(root: Path, rev: str) -> Lock:
    text = _git_show(root, rev, LOCK_NAME)
    if text is None:
        return Lock()
    return parse_lock(parse_yaml(text, root / LOCK_NAME).data)


def _git_show(root: Path, rev: str, path: str) -> str | None:
    if git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}") is None:
        raise UsageError(
            f"{rev!r} is neither a run nor a git revision",
            "use `workspace`, a run id or name from `pipeline runs`, or a commit",
        )
    return git(root, "show", f"{rev}:{repo_prefix(root)}{path}")


def _from_git(root: Path, rev: str, path: str) -> dict[str, Any] | None:
    text = _git_show(root, rev, path)
    if text is None:
        return None
    try:
        data = parse_text(text, path)
    except (ValueError, SyntaxError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _read_object(workspace: Workspace, digest: str, path: str) -> dict[str, Any]:
    """A metrics file as cached; unreadable or malformed ones count as empty."""
    try:
        data = parse_text(workspace.object_path(digest).read_text(encoding="utf-8"), path)
    except (OSError, UnicodeDecodeError, ValueError, SyntaxError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
