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
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.core.config import EnvSettings, RemoteSettings
from pipeline.core.hashing import Hasher, HashInfo, file_digest
from pipeline.core.paths import is_within
from pipeline.core.syserrors import naming
from pipeline.env.provision import Provisioner
from pipeline.env.resolve import resolve_env
from pipeline.errors import DataError
from pipeline.execute.command import ProcessTracker, run_commands
from pipeline.execute.stageenv import base_environ, env_environ, foreign_values, with_stagepath
from pipeline.load.environments import EnvDecl
from pipeline.load.envkind import EnvKind
from pipeline.store.objects import ObjectStore, place_object, store_output
from pipeline.store.restore import Restorer, clear
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
    source: JobPath | None  # the project's files as one tree object (None: `workspace`)
    remote: RemoteSettings | None  # None: `workspace`, where nothing moves
    run_id: str = ""
    timeout: float | None = None
    env: JobEnv | None = None
    dvclive: bool = False  # the stage reads DVCLive's folder (`trackimport.reads_dvclive`)
    workspace: str | None = None  # the project on a filesystem the worker shares: run there
    log_file: str | None = None  # with `workspace`: where the stage's log goes
    keep: tuple[str, ...] = ()  # with `workspace`: outs that persist (never cleared)

    def to_json(self) -> str:
        return json.dumps({"format": JOB_FORMAT, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StageJob:
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.pop("format", None) != JOB_FORMAT:
                raise DataError(
                    f"not a stage job of this version ({JOB_FORMAT!r})",
                    "driver and worker must run the same pipeline version",
                )
            return cls._from_dict(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(
                f"a damaged stage job: {type(exc).__name__}: {exc}",
                "stage jobs are written by `pipeline repro --executor`; do not edit them",
            ) from None

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> StageJob:
        job: StageJob = _build(cls, _JOB_FIELDS, data, "")
        if job.workspace is None and (job.remote is None or job.source is None):
            raise _damaged("remote and source must be set when workspace is not")
        if job.workspace is not None and job.log_file is None:
            raise _damaged("log_file must be set with workspace")
        return job


@dataclass(frozen=True)
class _Type:
    """What a field's JSON value must be (`says`, for the error) and how it becomes the
    field's value (`make`, given the value and the field's name for nested errors)."""

    says: str
    test: Callable[[Any], bool]
    make: Callable[[Any, str], Any] = lambda value, _name: value

    def parse(self, value: Any, name: str) -> Any:
        if not self.test(value):
            raise _damaged(f"{name} must be {self.says}")
        return self.make(value, name)

    def optional(self) -> _Type:
        return _Type(
            f"{self.says} or null",
            lambda v: v is None or self.test(v),
            lambda v, name: None if v is None else self.make(v, name),
        )


def _damaged(what: str) -> DataError:
    return DataError(
        f"a damaged stage job: {what}",
        "stage jobs are written by `pipeline repro --executor`; do not edit them",
    )


def _build(cls: type[Any], table: dict[str, _Type], data: dict[str, Any], prefix: str) -> Any:
    """`cls` from the JSON object `data`, each field checked against `table`; a missing
    field without a default is a `KeyError` (named with its path), as `from_json` reports."""
    unknown = sorted(set(data) - set(table))
    if unknown:
        raise _damaged(f"{prefix}{unknown[0]} is not a field of a stage job")
    optional = {f.name for f in fields(cls) if f.default is not MISSING}
    missing = [name for name in table if name not in data and name not in optional]
    if missing:
        raise KeyError(prefix + missing[0])
    return cls(**{k: table[k].parse(v, prefix + k) for k, v in data.items()})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _list(item: _Type) -> _Type:
    return _Type(
        "a list",
        lambda v: isinstance(v, list),
        lambda v, name: tuple(item.parse(x, f"{name}[{i}]") for i, x in enumerate(v)),
    )


def _object(cls: type[Any], table: dict[str, _Type]) -> _Type:
    return _Type(
        "an object", lambda v: isinstance(v, dict), lambda v, n: _build(cls, table, v, n + ".")
    )


_STR = _Type("a string", lambda v: isinstance(v, str))
_BOOL = _Type("true or false", lambda v: isinstance(v, bool))
_COUNT = _Type("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool))
_KINDS = frozenset(kind.value for kind in EnvKind)
_KIND = _Type(f"one of {', '.join(sorted(_KINDS))}", lambda v: isinstance(v, str) and v in _KINDS)
_PATH = _object(
    JobPath, {"path": _STR, "hash": _STR, "size": _COUNT, "nfiles": _COUNT, "isdir": _BOOL}
)
_REMOTE = _object(
    RemoteSettings,
    {"name": _STR, "url": _STR, "options": _Type("an object", lambda v: isinstance(v, dict))},
)
_ENV = _object(
    JobEnv,
    {"name": _STR, "kind": _KIND, "file": _STR.optional(), "python": _STR.optional(),
     "digest": _STR, "installer": _STR, "conda": _STR, "files": _list(_PATH)},
)  # fmt: skip
_JOB_FIELDS = {
    "fingerprint": _STR, "stage": _STR, "cmd": _list(_STR), "wdir": _STR, "deps": _list(_PATH),
    "outs": _list(_STR), "source": _PATH.optional(), "remote": _REMOTE.optional(),
    "run_id": _STR, "timeout": _Type("a number", _number).optional(), "env": _ENV.optional(),
    "dvclive": _BOOL, "workspace": _STR.optional(), "log_file": _STR.optional(),
    "keep": _list(_STR),
}  # fmt: skip


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
    """Run `job` in a fresh scratch directory under `home`, whose `cache/` persists (or in
    its shared `workspace`); `tracker.stop_all()` (from another thread) stops its command."""
    tracker = tracker or ProcessTracker()
    home = home.absolute()  # the stage runs elsewhere: its variables must not be relative
    scratch = home / "jobs" / f"{job.stage.replace('/', '_')}-{secrets.token_hex(6)}"
    if job.workspace is not None:
        return _run_in_place(job, scratch, tracker)
    cache = ObjectStore(home / "cache")
    depth = job.env.depth if job.env is not None else 0
    work = scratch.joinpath(*(["up"] * depth), "work")  # room for an env's `../` files
    _bound(job.wdir, work, "wdir")
    for file in job.env.files if job.env is not None else ():
        _bound(file.path, work, "env file", within=scratch)
    work.mkdir(parents=True)
    assert job.remote is not None and job.source is not None  # set unless `workspace` is
    try:
        with connected(cache, job.remote, work) as transfer:
            _materialise(job, job.source, transfer, work)
            return _run_moved(job, transfer, scratch, work, tracker)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _bound(path: str, base: Path, what: str, within: Path | None = None) -> None:
    """Refuse `path` (relative to `base`, or absolute) if it lands outside `within` (default
    `base`), before the job writes or runs anything: a job names places in its own
    workspace, never elsewhere on the worker. Lexical, so a symlinked home still works."""
    placed = os.path.normpath(os.path.abspath(base / path))
    limit = os.path.normpath(os.path.abspath(within or base))
    if not is_within(placed, limit):
        raise DataError(
            f"stage job: {what} {path!r} lies outside {limit}",
            "stage jobs are written by `pipeline repro --executor`; do not edit them",
        )


def _run_in_place(job: StageJob, scratch: Path, tracker: ProcessTracker) -> JobResult:
    """The stage in the project itself, on a filesystem the driver shares: nothing is
    fetched or pushed; the outs are cleared first (but `keep`), and the driver hashes them."""
    work = Path(job.workspace or "")
    if not work.is_dir() or job.log_file is None:
        raise DataError(
            f"stage job: the project is not at {work} on {socket.gethostname()}",
            "with executor.shared_fs, every worker mounts the project at the driver's path",
        )
    _bound(job.wdir, work, "wdir")
    _bound(job.log_file, work, "log_file")
    bounds = Hasher(work, None).bounds
    for out in job.outs:  # again here: Dask may rerun this task after its worker died
        clear(bounds, out, keep=out in job.keep)
    try:
        ran = _execute(job, work, Path(job.log_file), scratch, tracker)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    missing = tuple(o for o in job.outs if ran.ok and not os.path.lexists(work / o))
    return ran.result(job, missing=missing)


def _materialise(job: StageJob, source: JobPath, transfer: Transfer, work: Path) -> None:
    """The source tree, then every dep, fetched by hash and placed in `work`; the env's files
    at their place relative to it."""
    env_files = job.env.files if job.env is not None else ()
    wanted = [source, *job.deps, *env_files]
    _check(transfer.download([p.info for p in wanted]), "fetch the stage's inputs")
    hasher = Hasher(work, None)
    restorer = Restorer(work, transfer.store, hasher, _COPY)
    tree = transfer.store.read_tree(source.hash)
    for entry in tree:
        (work / entry.path).parent.mkdir(parents=True, exist_ok=True)
        restorer.restore(entry.path, HashInfo(entry.hash, -1, 1))
    for dep in job.deps:
        restorer.restore(dep.path, dep.info)
    for file in env_files:
        target = Path(os.path.normpath(work / file.path))  # bounded by `run_job`
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        place_object(transfer.store, file.hash, str(target), _COPY)
    for entry in tree:  # last: a dep or an env file placed over a script is a plain file
        if entry.executable and (work / entry.path).is_file():
            (work / entry.path).chmod(0o755)


def _ups(path: str) -> int:
    parts = path.split("/")
    return len(parts) - len(list(itertools.dropwhile(lambda p: p == "..", parts)))


@dataclass(frozen=True)
class _Ran:
    """A command that ran: how it ended, when, for how long, and what it logged."""

    code: int
    timed_out: bool
    started_at: float
    seconds: float
    tracked: str

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.timed_out  # a stage may trap SIGTERM and exit 0

    def result(self, job: StageJob, **more: Any) -> JobResult:
        return JobResult(
            job.fingerprint, socket.gethostname(), self.code, self.timed_out,
            started_at=self.started_at, seconds=self.seconds, tracked=self.tracked, **more,
        )  # fmt: skip


def _run_moved(
    job: StageJob, transfer: Transfer, scratch: Path, work: Path, tracker: ProcessTracker
) -> JobResult:
    """Run the stage in `work`, then store and push its outs and its log."""
    log = scratch / "stage.log"
    ran = _execute(job, work, log, scratch, tracker)
    outs, missing = _hash_outs(job, transfer.store, work) if ran.ok else ((), ())
    log_hash = file_digest(log)
    transfer.store.put_file(str(log), log_hash, _COPY)
    _push(transfer, [o.info for o in outs], log_hash)
    return ran.result(job, outs=outs, missing=missing, log=log_hash)


def _execute(job: StageJob, work: Path, log: Path, scratch: Path, tracker: ProcessTracker) -> _Ran:
    """The command in `work` (its env active), its output to `log`; then what it logged,
    DVCLive's and MLflow's values included (`trackimport`), as track-file lines."""
    track = scratch / "track" / "stage.jsonl"
    base = base_environ(work, job.stage, job.run_id, track)
    cwd = work / job.wdir if job.wdir != "." else work
    started, wall = time.monotonic(), time.time()
    log.parent.mkdir(parents=True, exist_ok=True)
    with naming(log), open(log, "wb") as sink, _environ(job, work, base, sink) as environ:
        done = run_commands(
            job.cmd, cwd, environ, _writer(sink), timeout=job.timeout, tracker=tracker
        )
    seconds = time.monotonic() - started
    tracked = track.read_text(encoding="utf-8", errors="replace") if track.is_file() else ""
    tracked += foreign_values(cwd, track, wall, dvclive=job.dvclive)
    return _Ran(done.code, done.timed_out, wall, seconds, tracked)


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
        yield env_environ(base, built, resolved)


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


JOB_MAX_BYTES = 16 << 20  # a job names hashes, never data: far below this


def load_job(path: Path) -> StageJob:
    """The stage job in the file `path`; one that is not (too big, not UTF-8, damaged JSON)
    is refused, naming the file."""
    try:
        with path.open("rb") as fh:
            data = fh.read(JOB_MAX_BYTES + 1)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}", "check the path") from None
    try:
        if len(data) > JOB_MAX_BYTES:
            raise DataError("too big for a stage job", "give a JOB.json that a driver wrote")
        return StageJob.from_json(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a stage job (not UTF-8)", "give a JOB.json") from None
    except DataError as exc:
        raise DataError(f"{path}: {exc.message}", exc.hint) from None


def worker_home() -> Path:
    """Where this worker keeps its cache and scratch directories (`PIPELINE_WORKER_HOME`)."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeline"
    return Path(os.environ.get("PIPELINE_WORKER_HOME") or default / "worker").absolute()
