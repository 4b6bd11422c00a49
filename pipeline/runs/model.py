"""What the run store holds, as plain frozen dataclasses (no SQLAlchemy needed to build them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.textenum import TextEnum


class RunStatus(TextEnum):
    """Where a run is: `running` until it ends (a dead `running` run reads as `interrupted`)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RunRow:
    """One run as stored (`status` already says `interrupted` for a dead `running` run).

    `missing_objects` is not stored: readers that look at the cache set it when an object the
    run needs (an output, a kept params file or lock, a log) is gone from it.
    """

    id: str
    kind: str
    command: str
    started_at: float
    status: RunStatus
    name: str | None = None
    parent_id: str | None = None
    ended_at: float | None = None
    user: str | None = None
    host: str | None = None
    pid: int | None = None
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    note: str | None = None
    missing_objects: bool = False

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RunStatus(self.status))  # as stored: its text

    def to_json(self) -> dict[str, Any]:
        """The stored columns (what the store and shared run records hold)."""
        data = {k: getattr(self, k) for k in STORED_COLUMNS}
        return {**data, "status": self.status.value}


STORED_COLUMNS = tuple(k for k in RunRow.__dataclass_fields__ if k != "missing_objects")


@dataclass(frozen=True)
class Artifact:
    """A dep or out of a stage run, by content."""

    path: str
    hash: str
    size: int | None = None
    nfiles: int | None = None


@dataclass(frozen=True)
class StageRow:
    """One stage's part in a run."""

    stage: str
    outcome: str
    fingerprint: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    attempts: int | None = None
    cmd: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    env_name: str | None = None
    env_digest: str | None = None
    packages: tuple[tuple[str, ...], ...] | None = None
    log_hash: str | None = None
    error: str | None = None
    deps: tuple[Artifact, ...] = ()
    outs: tuple[Artifact, ...] = ()
    host: str | None = None  # the machine it ran on, when not the run's (a cluster worker)

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["deps"] = [a.__dict__ for a in self.deps]
        data["outs"] = [a.__dict__ for a in self.outs]
        return data

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StageRow:
        """A `StageRow` back from its `to_json` (a journal line or a shared run record)."""
        values = dict(raw)
        values["cmd"] = tuple(values.get("cmd") or ())
        values["reasons"] = tuple(values.get("reasons") or ())
        if values.get("packages") is not None:
            values["packages"] = tuple(tuple(row) for row in values["packages"])
        values["deps"] = tuple(Artifact(**a) for a in values.get("deps") or ())
        values["outs"] = tuple(Artifact(**a) for a in values.get("outs") or ())
        return cls(**values)


@dataclass(frozen=True)
class RunObjects:
    """The cached objects one recorded run needs: `checkout RUN`, `runs show` and logs read them.

    A directory output's hash names its listing; the files it lists are needed too.
    """

    run_id: str
    outs: tuple[Artifact, ...] = ()  # every stage's outputs
    files: tuple[Artifact, ...] = ()  # the params files and lock an experiment kept
    logs: tuple[str, ...] = ()

    def hashes(self) -> set[str]:
        return {a.hash for a in (*self.outs, *self.files)} | set(self.logs)


@dataclass(frozen=True)
class RunDetail:
    """Everything recorded about one run."""

    run: RunRow
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    stages: tuple[StageRow, ...] = ()
    children: tuple[RunRow, ...] = ()
