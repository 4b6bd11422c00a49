"""A self-contained stage job: what a worker on another machine needs to run one stage.

The driver describes the job (`StageJob`: fingerprint, command, wdir, env declaration, dep
hashes, out paths, the project's source tree hash, the remote); it is plain JSON, so any engine
can carry it. `run_job` runs it in a scratch directory of its own, moving data only through the
remote:

1. fetch the source tree and the deps by hash into the worker's cache, verified, and place them
   in a fresh scratch workspace;
2. build or reuse the stage's env (from its lock, through the worker's env store);
3. run the command with the variables a local stage gets (`stageenv.py`), logging to a file;
4. hash the outs, push them and the log to the remote;
5. return a `JobResult`: out hashes, log hash, exit code, timings, host, what the stage logged.

A failing command is a result (its exit code), not an exception: only a system failure (the
remote, the disk, the env build) raises, and the engine may retry those elsewhere.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.core.config import EnvSettings, RemoteSettings
from pipeline.core.hashing import Hasher, HashInfo, file_digest
from pipeline.core.syserrors import naming
from pipeline.env.provision import Provisioner, activate
from pipeline.env.resolve import resolve_env
from pipeline.errors import DataError
from pipeline.execute.command import ProcessTracker, run_commands
from pipeline.execute.stageenv import base_environ, with_stagepath
from pipeline.load.environments import EnvDecl
from pipeline.load.envkind import EnvKind
from pipeline.store.objects import ObjectStore, place_object, store_output
from pipeline.store.restore import Restorer
from pipeline.store.transfer import Report, Transfer, connected

JOB_FORMAT = "pipeline-stage-job 1"
_COPY = ["copy"]  # a scratch workspace never shares storage with the worker's cache


@dataclass(frozen=True)
class JobPath:
    """A path and the content it must have (or has): `HashInfo` with its project path."""

    path: str
    hash: str
    size: int
    nfiles: int
    isdir: bool = False

    @property
    def info(self) -> HashInfo:
        return HashInfo(self.hash, self.size, self.nfiles, self.isdir)

    @classmethod
    def of(cls, path: str, info: HashInfo) -> JobPath:
        return cls(path, info.hash, info.size, info.nfiles, info.isdir)


@dataclass(frozen=True)
class JobEnv:
    """The stage's declared env, resolved again on the worker from the shipped source."""

    name: str
    kind: str
    file: str | None
    python: str | None
    digest: str  # the driver's digest (part of the fingerprint)
    installer: str
    conda: str
    files: tuple[JobPath, ...] = ()  # its spec's folder and lock, project-relative (maybe ../)

    @property
    def depth(self) -> int:
        """How many folders above the project its files reach (`../../envs/x.yaml`: 2)."""
        return max([0, *[_ups(f.path) for f in self.files]])


