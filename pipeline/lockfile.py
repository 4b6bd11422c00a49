"""`pipeline.lock`: what each stage was last run with and what it produced.

Deterministic, sorted, block-style YAML so that `git diff` shows exactly which hash or param
moved. Written atomically after every successful stage, so an interrupted run leaves the lock as
of the last finished stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.errors import DataError, ManifestError
from pipeline.hashing import HashInfo
from pipeline.yamlio import atomic_write_text, dump_yaml, load_yaml

LOCK_NAME = "pipeline.lock"
SCHEMA = 1
_HINT = "restore it with `git checkout pipeline.lock`, or delete it to rerun every stage"


@dataclass(frozen=True)
class LockedPath:
    """One dep or out as recorded: its path and content summary."""

    path: str
    info: HashInfo

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "hash": self.info.hash,
            "size": self.info.size,
            "nfiles": self.info.nfiles,
        }
        if self.info.isdir:
            out["isdir"] = True
        return out


@dataclass(frozen=True)
class LockEntry:
    """The record of one stage's last successful run."""

    cmd: tuple[str, ...]
    fingerprint: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    deps: tuple[LockedPath, ...] = ()
    outs: tuple[LockedPath, ...] = ()

    def to_yaml(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "cmd": self.cmd[0] if len(self.cmd) == 1 else list(self.cmd),
            "fingerprint": self.fingerprint,
            "deps": [d.to_yaml() for d in sorted(self.deps, key=lambda d: d.path)],
            "outs": [o.to_yaml() for o in sorted(self.outs, key=lambda o: o.path)],
        }
        if self.params:
            entry["params"] = self.params
        return entry

    def dep(self, path: str) -> HashInfo | None:
        return next((d.info for d in self.deps if d.path == path), None)

    def out(self, path: str) -> HashInfo | None:
        return next((o.info for o in self.outs if o.path == path), None)


@dataclass(frozen=True)
class Lock:
    """All stage entries of a project's `pipeline.lock`."""

    stages: dict[str, LockEntry] = field(default_factory=dict)

    def with_stage(self, name: str, entry: LockEntry) -> Lock:
        return replace(self, stages={**self.stages, name: entry})

    def to_text(self) -> str:
        body = {name: self.stages[name].to_yaml() for name in sorted(self.stages)}
        return dump_yaml({"schema": SCHEMA, "stages": body})


def read_lock(root: Path) -> Lock:
    """The project's lock, or an empty one if none exists yet."""
    path = root / LOCK_NAME
    if not path.exists():
        return Lock()
    try:
        doc = load_yaml(path)
    except ManifestError as exc:
        raise DataError(f"corrupt lock file: {exc.message}", _HINT) from None
    return _parse(doc.data)


def write_lock(root: Path, lock: Lock) -> None:
    """Atomically replace `pipeline.lock`."""
    atomic_write_text(root / LOCK_NAME, lock.to_text())


def _parse(data: Any) -> Lock:
    if data is None:
        return Lock()
    try:
        if data.get("schema") != SCHEMA:
            raise DataError(
                f"{LOCK_NAME} has schema {data.get('schema')!r}; this version reads {SCHEMA}",
                "upgrade pipeline, or delete the lock to rerun every stage",
            )
        stages = {str(n): _parse_entry(e) for n, e in (data.get("stages") or {}).items()}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"corrupt lock file {LOCK_NAME}: {exc!r}", _HINT) from None
    return Lock(stages)


def _parse_entry(raw: dict[str, Any]) -> LockEntry:
    cmd = raw["cmd"]
    return LockEntry(
        cmd=(cmd,) if isinstance(cmd, str) else tuple(str(c) for c in cmd),
        fingerprint=str(raw["fingerprint"]),
        params={str(f): dict(v) for f, v in (raw.get("params") or {}).items()},
        deps=tuple(_parse_path(d) for d in raw.get("deps") or ()),
        outs=tuple(_parse_path(o) for o in raw.get("outs") or ()),
    )


def _parse_path(raw: dict[str, Any]) -> LockedPath:
    info = HashInfo(
        str(raw["hash"]), int(raw["size"]), int(raw["nfiles"]), bool(raw.get("isdir", False))
    )
    return LockedPath(str(raw["path"]), info)
