"""What `gc` keeps for recorded runs and running experiments, and dropping runs from the store.

A recorded run needs its stages' outputs (a directory's listing and the files it lists), the
params files and lock an experiment kept (and every output that lock names, for
`checkout RUN`), and its logs. Packages in the model registry are kept too. Runs leave only
when dropped explicitly (`--runs-older-than`, `--drop-runs`).

`pipeline run` does not hold the project lock, so `gc` may run while an experiment writes.
Its leases (`runs/workspaces.py`) say so: while one is live, every object at least as new as
the oldest live lease is kept (whatever it belongs to, it may be the experiment's), and so is
everything a live workspace's lock already names (outputs restored from older objects).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.hashing import HashInfo
from pipeline.core.lockfile import LOCK_NAME, Lock, parse_lock, read_lock
from pipeline.errors import PipelineError, UsageError
from pipeline.runs.model import Artifact, RunObjects, RunStatus
from pipeline.runs.runstore import RunStore, has_store
from pipeline.runs.workspaces import Owner, live_owners, runs_dir
from pipeline.store.objects import ObjectStore

CLOCK_SLACK = 2.0  # seconds: file times lag `time.time()` by up to a clock tick
_TREE_START = b'[{"path":'  # how every directory listing begins (`hashing.tree_manifest`)
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([hdw])\s*")
_UNIT_SECONDS = {"h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class RunDrop:
    """Which recorded runs `gc` drops: started more than `older_than` seconds ago, and `refs`
    (ids, id prefixes, names); a sweep goes with its points."""

    older_than: float | None = None
    refs: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.older_than is not None or bool(self.refs)


def parse_age(text: str) -> float:
    """`30d`, `12h`, `2w` → seconds; anything else is a usage error."""
    match = _AGE.fullmatch(text)
    if match is None:
        raise UsageError(
            f"--runs-older-than: {text!r} is not an age",
            "give a number with a unit: h (hours), d (days) or w (weeks), e.g. 30d",
        )
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def runs_to_drop(store: RunStore, drop: RunDrop) -> list[str]:
    """The ids `drop` selects, sweeps with their points; a run still running is never one."""
    chosen = [store.find(ref) for ref in drop.refs]
    for run in chosen:
        if run.status is RunStatus.RUNNING:
            raise UsageError(f"run {run.id} is still running", "drop it once it has ended")
    if drop.older_than is not None:
        old = store.started_before(time.time() - drop.older_than)
        chosen += [r for r in old if r.status is not RunStatus.RUNNING]
    ids = {r.id for r in chosen}
    ids.update(c for points in store.children_of(sorted(ids)).values() for c in points)
    return sorted(ids)


def open_runs(state_dir: Path) -> RunStore | None:
    """The project's run store, if it has one (gc never creates it)."""
    return RunStore.for_project(state_dir) if has_store(state_dir) else None


def registered(store: ObjectStore, runs: RunStore) -> set[str]:
    """Every package the model registry names, with its files: a registered version stays
    servable even after the run that made it is dropped."""
    from pipeline.runs.registry import Registry  # noqa: PLC0415 - only when a store exists

    keep = Registry(runs).hashes()
    return keep.union(*(_listed(store, digest) for digest in keep))


def run_needs(store: ObjectStore, runs: Iterable[RunObjects]) -> set[str]:
    """Every object the runs need: their own, listed files, and what their kept locks name."""
    keep: set[str] = set()
    locks: list[Lock] = []
    for run in runs:
        keep |= run.hashes()
        for out in run.outs:
            keep.update(_listed(store, out.hash))
        locks += [lock for f in run.files if (lock := _kept_lock(store, f)) is not None]
    return keep | lock_needs(store, locks)


def lock_needs(store: ObjectStore, locks: Iterable[Lock]) -> set[str]:
    """What the locks name: outputs and tracked data, directories with their files."""
    keep: set[str] = set()
    for lock in locks:
        infos: list[HashInfo] = [o.info for e in lock.stages.values() for o in e.outs]
        for info in [*infos, *lock.data.values()]:
            keep.add(info.hash)
            if info.isdir:
                keep.update(_listed(store, info.hash))
    return keep


def _listed(store: ObjectStore, digest: str) -> list[str]:
    """The objects a directory listing names; nothing when `digest` is not a listing.

    A run record does not say which outputs are directories: a listing is recognised by how it
    begins, and a file that merely looks like one only keeps more (never less).
    """
    try:
        with open(store.path(digest), "rb") as fh:
            if fh.read(len(_TREE_START)) != _TREE_START:
                return []
            rows = json.loads(_TREE_START + fh.read())
    except (OSError, ValueError, PipelineError):
        return []
    if not isinstance(rows, list):
        return []
    return [r["hash"] for r in rows if isinstance(r, dict) and isinstance(r.get("hash"), str)]


def _kept_lock(store: ObjectStore, kept: Artifact) -> Lock | None:
    """The lock an experiment kept (its outputs are what `checkout RUN` restores)."""
    if not kept.path.endswith(LOCK_NAME) or not store.has(kept.hash):
        return None
    from pipeline.core.yamlio import parse_yaml, read_document  # noqa: PLC0415 - PyYAML only when needed

    path = store.path(kept.hash)
    with contextlib.suppress(PipelineError, ValueError, OSError):
        return parse_lock(parse_yaml(read_document(path), path).data)
    return None


@dataclass(frozen=True)
class Live:
    """Experiments running now: since when (the oldest lease), and what their locks name."""

    owners: tuple[Owner, ...]
    named: frozenset[str]

    @property
    def since(self) -> float | None:
        """Objects at least this new may be a running experiment's (None: nothing runs)."""
        if not self.owners:
            return None
        return min(o.started_at for o in self.owners) - CLOCK_SLACK


def live_experiments(state_dir: Path, store: ObjectStore) -> Live:
    """Read before the run store: a run that ends afterwards is covered by its lease's time."""
    owners = tuple(live_owners(state_dir))
    locks = []
    for owner in owners:
        with contextlib.suppress(PipelineError, OSError):
            workspace = runs_dir(state_dir) / owner.name
            if (workspace / LOCK_NAME).is_file():
                locks.append(read_lock(workspace))
    return Live(owners, frozenset(lock_needs(store, locks)))


def fresh_objects(store: ObjectStore, since: float | None) -> set[str]:
    """The objects whose file is at least as new as `since` (none when `since` is None)."""
    if since is None:
        return set()
    fresh = set()
    for digest in store.all_objects():
        with contextlib.suppress(OSError):
            if os.stat(store.path(digest)).st_mtime >= since:
                fresh.add(digest)
    return fresh


def drop_runs(
    state_dir: Path, store: ObjectStore, drop: RunDrop, *, dry: bool
) -> tuple[list[str], set[str]]:
    """Drop the runs `drop` selects (unless `dry`); returns their ids and what the others need.

    With `dry`, the dropped runs are left out of the needs as if they had gone.
    """
    runs = open_runs(state_dir)
    if runs is None:
        if drop.refs:
            raise UsageError(f"no run {drop.refs[0]!r}: no run is recorded yet")
        return [], set()
    try:
        dropped = runs_to_drop(runs, drop) if drop else []
        if dropped and not dry:
            runs.drop(dropped)
        gone = set(dropped)
        needs = runs.objects_of()
        remaining: Sequence[RunObjects] = [r for i, r in needs.items() if i not in gone]
        return dropped, run_needs(store, remaining) | registered(store, runs)
    finally:
        runs.close()
