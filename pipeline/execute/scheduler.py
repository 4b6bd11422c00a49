"""Execute step ③: run the stages a plan selected, in parallel where the DAG allows.

The main thread schedules: it starts every stage whose upstream has finished, up to `jobs` CPUs
(a stage's `resources.cpus` count against that budget), and commits each success to
`pipeline.lock`. Worker threads do the stage work: decide again now that upstream has finished
(identical upstream bytes mean no run), delete the declared outs, run the command (with timeout
and retries), check every declared out exists and hash the outs. A stage's outputs are
committed only after it succeeds. After a failure no new stage starts unless `keep_going`.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from pipeline.core.fingerprint import fingerprint
from pipeline.core.hashing import Hasher
from pipeline.core.lockfile import Lock, LockedPath, LockEntry, LockWriter
from pipeline.core.statmemo import init_state_dir
from pipeline.core.syserrors import disk_error, naming
from pipeline.core.textenum import TextEnum
from pipeline.core.waiting import wait_any
from pipeline.env.provision import Provisioner
from pipeline.env.resolve import ResolvedEnv
from pipeline.errors import DataError, PipelineError, StageFailed
from pipeline.execute.command import CommandResult, ProcessTracker, run_commands
from pipeline.execute.options import ExecOptions
from pipeline.execute.outputs import StageCache, clear_outs, hash_outs
from pipeline.execute.stageenv import base_environ, env_environ, foreign_values, with_stagepath
from pipeline.load.project import Project, Stage
from pipeline.plan.decisions import Action, Decision, Plan, Reason, ReasonKind, decide
from pipeline.runs.trackfile import TRACK_DIR, stage_file
from pipeline.runs.trackimport import reads_dvclive


class Outcome(TextEnum):
    """How a stage ended in one run."""

    RAN = "ran"
    RESTORED = "restored"
    UP_TO_DATE = "up to date"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StageResult:
    """One stage's outcome in a run, with why it ran (or not) and how long it took."""

    stage: str
    outcome: Outcome
    decision: Decision
    seconds: float = 0.0
    error: PipelineError | None = None
    note: str = ""
    attempts: int = 0
    started_at: float | None = None  # wall clock, for run records
    exit_code: int | None = None  # the command's, when it ran
    host: str | None = None  # the machine it ran on, when not this one


@dataclass(frozen=True)
class RunResult:
    """Every selected stage's result, in plan order, and the run record it went into."""

    results: tuple[StageResult, ...]
    run_id: str | None = None
    record_error: str | None = None  # the run could not be recorded: why
    remote_error: str | None = None  # the remote run-cache could not be asked: why

    @property
    def failed(self) -> StageResult | None:
        return next((r for r in self.results if r.outcome is Outcome.FAILED), None)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)


class FingerprintGate:
    """One lock per fingerprint, shared by the executors of one process (a sweep's points)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def hold(self, fingerprint: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(fingerprint, threading.Lock())


class Events(Protocol):
    """What the executor reports; `progress.py` prints it. Called from worker threads too."""

    def stage_started(self, stage: Stage, decision: Decision, attempt: int) -> None: ...
    def stage_output(self, stage: Stage, chunk: bytes) -> None: ...
    def stage_finished(self, result: StageResult) -> None: ...


class QuietEvents:
    """Events sink for library use: nothing is printed; logs still go to `.pipeline/logs/`."""

    def stage_started(self, stage: Stage, decision: Decision, attempt: int) -> None:
        pass

    def stage_output(self, stage: Stage, chunk: bytes) -> None:
        pass

    def stage_finished(self, result: StageResult) -> None:
        pass


Work = tuple[StageResult, LockEntry | None]
RUNNER_SLOTS = 64  # stages handed to a runner at once, at least (each waits on a thread)


@dataclass(frozen=True)
class StageSlot:
    """Where a stage's side files go in the driver: its log and its track file."""

    root: Path
    log: Path
    track_file: Path
    run_id: str


@dataclass(frozen=True)
class Ran:
    """A stage that ran: its lock entry, the attempts it took, and where (None: here)."""

    entry: LockEntry
    attempts: int
    host: str | None = None


