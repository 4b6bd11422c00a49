"""Stages run elsewhere: the driver's half of a stage job (`stagejob.py`).

`JobRunner` is the executor's stage runner when stages leave this process. Once per run it
ships the project's source (the files `git ls-files -co --exclude-standard` lists, minus every
stage's outs and the state directory) to the remote as content-addressed objects plus one tree
object, so only what changed since the last run travels. For each stage it builds a
`StageJob`, hands it to a `JobBackend` (in this process, or a Dask cluster), and on success
fetches the outs into the cache, verified, checks them out into the workspace and commits
the lock entry and run-cache entry exactly as for a local stage. A non-zero exit is a failed
stage (retried only as `retries:` says); a backend raises only for system failures.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from pipeline.core import sources
from pipeline.core.config import SECRET_KEYS, RemoteSettings
from pipeline.core.fingerprint import fingerprint
from pipeline.core.hashing import HashInfo, digest_bytes, file_digest, tree_manifest
from pipeline.core.lockfile import LockedPath, LockEntry
from pipeline.core.paths import is_within
from pipeline.errors import DataError, StageFailed, UsageError
from pipeline.execute.command import CommandResult
from pipeline.execute.outputs import StageCache, clear_outs, hash_outs
from pipeline.execute.scheduler import Events, Ran, StageSlot, exit_message
from pipeline.execute.stagejob import JobEnv, JobPath, JobResult, StageJob, expand, run_job
from pipeline.load.project import Project, Stage
from pipeline.plan.decisions import Decision
from pipeline.runs.trackimport import reads_dvclive
from pipeline.store.objects import store_output
from pipeline.store.remote import Remote
from pipeline.store.transfer import Report, Transfer, connected

# How files are stored to be shipped: a copy (or a reflink) never shares the workspace's inode,
# whatever `cache.type` says; a hard link would make the user's source read-only.
_SHIPPED = ["reflink", "copy"]
# A file a spec pulls in: `-r`/`-c` lines (any spec kind: a python_env's `dependencies`, a
# conda env's `pip:` list), or a local path (`./dist/x.whl`, `-e ../pkg`).
_INCLUDED = re.compile(
    r"(?:^|[\s\"'])(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)|(?:^|[\s\"'])(\.{1,2}/\S+)",
    re.MULTILINE,
)
_ARCHIVES = {".whl", ".gz", ".zip", ".bz2", ".tar"}  # shipped, not read for more includes
_SPEC_BYTES = 1 << 20  # read of a spec when looking for the files it names


class JobBackend(Protocol):
    """Runs stage jobs somewhere; raises only for system failures (after its own retries)."""

    def open(self) -> None: ...
    def run(self, job: StageJob, stage: Stage, stop: threading.Event) -> JobResult: ...
    def cancel(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class InProcessBackend:
    """Runs each job in this process, in a scratch directory under `home` (tests, debugging)."""

    home: Path

    def open(self) -> None:
        pass

    def run(self, job: StageJob, stage: Stage, stop: threading.Event) -> JobResult:
        return run_job(StageJob.from_json(job.to_json()), self.home)  # as a worker receives it

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


class JobRunner:
    """Runs each stage as a stage job through `backend`, data through the remote `settings`,
    or in place on a filesystem the workers share (`settings` None: `executor.shared_fs`)."""

    def __init__(
        self,
        project: Project,
        cache: StageCache,
        settings: RemoteSettings | None,
        backend: JobBackend,
        stop: threading.Event | None = None,
    ) -> None:
        self.project = project
        self.cache = cache
        self.settings = settings  # the driver's own transfers: its secrets included
        # what a worker is told
        self.portable = None if settings is None else _portable(settings, project.root)
        self.backend = backend
        self.stop = stop or threading.Event()  # set: the run is being stopped
        self._source: JobPath | None = None
        self._env_files: dict[str, tuple[JobPath, ...]] = {}
        self._shipping = threading.Lock()

    def run(self, stage: Stage, decision: Decision, slot: StageSlot, events: Events) -> Ran:
        """Run `stage` as a job (again, as its `retries:` allow, while its command fails)."""
        job = self.job(stage, decision, slot)
        attempts = stage.retries + 1
        for attempt in range(1, attempts + 1):
            events.stage_started(stage, decision, attempt)
            # as a local run does: a failed attempt never leaves the last run's outs behind
            clear_outs(stage, self.cache.hasher, self.project.root)
            slot.log.unlink(missing_ok=True)  # it may be a hard link into the cache
            result = self.backend.run(job, stage, self.stop)
            self._take_side_files(stage, result, slot, events)
            if result.succeeded:
                return Ran(self._accept(stage, decision, result, slot), attempt, result.host)
            if attempt == attempts:
                raise _failure(stage, result, slot, attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @property
    def shared(self) -> bool:
        """Whether the workers run stages in the project itself (`executor.shared_fs`)."""
        return self.settings is None

    def job(self, stage: Stage, decision: Decision, slot: StageSlot) -> StageJob:
        """The self-contained job for `stage` as `decision` planned it."""
        if not self.shared:
            if any(o.persist for o in stage.outs):
                raise UsageError(
                    f"stage {stage.name}: `persist` outputs cannot move between machines",
                    "run this stage locally (without --executor), or set executor.shared_fs",
                )
            self._ship_deps(decision)
        return StageJob(
            fingerprint=fingerprint(stage, decision.deps, decision.env_digest),
            stage=stage.name,
            cmd=stage.cmd,
            wdir=stage.wdir,
            deps=tuple(JobPath.of(p, i) for p, i in decision.deps.items() if i is not None),
            outs=stage.out_paths,
            source=None if self.shared else self.source(),
            remote=self.portable,
            run_id=slot.run_id,
            timeout=stage.timeout,
            env=self._env(decision),
            dvclive=reads_dvclive(self.project.stages.values(), stage),
            workspace=str(self.project.root.absolute()) if self.shared else None,
            log_file=str(slot.log.absolute()) if self.shared else None,
            keep=tuple(o.path for o in stage.outs if o.persist),
        )

    def source(self) -> JobPath:
        """The project's source as one tree object on the remote (shipped once per runner)."""
        with self._shipping:
            if self._source is None:
                assert self.settings is not None  # the source moves only through a remote
                self._source = ship_source(self.project, self.cache, self.settings)
            return self._source

    def _ship_deps(self, decision: Decision) -> None:
        """Every dep in the cache (raw data is stored from the workspace) and on the remote."""
        infos = {p: i for p, i in decision.deps.items() if i is not None}
        for path, info in infos.items():
            if not self.cache.store.complete(info):
                store_output(self.cache.store, self.cache.hasher, path, info, _SHIPPED)
        with self._transfer() as transfer:
            _sent(transfer.upload(*expand(self.cache.store, list(infos.values()))), "a dependency")

    def _env(self, decision: Decision) -> JobEnv | None:
        """The env's declaration, and its spec's folder and lock shipped by hash."""
        env = decision.env
        if env is None:
            return None
        decl, settings = env.decl, self.cache.config.env
        files: tuple[JobPath, ...] = ()
        with self._shipping:
            if not self.shared and env.digest not in self._env_files:
                wanted = [env.spec, *([env.lock] if env.lock else [])]
                self._env_files[env.digest] = self._ship_files(wanted + self._beside(env.spec))
            files = self._env_files.get(env.digest, files)
        kind = str(decl.kind)
        return JobEnv(
            decl.name, kind, decl.file, decl.python, env.digest, settings.installer,
            settings.conda, files,
        )  # fmt: skip

    def _beside(self, spec: Path) -> list[Path]:
        """A spec outside the project: the files it includes (`-r`, `-c`, `./local.whl`),
        and theirs in turn, as the env's resolver follows them. Inside, the source tree has
        them. Never its whole folder: that may be a home directory full of credentials."""
        if not os.path.relpath(spec, self.project.root).startswith(".."):
            return []
        found: set[Path] = set()
        todo = [spec]
        while todo:
            current = todo.pop()
            with current.open("rb") as fh:
                text = fh.read(_SPEC_BYTES).decode("utf-8", "replace")
            for match in _INCLUDED.finditer(text):
                name = (match.group(1) or match.group(2)).strip("'\",")
                path = Path(os.path.normpath(current.parent / name))
                if path.is_file() and path not in found and path != spec:
                    found.add(path)
                    todo += [] if path.suffix in _ARCHIVES else [path]
        return sorted(found)

    def _ship_files(self, paths: list[Path]) -> tuple[JobPath, ...]:
        """Files (maybe outside the project) into the cache and onto the remote, by hash."""
        found = {}
        for path in dict.fromkeys(p.absolute() for p in paths):
            digest = file_digest(path)
            self.cache.store.put_file(str(path), digest, ["copy"])
            rel = os.path.relpath(path, self.project.root).replace(os.sep, "/")
            found[rel] = JobPath(rel, digest, path.stat().st_size, 1)
        with self._transfer() as transfer:
            _sent(transfer.upload({f.hash for f in found.values()}, {}), "an env file")
        return tuple(found[k] for k in sorted(found))

    def _take_side_files(
        self, stage: Stage, result: JobResult, slot: StageSlot, events: Events
    ) -> None:
        """The job's log (into `.pipeline/logs/`, shown as output) and its tracked values."""
        if self.shared:  # the worker wrote the log in place
            if slot.log.is_file():
                events.stage_output(stage, slot.log.read_bytes())
        elif result.log is not None:
            with self._transfer() as transfer:
                _check(transfer.download([HashInfo(result.log, 0, 1)]), stage, "its log")
            data = self.cache.store.path(result.log).read_bytes()
            slot.log.write_bytes(data)
            events.stage_output(stage, data)
        slot.track_file.parent.mkdir(parents=True, exist_ok=True)
        slot.track_file.write_text(result.tracked, encoding="utf-8")

    def _accept(
        self, stage: Stage, decision: Decision, result: JobResult, slot: StageSlot
    ) -> LockEntry:
        """Bring the outs into the cache and workspace, then commit as a local stage does."""
        if self.shared:  # written in place: hashed here, as a local stage's are
            outs = hash_outs(stage, self.cache.hasher)
        else:
            outs = {o.path: o.info for o in result.outs}
            self._fetch_outs(stage, result)
        entry = LockEntry(
            cmd=stage.cmd,
            fingerprint=result.fingerprint,
            params=stage.params,
            deps=tuple(LockedPath(p, i) for p, i in decision.deps.items() if i is not None),
            outs=tuple(LockedPath(p, i) for p, i in outs.items()),
            env=decision.env_digest,
        )
        self.cache.commit(stage, entry, slot.log)
        return entry

    def _fetch_outs(self, stage: Stage, result: JobResult) -> None:
        """The outs the worker pushed: into the cache, verified, and into the workspace."""
        with self._transfer() as transfer:
            _check(transfer.download([o.info for o in result.outs]), stage, "its outputs")
        restorer, plain = self.cache.restorer(), self.cache.restorer(["copy"])
        in_git = {o.path for o in stage.outs if not o.cache}
        for out in result.outs:
            (plain if out.path in in_git else restorer).restore(out.path, out.info)

    def _transfer(self) -> AbstractContextManager[Transfer]:
        assert self.settings is not None  # transfers happen only when data moves
        return connected(self.cache.store, self.settings, self.project.root)

    def cancel(self) -> None:
        self.backend.cancel()


