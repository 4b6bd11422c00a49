"""`pipeline.lock`: what each stage was last run with and what it produced.

Deterministic, sorted, block-style YAML so that `git diff` shows exactly which hash or param
moved. Written atomically after every successful stage, so an interrupted run leaves the lock as
of the last finished stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.core.atomic import atomic_write_text
from pipeline.core.hashing import HashInfo
from pipeline.core.yamlio import DocumentMemo, dump_yaml, load_yaml, parse_yaml
from pipeline.errors import DataError, ManifestError

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
    env: str | None = None  # the digest of the stage's isolated env, if it has one

    def to_yaml(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "cmd": self.cmd[0] if len(self.cmd) == 1 else list(self.cmd),
            "fingerprint": self.fingerprint,
            "deps": [d.to_yaml() for d in sorted(self.deps, key=lambda d: d.path)],
            "outs": [o.to_yaml() for o in sorted(self.outs, key=lambda o: o.path)],
        }
        if self.params:
            entry["params"] = self.params
        if self.env is not None:
            entry["env"] = self.env
        return entry

    def dep(self, path: str) -> HashInfo | None:
        return next((d.info for d in self.deps if d.path == path), None)

    def out(self, path: str) -> HashInfo | None:
        return next((o.info for o in self.outs if o.path == path), None)


@dataclass(frozen=True)
class Lock:
    """All stage entries of a project's `pipeline.lock`."""

    stages: dict[str, LockEntry] = field(default_factory=dict)
    data: dict[str, HashInfo] = field(default_factory=dict)  # tracked with `pipeline add`

    def with_stage(self, name: str, entry: LockEntry) -> Lock:
        return replace(self, stages={**self.stages, name: entry})

    def with_data(self, path: str, info: HashInfo) -> Lock:
        return replace(self, data={**self.data, path: info})

    def to_yaml(self) -> dict[str, Any]:
        body = {name: self.stages[name].to_yaml() for name in sorted(self.stages)}
        return {**self._data_yaml(), "schema": SCHEMA, "stages": body}

    def _data_yaml(self) -> dict[str, Any]:
        if not self.data:
            return {}
        rows = {p: LockedPath(p, i).to_yaml() for p, i in self.data.items()}
        return {
            "data": {p: {k: v for k, v in row.items() if k != "path"} for p, row in rows.items()}
        }

    def to_text(self) -> str:
        return LockWriter.render_once(self)


class LockWriter:
    """Rewrites `pipeline.lock` after every stage, rendering each entry to YAML only once.

    Re-dumping the whole lock per stage would make a run quadratic in its number of stages;
    joining cached per-stage blocks keeps each rewrite a string join plus one file write. The
    text is identical to dumping `Lock.to_yaml()` in one go (a test holds it to that).
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_NAME
        self._blocks: dict[str, tuple[LockEntry, str]] = {}

    @classmethod
    def render_once(cls, lock: Lock) -> str:
        return cls(Path()).render(lock)

    def write(self, lock: Lock) -> None:
        """Atomically replace the lock file with `lock`."""
        atomic_write_text(self.path, self.render(lock))

    def render(self, lock: Lock) -> str:
        data = lock._data_yaml()  # a handful of entries: dumped whole ("data" sorts first)
        head = dump_yaml(data) if data else ""
        if not lock.stages:
            return head + dump_yaml({"schema": SCHEMA, "stages": {}})
        blocks = [self._block(name, lock.stages[name]) for name in sorted(lock.stages)]
        return head + f"schema: {SCHEMA}\nstages:\n" + "".join(blocks)

    def _block(self, name: str, entry: LockEntry) -> str:
        cached = self._blocks.get(name)
        if cached is None or cached[0] is not entry:
            text = dump_yaml({"stages": {name: entry.to_yaml()}}).removeprefix("stages:\n")
            cached = self._blocks[name] = (entry, text)
        return cached[1]


def read_lock(root: Path, memo: DocumentMemo | None = None) -> Lock:
    """The project's lock, or an empty one if none exists yet."""
    path = root / LOCK_NAME
    if not path.exists():
        return Lock()
    try:
        doc = load_yaml(path, memo, LOCK_NAME)
    except ManifestError as exc:
        raise DataError(f"corrupt lock file: {exc.message}", _HINT) from None
    return parse_lock(doc.data)


def parse_lock_text(text: str, name: str = LOCK_NAME) -> Lock:
    """A lock from its text (e.g. an old commit's), within the input limits; else DataError."""
    try:
        data = parse_yaml(text, Path(name)).data
    except ManifestError as exc:
        raise DataError(f"corrupt lock file: {exc.message}", _HINT) from None
    return parse_lock(data)


def parse_lock(data: Any) -> Lock:
    """A lock from its parsed YAML; a malformed one raises DataError."""
    if data is None:
        return Lock()
    try:
        if data.get("schema") != SCHEMA:
            raise DataError(
                f"{LOCK_NAME} has schema {data.get('schema')!r}; this version reads {SCHEMA}",
                "upgrade pipeline, or delete the lock to rerun every stage",
            )
        stages = {str(n): _parse_entry(e) for n, e in (data.get("stages") or {}).items()}
        tracked = {
            str(p): _parse_path({**e, "path": p}).info for p, e in (data.get("data") or {}).items()
        }
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"corrupt lock file {LOCK_NAME}: {exc!r}", _HINT) from None
    return Lock(stages, tracked)


def _parse_entry(raw: dict[str, Any]) -> LockEntry:
    cmd = raw["cmd"]
    return LockEntry(
        cmd=(cmd,) if isinstance(cmd, str) else tuple(str(c) for c in cmd),
        fingerprint=str(raw["fingerprint"]),
        params={str(f): dict(v) for f, v in (raw.get("params") or {}).items()},
        deps=tuple(_parse_path(d) for d in raw.get("deps") or ()),
        outs=tuple(_parse_path(o) for o in raw.get("outs") or ()),
        env=None if raw.get("env") is None else str(raw["env"]),
    )


def _parse_path(raw: dict[str, Any]) -> LockedPath:
    info = HashInfo(
        str(raw["hash"]), int(raw["size"]), int(raw["nfiles"]), bool(raw.get("isdir", False))
    )
    return LockedPath(str(raw["path"]), info)