class StageRunner(Protocol):
    """Runs stages somewhere other than this process (`dispatch.py`); a failed command
    raises `StageFailed`. `cancel` is Ctrl-C: whatever was handed out is called back."""

    def run(self, stage: Stage, decision: Decision, slot: StageSlot, events: Events) -> Ran: ...
    def cancel(self) -> None: ...


class Executor:
    """Runs a plan's stages on a thread pool and records each success in the lock."""

    def __init__(
        self,
        project: Project,
        lock: Lock,
        hasher: Hasher,
        events: Events,
        *,
        options: ExecOptions | None = None,
        cache: StageCache | None = None,
        envs: Provisioner | None = None,
        on_result: Callable[[StageResult, LockEntry | None], None] | None = None,
        gate: FingerprintGate | None = None,
        tracker: ProcessTracker | None = None,
        track: TrackTarget | None = None,
        runner: StageRunner | None = None,
    ) -> None:
        self.project = project
        self.lock = lock
        self.hasher = hasher
        self.events = events
        self.options = options or ExecOptions()
        self.cache = cache
        self.envs = envs or Provisioner()
        self.on_result = on_result
        self.gate = gate
        self.runner = runner  # None: stages run here, as subprocesses
        self.plan_envs: dict[str, ResolvedEnv | None] = {}
        self.tracker = tracker or ProcessTracker()
        self.lock_writer = LockWriter(project.root)
        self.logs = init_state_dir(project.state_dir) / "logs"
        self.logs.mkdir(exist_ok=True)
        # Where stages log values (`pipeline.track`); a run without a record logs into a
        # hidden folder that is dropped after the run (leftover ingestion skips hidden ones).
        self.track = track or TrackTarget(
            "",
            project.state_dir / TRACK_DIR / f".unrecorded-{os.getpid()}-{secrets.token_hex(4)}",
            keep=False,
        )

    def run(self, plan: Plan) -> RunResult:
        """Execute `plan`; on Ctrl-C every running command's process group is stopped."""
        jobs = max(1, self.options.jobs)
        if self.runner is not None:  # the cluster's workers bound how many run at once
            jobs = max(jobs, RUNNER_SLOTS)
        self.plan_envs = {n: d.env for n, d in plan.decisions.items()}
        self.restore = plan.options.run_cache
        schedule = _Schedule(plan, self.project, jobs, remote=self.runner is not None)
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="stage") as pool:
            try:
                self._loop(schedule, pool, jobs)
            except BaseException:
                if self.runner is not None:
                    self.runner.cancel()
                self.tracker.stop_all()
                raise
            finally:
                if not self.track.keep:
                    shutil.rmtree(self.track.folder, ignore_errors=True)
        return RunResult(tuple(schedule.results[name] for name in plan.order))

    def _loop(self, schedule: _Schedule, pool: ThreadPoolExecutor, jobs: int) -> None:
        running: dict[Future[Work], str] = {}
        free = jobs
        while True:
            for name in schedule.startable(free):
                running[pool.submit(self._work, name, schedule.forced(name))] = name
                free -= schedule.cpus(name)
            if not running:
                break
            done = wait_any(running)
            for future in done:
                name = running.pop(future)
                free += schedule.cpus(name)
                result, entry = future.result()
                if entry is not None:
                    self.lock = self.lock.with_stage(name, entry)
                if self.on_result is not None:  # a failed stage's old lock entry is not its own
                    failed = result.outcome is Outcome.FAILED
                    self.on_result(result, None if failed else self.lock.stages.get(name))
                if entry is not None:  # after the record: a kill between never leaves a
                    self._write_lock()  # locked stage that no run recorded
                self.events.stage_finished(result)
                schedule.finish(result, stop=not self.options.keep_going)
        schedule.skip_rest()

    def _write_lock(self) -> None:
        self.lock_writer.write(self.lock)
        if self.hasher.memo is not None:
            self.hasher.memo.flush()

    def _work(self, name: str, forced: bool) -> Work:
        """One stage, in a worker thread: decide again, then run and hash, or skip.

        With a `gate`, a stage whose exact inputs another executor of this process is running
        waits for it, then decides again: usually it is restored from that run.
        """
        decision = self._decide(name, forced)
        if self.gate is None or decision.action is not Action.RUN:
            return self._perform(name, decision)
        stage = self.project.stages[name]
        with self.gate.hold(fingerprint(stage, decision.deps, decision.env_digest)):
            return self._perform(name, self._decide(name, forced))

    def _decide(self, name: str, forced: bool) -> Decision:
        run_cache = self.cache.run_cache if self.cache and self.restore else None
        return decide(
            self.project,
            self.project.stages[name],
            self.lock.stages.get(name),
            self.hasher,
            forced=forced,
            run_cache=run_cache,
            env=self.plan_envs.get(name),
        )

    def _perform(self, name: str, decision: Decision) -> Work:
        stage = self.project.stages[name]
        if decision.action is Action.UP_TO_DATE:
            unchanged = (Reason(ReasonKind.UPSTREAM_UNCHANGED),)
            result = StageResult(name, Outcome.UP_TO_DATE, replace(decision, reasons=unchanged))
            return result, None
        started, wall = time.monotonic(), time.time()
        if decision.action is Action.RESTORE:
            restored = self._restore(stage, decision, started, wall)
            if restored is not None:
                return restored
            decision = replace(
                decision,
                action=Action.RUN,
                cached=None,
                reasons=(*decision.reasons[:-1], Reason(ReasonKind.CACHE_CORRUPT)),
            )
        try:
            _check_runnable(stage, decision)
            ran = self._run_stage(stage, decision)
        except PipelineError as exc:
            seconds = time.monotonic() - started
            code = exc.returncode if isinstance(exc, StageFailed) else None
            failed = StageResult(
                name, Outcome.FAILED, decision, seconds, exc, started_at=wall, exit_code=code
            )
            return failed, None
        except OSError as exc:  # e.g. a missing `wdir`: this stage fails, not the whole run
            seconds = time.monotonic() - started
            error = disk_error(exc) or DataError(  # a full disk says where and how much
                f"stage {name}: {exc.strerror or exc}: {exc.filename or ''}".strip(),
                "check the stage's wdir and paths",
            )
            broken = StageResult(name, Outcome.FAILED, decision, seconds, error, started_at=wall)
            return broken, None
        seconds = time.monotonic() - started
        done = StageResult(
            name,
            Outcome.RAN,
            decision,
            seconds,
            attempts=ran.attempts,
            started_at=wall,
            exit_code=0,
            host=ran.host,
        )
        return done, ran.entry

    def _restore(
        self, stage: Stage, decision: Decision, started: float, wall: float
    ) -> Work | None:
        """Bring a cached run back; None if an object turned out corrupt (then: run it)."""
        assert self.cache is not None
        try:
            entry = self.cache.restore(stage, decision)
        except DataError:
            return None
        seconds = time.monotonic() - started
        return StageResult(stage.name, Outcome.RESTORED, decision, seconds, started_at=wall), entry

    def _run_stage(self, stage: Stage, decision: Decision) -> Ran:
        if self.runner is None:
            return Ran(*self._run_with_retries(stage, decision))
        slot = StageSlot(
            self.project.root, self._log_path(stage), self.track_file(stage.name), self.track.run_id
        )
        return self.runner.run(stage, decision, slot, self.events)

    def _run_with_retries(self, stage: Stage, decision: Decision) -> tuple[LockEntry, int]:
        for attempt in range(1, stage.retries + 1):
            entry = self._attempt(stage, decision, attempt)
            if entry is not None:
                return entry, attempt
        last = stage.retries + 1
        entry = self._attempt(stage, decision, last)
        assert entry is not None  # the last attempt raises instead of returning None
        return entry, last

    def _attempt(self, stage: Stage, decision: Decision, attempt: int) -> LockEntry | None:
        """Run the stage once; None means it failed and a retry is left."""
        self.events.stage_started(stage, decision, attempt)
        with self._environ(stage, decision) as environ:
            clear_outs(stage, self.hasher, self.project.root)
            since = time.time()
            result = self._command(stage, environ)
        self._import_tracked(stage, since)
        try:
            if result.code != 0 or result.timed_out:  # a stage may trap SIGTERM and exit 0
                raise StageFailed(
                    stage.name,
                    exit_message(stage, result),
                    self._log_hint(stage),
                    returncode=result.code,
                )
            outs = hash_outs(stage, self.hasher)
        except StageFailed as exc:
            if attempt <= stage.retries and not self.tracker.cancelled.is_set():
                return None
            if attempt > 1:
                exc.message += f" (attempt {attempt} of {stage.retries + 1})"
            raise
        entry = LockEntry(
            cmd=stage.cmd,
            fingerprint=fingerprint(stage, decision.deps, decision.env_digest),
            params=stage.params,
            deps=tuple(LockedPath(p, i) for p, i in decision.deps.items() if i is not None),
            outs=tuple(LockedPath(p, i) for p, i in outs.items()),
            env=decision.env_digest,
        )
        if self.cache is not None:
            self.cache.commit(stage, entry, self._log_path(stage))
        return entry

    @contextlib.contextmanager
    def _environ(self, stage: Stage, decision: Decision) -> Iterator[dict[str, str]]:
        """The stage's environment variables: its env built if need be, activated, and held.

        PYTHONPATH gains (last) a directory holding only `pipeline`, so stage code can
        `import pipeline.models` in its own env; PIPELINE_ENV_LOCK/KIND say what the env was
        built from, for the model package. None of it enters a fingerprint.
        """
        base = base_environ(
            self.project.root, stage.name, self.track.run_id, self.track_file(stage.name)
        )
        if decision.env is None:
            yield with_stagepath(base)
            return

        def say(text: str) -> None:
            self.events.stage_output(stage, text.encode())

        env = decision.env
        with self.envs.activated(env, say) as built:
            yield env_environ(base, built, env)

    def track_file(self, stage: str) -> Path:
        """Where `stage` appends the values it logs (`PIPELINE_TRACK_FILE`)."""
        return stage_file(self.track.folder, stage)

    def _import_tracked(self, stage: Stage, since: float) -> None:
        """Append what the stage logged with DVCLive or MLflow to its track file."""
        cwd = Path(self.hasher.bounds.path(stage.wdir)) if stage.wdir != "." else self.project.root
        dvclive = reads_dvclive(self.project.stages.values(), stage)
        lines = foreign_values(cwd, self.track_file(stage.name), since, dvclive=dvclive)
        if lines:
            with contextlib.suppress(OSError), self.track_file(stage.name).open("a") as fh:
                fh.write(lines)

    def _command(self, stage: Stage, env: dict[str, str]) -> CommandResult:
        cwd = Path(self.hasher.bounds.path(stage.wdir)) if stage.wdir != "." else self.project.root
        log_path = self._log_path(stage)
        log_path.unlink(missing_ok=True)  # the last log may be a hardlink into the cache
        with naming(log_path), open(log_path, "wb") as log:  # a full disk names the log
            sink = _tee(log.write, lambda chunk: self.events.stage_output(stage, chunk))
            return run_commands(
                stage.cmd, cwd, env, sink, timeout=stage.timeout, tracker=self.tracker
            )

    def _log_path(self, stage: Stage) -> Path:
        path = self.logs / f"{stage.name}.log"
        # a stage of a manifest below the root (`sub/dvc.yaml:train`) logs in a subfolder
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _log_hint(self, stage: Stage) -> str:
        return f"full output in {self._log_path(stage).relative_to(self.project.root)}"


