"""What the run store holds, as plain frozen dataclasses (no SQLAlchemy needed to build them)."""

from __future__ import annotations

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
    """One run as stored (`status` already says `interrupted` for a dead `running` run)."""

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

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RunStatus(self.status))  # as stored: its text

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {**data, "status": self.status.value}


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

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["deps"] = [a.__dict__ for a in self.deps]
        data["outs"] = [a.__dict__ for a in self.outs]
        return data


@dataclass(frozen=True)
class RunDetail:
    """Everything recorded about one run."""

    run: RunRow
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    stages: tuple[StageRow, ...] = ()
    children: tuple[RunRow, ...] = ()