def ship_source(project: Project, cache: StageCache, settings: RemoteSettings) -> JobPath:
    """Store the project's source files and their tree object, and push them to the remote."""
    files = source_files(project)
    rows = []
    for rel in files:
        path = project.root / rel
        digest = file_digest(path)
        cache.store.put_file(str(path), digest, _SHIPPED)
        rows.append((rel, digest, os.access(path, os.X_OK)))
    manifest = tree_manifest(rows)
    tree = HashInfo(digest_bytes(manifest), len(manifest), len(rows), isdir=True)
    cache.store.put_bytes(manifest, tree.hash)
    with connected(cache.store, settings, project.root) as transfer:
        _sent(transfer.upload(*expand(cache.store, [tree])), "the project's source")
    return JobPath.of(".", tree)


def source_files(project: Project) -> list[str]:
    """The project's sources (`core/sources.py`) minus every stage's outs."""
    outs = [o.path for s in project.stages.values() for o in s.outs]
    found = sources.source_files(
        project.root, project.manifest.relative_to(project.root).as_posix()
    )
    return [f for f in found if (project.root / f).is_file() and not _under(f, outs)]


def _under(path: str, outs: list[str]) -> bool:
    return any(is_within(path, out) for out in outs)


def _portable(settings: RemoteSettings, root: Path) -> RemoteSettings:
    """The remote as a worker elsewhere reaches it: a directory by absolute path, no secrets
    (workers use the backend's own credential chain)."""
    remote = Remote(settings, root)
    url = remote.base if remote.protocol == "file" else settings.url
    options = {k: v for k, v in settings.options.items() if k not in SECRET_KEYS}
    return replace(settings, url=url, options=options)