class _Schedule:
    """Which stages may start: upstream finished, CPUs free, and no failure blocking them."""

    def __init__(self, plan: Plan, project: Project, jobs: int, *, remote: bool = False) -> None:
        self.plan = plan
        self.project = project
        self.jobs = jobs
        self.remote = remote  # stages run elsewhere: their CPUs are the cluster's to count
        self.position = {name: i for i, name in enumerate(plan.order)}
        selected = set(plan.order)
        # A frozen stage never runs, so nothing upstream can block it (DVC drops its edges).
        self.upstream = {
            n: []
            if project.stages[n].frozen
            else [u for u in project.graph.upstream[n] if u in selected]
            for n in plan.order
        }
        self.downstream: dict[str, list[str]] = {n: [] for n in plan.order}
        for name, ups in self.upstream.items():
            for up in ups:
                self.downstream[up].append(name)
        self.waiting = {n: len(ups) for n, ups in self.upstream.items()}
        self.ready = [self.position[n] for n, count in self.waiting.items() if count == 0]
        heapq.heapify(self.ready)
        self.results: dict[str, StageResult] = {}
        self.failed: list[str] = []
        self.stopped = False

    def cpus(self, name: str) -> int:
        """CPUs a stage holds while it runs; more than `jobs` would never fit, so it is capped.
        A stage on a cluster holds one driver thread: the workers' resources bound the rest."""
        if self.remote:
            return 1
        return max(1, min(self.project.stages[name].cpus, self.jobs))

    def forced(self, name: str) -> bool:
        """Forced by `-f`, or by `--force-downstream` because an upstream stage ran."""
        if name in self.plan.forced:
            return True
        ran = (self.results[u].outcome in _PRODUCED for u in self.upstream[name])
        return self.plan.options.force_downstream and any(ran)

    def startable(self, free: int) -> list[str]:
        """Stages to submit now; up-to-date and blocked stages are settled without a thread."""
        chosen: list[str] = []
        deferred: list[int] = []
        while self.ready and not self.stopped:
            name = self.plan.order[heapq.heappop(self.ready)]
            if self._settle_without_running(name):
                continue
            if self.cpus(name) <= free:
                chosen.append(name)
                free -= self.cpus(name)
            else:
                deferred.append(self.position[name])
        for pos in deferred:
            heapq.heappush(self.ready, pos)
        return chosen

    def _settle_without_running(self, name: str) -> bool:
        blocked = [u for u in self.upstream[name] if self.results[u].outcome in _BLOCKING]
        decision = self.plan.decisions[name]
        if blocked:
            note = f"upstream {blocked[0]} " + self.results[blocked[0]].outcome.value
            self.finish(StageResult(name, Outcome.SKIPPED, decision, note=note), stop=False)
        elif decision.action is Action.UP_TO_DATE:
            self.finish(StageResult(name, Outcome.UP_TO_DATE, decision), stop=False)
        else:
            return False
        return True

    def finish(self, result: StageResult, *, stop: bool) -> None:
        self.results[result.stage] = result
        if result.outcome is Outcome.FAILED:
            self.failed.append(result.stage)
            self.stopped = self.stopped or stop
        for down in self.downstream[result.stage]:
            self.waiting[down] -= 1
            if self.waiting[down] == 0:
                heapq.heappush(self.ready, self.position[down])

    def skip_rest(self) -> None:
        """After a stop, every stage that never started is skipped, saying why."""
        note = f"not started: {self.failed[0]} failed" if self.failed else "not started"
        for name in self.plan.order:
            if name not in self.results:
                decision = self.plan.decisions[name]
                self.results[name] = StageResult(name, Outcome.SKIPPED, decision, note=note)