@dataclass(frozen=True)
class StageJob:
    """One stage to run elsewhere: everything it needs, by hash, and where to find it."""

    fingerprint: str
    stage: str
    cmd: tuple[str, ...]
    wdir: str
    deps: tuple[JobPath, ...]
    outs: tuple[str, ...]
    source: JobPath  # the project's files as one tree object
    remote: RemoteSettings
    run_id: str = ""
    timeout: float | None = None
    env: JobEnv | None = None

    def to_json(self) -> str:
        return json.dumps({"format": JOB_FORMAT, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StageJob:
        data = json.loads(text)
        if data.pop("format", None) != JOB_FORMAT:
            raise DataError("not a stage job of this version", "driver and worker differ")
        data["cmd"] = tuple(data["cmd"])
        data["outs"] = tuple(data["outs"])
        data["deps"] = tuple(JobPath(**d) for d in data["deps"])
        data["source"] = JobPath(**data["source"])
        data["remote"] = RemoteSettings(**data["remote"])
        env = data["env"]
        data["env"] = (
            JobEnv(**{**env, "files": tuple(JobPath(**f) for f in env["files"])}) if env else None
        )
        return cls(**data)


@dataclass(frozen=True)
class JobResult:
    """How a stage job ended: the command's exit code, and on success every out's hash."""

    fingerprint: str
    host: str
    exit_code: int
    timed_out: bool = False
    outs: tuple[JobPath, ...] = ()
    missing: tuple[str, ...] = ()  # declared outs the command never wrote
    log: str | None = None  # the log object, on the remote
    started_at: float = 0.0
    seconds: float = 0.0
    tracked: str = ""  # the lines the stage logged with `pipeline.track`
    worker: str = ""  # the engine's name for the worker that ran it

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.missing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobResult:
        outs = tuple(JobPath(**o) for o in data["outs"])
        return cls(**{**data, "outs": outs, "missing": tuple(data["missing"])})


def run_job(job: StageJob, home: Path, tracker: ProcessTracker | None = None) -> JobResult:
    """Run `job` in a fresh scratch directory under `home`, whose `cache/` persists;
    `tracker.stop_all()` (from another thread) stops its command."""
    cache = ObjectStore(home / "cache")
    scratch = home / "jobs" / f"{job.stage.replace('/', '_')}-{secrets.token_hex(6)}"
    depth = job.env.depth if job.env is not None else 0
    work = scratch.joinpath(*(["up"] * depth), "work")  # room for an env's `../` files
    work.mkdir(parents=True)
    try:
        with connected(cache, job.remote, work) as transfer:
            _materialise(job, transfer, work)
            return _run(job, transfer, scratch, work, tracker or ProcessTracker())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _materialise(job: StageJob, transfer: Transfer, work: Path) -> None:
    """The source tree, then every dep, fetched by hash and placed in `work`; the env's files
    at their place relative to it."""
    env_files = job.env.files if job.env is not None else ()
    wanted = [job.source, *job.deps, *env_files]
    _check(transfer.download([p.info for p in wanted]), "fetch the stage's inputs")
    hasher = Hasher(work, None)
    restorer = Restorer(work, transfer.store, hasher, _COPY)
    for entry in transfer.store.read_tree(job.source.hash):
        target = work / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        restorer.restore(entry.path, HashInfo(entry.hash, -1, 1))
        if entry.executable:
            target.chmod(0o755)
    for dep in job.deps:
        restorer.restore(dep.path, dep.info)
    for file in env_files:
        target = Path(os.path.normpath(work / file.path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        place_object(transfer.store, file.hash, str(target), _COPY)


def _ups(path: str) -> int:
    parts = path.split("/")
    return len(parts) - len(list(itertools.dropwhile(lambda p: p == "..", parts)))


def _run(
    job: StageJob, transfer: Transfer, scratch: Path, work: Path, tracker: ProcessTracker
) -> JobResult:
    log = scratch / "stage.log"
    track = scratch / "track" / "stage.jsonl"
    base = base_environ(work, job.stage, job.run_id, track)
    started, wall = time.monotonic(), time.time()
    with naming(log), open(log, "wb") as sink, _environ(job, work, base, sink) as environ:
        cwd = work / job.wdir if job.wdir != "." else work
        done = run_commands(
            job.cmd, cwd, environ, _writer(sink), timeout=job.timeout, tracker=tracker
        )
    seconds = time.monotonic() - started
    ok = done.code == 0 and not done.timed_out  # a stage may trap SIGTERM and exit 0
    outs, missing = _hash_outs(job, transfer.store, work) if ok else ((), ())
    log_hash = file_digest(log)
    transfer.store.put_file(str(log), log_hash, _COPY)
    _push(transfer, [o.info for o in outs], log_hash)
    return JobResult(
        job.fingerprint,
        socket.gethostname(),
        done.code,
        done.timed_out,
        outs,
        missing,
        log_hash,
        wall,
        seconds,
        track.read_text(encoding="utf-8", errors="replace") if track.is_file() else "",
    )


@contextlib.contextmanager
def _environ(
    job: StageJob, work: Path, base: dict[str, str], log: BinaryIO
) -> Iterator[dict[str, str]]:
    """The stage's variables: its env built (or reused) on this worker and activated."""
    if job.env is None:
        yield with_stagepath(base)
        return
    spec = job.env
    decl = EnvDecl(spec.name, EnvKind(spec.kind), spec.file, spec.python)
    resolved = resolve_env(work, decl)
    if resolved.digest != spec.digest:  # another platform or interpreter: said, not fatal
        log.write(
            f"env {spec.name!r} on this worker is {resolved.digest}, "
            f"the driver's is {spec.digest}\n".encode()
        )
    provisioner = Provisioner(EnvSettings(spec.installer, spec.conda))
    say = _writer(log)
    with provisioner.activated(resolved, lambda text: say(text.encode())) as built:
        environ = with_stagepath(activate(base, built))
        environ["PIPELINE_ENV_KIND"] = str(resolved.kind)
        if resolved.lock is not None:
            environ["PIPELINE_ENV_LOCK"] = str(resolved.lock.absolute())
        yield environ


def _writer(sink: BinaryIO) -> Callable[[bytes], None]:
    def write(chunk: bytes) -> None:
        sink.write(chunk)

    return write


def _hash_outs(
    job: StageJob, store: ObjectStore, work: Path
) -> tuple[tuple[JobPath, ...], tuple[str, ...]]:
    """Every declared out hashed and stored in the worker's cache; the missing ones named."""
    hasher = Hasher(work, None)
    outs, missing = [], []
    for path in job.outs:
        info = hasher.hash(path)
        if info is None:
            missing.append(path)
            continue
        store_output(store, hasher, path, info, _COPY)
        outs.append(JobPath.of(path, info))
    return tuple(outs), tuple(missing)


def _push(transfer: Transfer, infos: list[HashInfo], log: str) -> None:
    """Send the outs' objects (each directory's tree last) and the log to the remote."""
    _check(transfer.upload(*expand(transfer.store, [*infos, HashInfo(log, 0, 1)])), "push")


def expand(store: ObjectStore, infos: list[HashInfo]) -> tuple[set[str], dict[str, set[str]]]:
    """The file objects and the tree objects (with their members) `infos` consist of."""
    files: set[str] = set()
    trees: dict[str, set[str]] = {}
    for info in infos:
        if info.isdir:
            members = {e.hash for e in store.read_tree(info.hash)}
            trees[info.hash] = members
            files |= members
        else:
            files.add(info.hash)
    return files, trees


def _check(report: Report, what: str) -> None:
    """A transfer that left something behind is a system failure of this job."""
    lost = [*report.missing, *report.not_local, *report.corrupt]
    if lost:
        raise DataError(
            f"stage job: could not {what}: {len(lost)} object(s) missing or corrupt ({lost[0]})",
            "push the project's data to the remote, and check the remote",
        )


def worker_home() -> Path:
    """Where this worker keeps its cache and scratch directories (`PIPELINE_WORKER_HOME`)."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeline"
    return Path(os.environ.get("PIPELINE_WORKER_HOME") or default / "worker")