def _sent(report: Report, what: str) -> None:
    """An upload that left something behind: the job could not find it on the remote."""
    lost = [*report.not_local, *report.missing]
    if lost:
        raise DataError(f"could not send {what} to the remote ({lost[0]})", "check the remote")


def _check(report: Report, stage: Stage, what: str) -> None:
    lost = [*report.missing, *report.corrupt]
    if lost:
        raise DataError(
            f"stage {stage.name}: could not fetch {what} from the remote ({lost[0]})",
            "the worker pushed them: check the remote",
        )


def _failure(stage: Stage, result: JobResult, slot: StageSlot, attempt: int) -> StageFailed:
    """The failure a local run of the same command would report, naming the worker's host."""
    hint = f"full output in {slot.log.relative_to(slot.root)}"
    code: int | None = result.exit_code
    if result.exit_code == 0 and not result.timed_out:  # it succeeded but left an out unwritten
        message, code = f"stage {stage.name} did not create {result.missing[0]}", None
        hint = "the command succeeded but never wrote this declared output"
    else:
        message = exit_message(stage, CommandResult(result.exit_code, result.timed_out))
    message += f" on {result.host}"
    if attempt > 1:
        message += f" (attempt {attempt} of {stage.retries + 1})"
    return StageFailed(stage.name, message, hint, returncode=code)
