"""`registry export-tags`: the registry's history as GTO-style annotated git tags.

Generated from the event log, never the source of truth: `NAME@vN` for each registration, on
the commit of the run that produced the version, and `NAME#ALIAS#K` for each alias set
(`NAME#ALIAS!#K` for each alias removed), K counting a name's alias events from 1 as GTO does
(git forbids two tags of the same name, so a counter keeps every assignment). Tags that exist
are left alone, so exporting again adds only what is new; a version whose run recorded no
commit (or whose commit this repository lacks) gets no tag, with a note saying so.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import DataError, UsageError
from pipeline.runs.registry import Event, Registry
from pipeline.runs.runstore import RunStore


@dataclass(frozen=True)
class GitTag:
    """One tag to create (or created): name, commit, message, and whether it exists already."""

    tag: str
    commit: str
    message: str
    exists: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TagPlan:
    tags: tuple[GitTag, ...]
    notes: tuple[str, ...]

    @property
    def new(self) -> tuple[GitTag, ...]:
        return tuple(t for t in self.tags if not t.exists)

    def to_json(self) -> dict[str, Any]:
        return {"tags": [t.to_json() for t in self.tags], "notes": list(self.notes)}


def plan_tags(root: Path, store: RunStore) -> TagPlan:
    """Every tag the event log stands for, marked when it exists already."""
    _git(root, "rev-parse", "--git-dir")
    existing = set(_git(root, "tag", "--list").split())
    registry = Registry(store)
    commits: dict[tuple[str, str], str | None] = {}  # (name, package hash) → commit
    counters: dict[str, int] = {}
    tags: list[GitTag] = []
    notes: list[str] = []
    for event in registry.history():
        key = (event.name, event.hash or "")
        if event.action == "register":
            commits[key] = _commit(root, store, event, registry, notes)
            tag = f"{event.name}@v{_number(registry, event)}"
            message = (
                event.message
                or f"Registering artifact {event.name} version {tag[len(event.name) + 1 :]}"
            )
        elif event.action in ("alias", "unalias"):
            counters[event.name] = counters.get(event.name, 0) + 1
            bang = "!" if event.action == "unalias" else ""
            tag = f"{event.name}#{event.alias}{bang}#{counters[event.name]}"
            verb = "Assigning" if not bang else "Unassigning"
            message = event.message or f"{verb} stage {event.alias} to artifact {event.name}"
        else:
            continue
        commit = commits.get(key)
        if commit is not None:
            tags.append(GitTag(tag, commit, _annotated(message, event), tag in existing))
    return TagPlan(tuple(tags), tuple(notes))


def export_tags(root: Path, store: RunStore, *, dry: bool = False) -> TagPlan:
    """Create the tags of `plan_tags` that do not exist yet (none with `dry`)."""
    plan = plan_tags(root, store)
    if not dry:
        for tag in plan.new:
            _git(root, "tag", "-a", tag.tag, tag.commit, "-m", tag.message)
    return plan


def _number(registry: Registry, event: Event) -> int:
    """The version number the package has now (merged logs may have renumbered it)."""
    found = [v for v in registry.by_hash(event.hash or "") if v.name == event.name]
    return found[0].version if found else event.to_version or 0


def _commit(
    root: Path, store: RunStore, event: Event, registry: Registry, notes: list[str]
) -> str | None:
    label = f"{event.name}@v{_number(registry, event)}"
    version = next((v for v in registry.by_hash(event.hash or "") if v.name == event.name), None)
    if version is None or version.run_id is None:
        notes.append(f"{label}: no run produced it (registered by hand); no tag")
        return None
    try:
        commit = store.find(version.run_id).git_commit
    except UsageError:
        commit = None
    if commit is None:
        notes.append(f"{label}: run {version.run_id} recorded no git commit; no tag")
        return None
    if subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"],
        cwd=root,
        capture_output=True,
        check=False,
    ).returncode:
        notes.append(f"{label}: commit {commit[:8]} is not in this repository; no tag")
        return None
    return commit


def _annotated(message: str, event: Event) -> str:
    return f"{message}\n\nby {event.actor or 'unknown'}, registry event {event.id}"


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"git {args[0]} failed: {exc}", "is git installed?") from None
    if done.returncode:
        raise DataError(
            f"git {args[0]} failed: {done.stderr.strip() or done.returncode}",
            "export-tags needs the project to be a git repository",
        )
    return done.stdout
