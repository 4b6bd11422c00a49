"""Execute step ③: run the stages a plan selected, in order, and commit each success to the lock.

Per stage: decide again now that upstream has finished (identical upstream bytes mean no run),
delete the declared outs, run the command, check every declared out exists, hash the outs and
rewrite `pipeline.lock` atomically. A stage's outputs are committed only after it succeeds.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Protocol

from pipeline.command import run_commands
from pipeline.errors import DataError, StageFailed
from pipeline.fingerprint import fingerprint
from pipeline.hashing import Hasher, HashInfo
from pipeline.lockfile import Lock, LockedPath, LockEntry, LockWriter
from pipeline.plan import Action, Decision, Plan, Reason, decide
from pipeline.project import Project, Stage
from pipeline.state import init_state_dir


class Outcome(str, Enum):
    """How a stage ended in one run."""

    RAN = "ran"
    UP_TO_DATE = "up to date"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StageResult:
    """One stage's outcome in a run, with why it ran and how long it took."""

    stage: str
    outcome: Outcome
    decision: Decision
    seconds: float = 0.0
    error: StageFailed | None = None


@dataclass(frozen=True)
class RunResult:
    """Every selected stage's result, in execution order."""

    results: tuple[StageResult, ...]

    @property
    def failed(self) -> StageResult | None:
        return next((r for r in self.results if r.outcome is Outcome.FAILED), None)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)


class Events(Protocol):
    """What the executor tells its caller; `report.ConsoleEvents` prints it."""

    def stage_started(self, stage: Stage, decision: Decision) -> None: ...
    def stage_output(self, stage: Stage, chunk: bytes) -> None: ...
    def stage_finished(self, result: StageResult) -> None: ...


class QuietEvents:
    """Events sink for library use: nothing is printed; logs still go to `.pipeline/logs/`."""

    def stage_started(self, stage: Stage, decision: Decision) -> None:
        pass

    def stage_output(self, stage: Stage, chunk: bytes) -> None:
        pass

    def stage_finished(self, result: StageResult) -> None:
        pass


class Executor:
    """Runs a plan's stages one after another; stops at the first failure."""

    def __init__(self, project: Project, lock: Lock, hasher: Hasher, events: Events) -> None:
        self.project = project
        self.lock = lock
        self.hasher = hasher
        self.events = events
        self.lock_writer = LockWriter(project.root)
        self.logs = init_state_dir(project.state_dir) / "logs"
        self.logs.mkdir(exist_ok=True)

    def run(self, plan: Plan) -> RunResult:
        results: list[StageResult] = []
        for i, name in enumerate(plan.order):
            result = self._stage(plan, name)
            self.events.stage_finished(result)
            results.append(result)
            if result.outcome is Outcome.FAILED:
                rest = plan.order[i + 1 :]
                results += [StageResult(n, Outcome.SKIPPED, plan.decisions[n]) for n in rest]
                break
        return RunResult(tuple(results))

    def _stage(self, plan: Plan, name: str) -> StageResult:
        decision = plan.decisions[name]
        if decision.action is Action.UP_TO_DATE:
            return StageResult(name, Outcome.UP_TO_DATE, decision)
        stage = self.project.stages[name]
        decision = decide(
            self.project,
            stage,
            self.lock.stages.get(name),
            self.hasher,
            forced=name in plan.forced,
        )
        if decision.action is Action.UP_TO_DATE:
            unchanged = (Reason("upstream outputs unchanged"),)
            return StageResult(name, Outcome.UP_TO_DATE, replace(decision, reasons=unchanged))
        started = time.monotonic()
        try:
            self._run(stage, decision)
        except StageFailed as exc:
            return StageResult(name, Outcome.FAILED, decision, time.monotonic() - started, exc)
        return StageResult(name, Outcome.RAN, decision, time.monotonic() - started)

    def _run(self, stage: Stage, decision: Decision) -> None:
        _require_deps(stage, decision)
        self.events.stage_started(stage, decision)
        self._clear_outs(stage)
        code = self._command(stage)
        if code != 0:
            raise StageFailed(
                stage.name,
                f"stage {stage.name} failed with exit code {code}",
                f"full output in {self._log_path(stage).relative_to(self.project.root)}",
            )
        outs = self._hash_outs(stage)
        entry = LockEntry(
            cmd=stage.cmd,
            fingerprint=fingerprint(stage, decision.deps),
            params=stage.params,
            deps=tuple(LockedPath(p, i) for p, i in decision.deps.items() if i is not None),
            outs=tuple(LockedPath(p, i) for p, i in outs.items()),
        )
        self.lock = self.lock.with_stage(stage.name, entry)
        self.lock_writer.write(self.lock)
        if self.hasher.state is not None:
            self.hasher.state.flush()

    def _clear_outs(self, stage: Stage) -> None:
        for out in stage.outs:
            path = self.project.root / out.path
            self.hasher.forget(out.path)
            if not out.persist:
                _remove(path)
            path.parent.mkdir(parents=True, exist_ok=True)

    def _command(self, stage: Stage) -> int:
        env = {**os.environ, "PIPELINE_ROOT": str(self.project.root), "PIPELINE_STAGE": stage.name}
        with open(self._log_path(stage), "wb") as log:
            sink = _tee(log.write, lambda chunk: self.events.stage_output(stage, chunk))
            return run_commands(stage.cmd, self.project.root, env, sink)

    def _log_path(self, stage: Stage) -> Path:
        return self.logs / f"{stage.name}.log"

    def _hash_outs(self, stage: Stage) -> dict[str, HashInfo]:
        hashes: dict[str, HashInfo] = {}
        for out in stage.outs:
            self.hasher.forget(out.path)
            info = self.hasher.hash(out.path)
            if info is None:
                raise StageFailed(
                    stage.name,
                    f"stage {stage.name} did not create {out.path}",
                    "the command succeeded but never wrote this declared output",
                )
            hashes[out.path] = info
        return hashes


def _require_deps(stage: Stage, decision: Decision) -> None:
    missing = [p for p, info in decision.deps.items() if info is None]
    if missing:
        raise DataError(
            f"stage {stage.name}: dependency {missing[0]} does not exist",
            "create it, or add the stage that produces it to the manifest",
        )


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _tee(*sinks: Callable[[bytes], object]) -> Callable[[bytes], None]:
    def write(chunk: bytes) -> None:
        for sink in sinks:
            sink(chunk)

    return write