_BLOCKING = (Outcome.FAILED, Outcome.SKIPPED)
_PRODUCED = (Outcome.RAN, Outcome.RESTORED)


def _check_runnable(stage: Stage, decision: Decision) -> None:
    if stage.frozen:
        out = next(r.subject for r in decision.reasons if r.kind == "out missing")
        raise DataError(
            f"stage {stage.name} is frozen, and its output {out} is missing",
            "restore the output, or set `frozen: false` to let the stage rebuild it",
        )
    params = [r.subject for r in decision.reasons if r.kind == "param missing"]
    if params:  # a `params:` key its file lacks fails this stage only, as in DVC
        file, _, key = params[0].partition(":")
        raise StageFailed(
            stage.name,
            f"stage {stage.name}: param {key!r} is missing from {file}",
            f"add {key} to {file}, or remove it from the stage's `params:`",
        )
    missing = [p for p, info in decision.deps.items() if info is None]
    if missing:
        raise DataError(
            f"stage {stage.name}: dependency {missing[0]} does not exist",
            "create it, or add the stage that produces it to the manifest",
        )


def exit_message(stage: Stage, result: CommandResult) -> str:
    """Why a stage's command failed, as the run record and the terminal say it."""
    if result.timed_out:
        return f"stage {stage.name} timed out after {_duration(stage.timeout or 0)}"
    if result.code < 0:
        return f"stage {stage.name} was killed by signal {-result.code}"
    return f"stage {stage.name} failed with exit code {result.code}"


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class TrackTarget:
    """Where a run's stages log values: the run's id and its track folder.

    `keep`: the folder is the recorder's to ingest and remove; otherwise the executor drops it.
    """

    run_id: str
    folder: Path
    keep: bool = True


def _tee(*sinks: Callable[[bytes], object]) -> Callable[[bytes], None]:
    def write(chunk: bytes) -> None:
        for sink in sinks:
            sink(chunk)

    return write
