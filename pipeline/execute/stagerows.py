"""A stage's run record, built from its result and lock entry, with its log and packages.

The scheduler reports a `StageResult`; this turns it into the plain `StageRow` the run store
keeps: the reasons it ran, the env it ran in (and that env's package list), its log object.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.hashing import HashInfo, digest_bytes
from pipeline.core.lockfile import LockEntry
from pipeline.env.envstore import EnvStore
from pipeline.execute.scheduler import Outcome, StageResult
from pipeline.load.project import Project
from pipeline.runs.model import Artifact, StageRow
from pipeline.runs.record import param_key
from pipeline.store.objects import ObjectStore
from pipeline.store.runcache import RunCache


class StageRows:
    """Builds a stage's record from its result and lock entry, adding its log and packages."""

    def __init__(self, project: Project, store: ObjectStore, run_cache: RunCache) -> None:
        self.project = project
        self.store = store
        self.run_cache = run_cache
        self.envs = EnvStore()
        self.logs = project.state_dir / "logs"

    def row(self, result: StageResult, entry: LockEntry | None) -> StageRow:
        decision = result.decision
        stage = self.project.stages[result.stage]
        ended = (result.started_at + result.seconds) if result.started_at else None
        return StageRow(
            stage=result.stage,
            outcome=result.outcome.value,
            fingerprint=entry.fingerprint if entry else None,
            started_at=result.started_at,
            ended_at=ended,
            exit_code=result.exit_code,
            attempts=result.attempts or None,
            cmd=stage.cmd,
            reasons=_reasons(result),
            params={param_key(f, k): v for f, vs in stage.params.items() for k, v in vs.items()},
            env_name=decision.env.name if decision.env else None,
            env_digest=decision.env_digest,
            packages=self._packages(decision.env_digest),
            log_hash=self._log(result, entry),
            error=result.error.message if result.error else None,
            deps=tuple(Artifact(d.path, *_info(d.info)) for d in entry.deps) if entry else (),
            outs=tuple(Artifact(o.path, *_info(o.info)) for o in entry.outs) if entry else (),
            host=result.host,
        )

    def _packages(self, digest: str | None) -> tuple[tuple[str, ...], ...] | None:
        built = self.envs.lookup(digest) if digest else None
        if built is None:
            return None
        rows = [*built.packages, *built.meta.get("pip_packages", [])]
        return tuple(tuple(str(part) for part in row) for row in rows)

    def _log(self, result: StageResult, entry: LockEntry | None) -> str | None:
        if result.outcome is Outcome.RESTORED and result.decision.cached is not None:
            return result.decision.cached.log
        if result.outcome is Outcome.RAN and entry is not None:
            cached = self.run_cache.get(entry.fingerprint)
            return cached.log if cached else None
        if result.outcome is Outcome.FAILED:
            return self._store_log(self.logs / f"{result.stage}.log")
        return None

    def _store_log(self, path: Path) -> str | None:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        digest = digest_bytes(data)
        self.store.put_bytes(data, digest)
        return digest


def _reasons(result: StageResult) -> tuple[str, ...]:
    reasons = tuple(str(r) for r in result.decision.reasons)
    return (*reasons, result.note) if result.note else reasons


def _info(info: HashInfo) -> tuple[str, int, int]:
    return info.hash, info.size, info.nfiles
