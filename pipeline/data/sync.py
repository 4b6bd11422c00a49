"""`pipeline push`, `fetch`, `pull` and `status --remote`: the cache and a remote in step.

What moves: the objects the lock refers to (cached outputs, tracked data; with `--all-commits`
every commit's lock), the run-cache entries of the lock's stages with their logs, and, with
`--runs`, run records with the files they kept. An output declared `push: false` stays local;
one with `remote: NAME` goes to that remote unless `-r` names another. `pull` is `fetch` and
then `checkout`. Every object fetched is verified before it enters the cache (`store/transfer`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.config import RemoteSettings
from pipeline.core.git import root_commit
from pipeline.core.hashing import HashInfo
from pipeline.core.suggest import suggest_name
from pipeline.data.checkout import CheckoutReport, checkout, wanted
from pipeline.data.history import locks_in
from pipeline.data.options import SyncOptions
from pipeline.errors import DataError, UsageError
from pipeline.plan.session import Session
from pipeline.runs.exchange import RunDocument, export_run, import_run, read_document, shareable
from pipeline.runs.runstore import DB_NAME, RunStore
from pipeline.store.known import KnownIndex
from pipeline.store.remote import Remote
from pipeline.store.runcache import RunEntry, parse_entry
from pipeline.store.transfer import Meter, QuietMeter, Report, Transfer

KNOWN_DB = "remotes.db"


@dataclass
class SyncReport:
    """What one command moved to or from one remote."""

    remote: str
    url: str
    objects: Report = field(default_factory=Report)
    runs: int = 0  # run-cache entries moved
    records: int = 0  # run records moved (--runs)
    not_cached: list[str] = field(default_factory=list)  # in a lock, but not in the cache
    checkout: CheckoutReport | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def failed(self) -> bool:
        return bool(self.objects.missing or self.objects.corrupt)


def remote_settings(session: Session, name: str | None) -> RemoteSettings:
    """The named remote, or the default one, as configured."""
    remotes = session.config.remotes
    if name is None:
        name = session.config.default_remote or (next(iter(remotes)) if len(remotes) == 1 else None)
        if name is None:
            raise UsageError(
                "no remote is configured" if not remotes else "no default remote is set",
                "pipeline remote add -d NAME URL (or give -r NAME)",
            )
    if name not in remotes:
        raise UsageError(
            f"no remote named {name!r}",
            suggest_name(name, list(remotes), "see `pipeline remote list`"),
        )
    return remotes[name]


@contextlib.contextmanager
def connect(session: Session, name: str | None, meter: Meter | None = None) -> Iterator[Transfer]:
    """A transfer between this project's cache and the remote `name` (default: the default)."""
    settings = remote_settings(session, name)
    remote = Remote(settings, session.project.root)
    known = KnownIndex(session.project.state_dir / KNOWN_DB)
    try:
        yield Transfer(session.store, remote, known, meter or QuietMeter())
    finally:
        known.close()


# --- push ---------------------------------------------------------------------------------


def push(session: Session, options: SyncOptions, meter: Meter | None = None) -> list[SyncReport]:
    """Send what the lock (or every commit's lock) refers to, to its remote(s)."""
    infos, entries = _collect(session, options)
    routes = _routes(session, options, infos)
    reports = []
    for index, (name, paths) in enumerate(routes.items()):
        with connect(session, name, meter) as transfer:
            _jobs(transfer, options)
            chosen = {p: infos[p] for p in paths}
            report = _push_objects(session, transfer, chosen, entries if index == 0 else {})
            if options.runs and index == 0:
                report.records = _push_records(session, transfer)
            reports.append(report)
    return reports


def _push_objects(
    session: Session, transfer: Transfer, infos: dict[str, HashInfo], entries: dict[str, RunEntry]
) -> SyncReport:
    remote = transfer.remote
    report = SyncReport(remote.name, remote.url)
    extra = [o.info for e in entries.values() for o in e.outs]
    logs = [HashInfo(e.log, 0, 1) for e in entries.values() if e.log]
    files, trees, report.not_cached = _expand(session, [*infos.values(), *extra, *logs])
    report.objects = transfer.upload(files, trees)
    report.runs = _push_entries(session, transfer, entries)
    return report


def _expand(
    session: Session, infos: list[HashInfo]
) -> tuple[set[str], dict[str, set[str]], list[str]]:
    """(files, trees → their files, hashes not in the local cache) for `infos`."""
    store = session.store
    files: set[str] = set()
    trees: dict[str, set[str]] = {}
    absent: set[str] = set()
    for info in infos:
        if not store.has(info.hash):
            absent.add(info.hash)
        elif info.isdir:
            members = {e.hash for e in store.read_tree(info.hash)}
            here = {m for m in members if store.has(m)}
            absent |= members - here
            files |= here
            trees[info.hash] = members
        else:
            files.add(info.hash)
    return files, trees, sorted(absent)


def _push_entries(session: Session, transfer: Transfer, entries: dict[str, RunEntry]) -> int:
    """Run-cache entries, after their objects (a teammate's repro may restore from them)."""
    keys = {f"run:{fp}": transfer.remote.run_path(fp) for fp in entries}
    present = transfer.present(keys)
    sent = 0
    for fingerprint in entries:
        if f"run:{fingerprint}" in present:
            continue
        data = session.run_cache.path(fingerprint).read_bytes()
        transfer.remote.write_bytes(transfer.remote.run_path(fingerprint), data)
        transfer.remember(f"run:{fingerprint}")
        sent += 1
    return sent


def _push_records(session: Session, transfer: Transfer) -> int:
    """Every finished run not on the remote yet: its objects first, then its record."""
    path = session.project.state_dir / DB_NAME
    if not path.is_file():
        return 0
    project = _project_id(session)
    on_remote = _remote_records(transfer, project)
    store = RunStore.for_project(session.project.state_dir)
    try:
        docs = [
            export_run(store, r.id) for r in store.runs() if shareable(r) and r.id not in on_remote
        ]
    finally:
        store.close()
    infos = [HashInfo(d, 0, 1) for doc in docs for d in doc.objects()]
    infos += [o for doc in docs for o in _lock_outputs(session, doc)]
    files, trees, _ = _expand(session, infos)
    transfer.upload(files, trees)
    remote = transfer.remote
    for doc in docs:
        remote.write_bytes(remote.record_path(project, doc.id), doc.to_bytes())
    return len(docs)


def _lock_outputs(session: Session, doc: RunDocument) -> list[HashInfo]:
    """The outputs a run's kept lock names, for `checkout RUN` on another machine."""
    from pipeline.core.lockfile import LOCK_NAME, parse_lock  # noqa: PLC0415 - rare path

    infos: list[HashInfo] = []
    for kept in doc.files:
        if kept.path.endswith(LOCK_NAME) and session.store.has(kept.hash):
            with contextlib.suppress(DataError, ValueError):
                lock = parse_lock(_yaml(session, kept.hash))
                infos += [o.info for e in lock.stages.values() for o in e.outs]
    return infos


def _yaml(session: Session, digest: str) -> Any:
    from pipeline.core.yamlio import parse_yaml  # noqa: PLC0415 - PyYAML only here

    path = session.store.path(digest)
    return parse_yaml(path.read_text(encoding="utf-8"), path).data


# --- fetch and pull -----------------------------------------------------------------------


def fetch(session: Session, options: SyncOptions, meter: Meter | None = None) -> list[SyncReport]:
    """Bring into the cache what the lock refers to, from its remote(s)."""
    infos, _ = _collect(session, options, local_entries=False)
    routes = _routes(session, options, infos)
    reports = []
    for index, (name, paths) in enumerate(routes.items()):
        with connect(session, name, meter) as transfer:
            _jobs(transfer, options)
            report = SyncReport(transfer.remote.name, transfer.remote.url)
            if index == 0:
                report.runs = _fetch_entries(session, transfer)
            report.objects = transfer.download(infos[p] for p in paths)
            if options.runs and index == 0:
                report.records = _fetch_records(session, transfer)
            reports.append(report)
    return reports


def pull(session: Session, options: SyncOptions, meter: Meter | None = None) -> list[SyncReport]:
    """`fetch`, then `checkout` what was asked for."""
    reports = fetch(session, options, meter)
    if reports:
        reports[-1].checkout = checkout(session, options.targets)
    return reports


def _fetch_entries(session: Session, transfer: Transfer) -> int:
    """The run-cache entries of the lock's stages that this machine lacks."""
    wanted_fps = [
        e.fingerprint
        for e in session.lock.stages.values()
        if session.run_cache.get(e.fingerprint) is None
    ]
    received = 0
    for fingerprint in wanted_fps:
        entry = fetch_entry(session, transfer, fingerprint)
        received += entry is not None
    return received


def fetch_entry(session: Session, transfer: Transfer, fingerprint: str) -> RunEntry | None:
    """One run-cache entry from the remote into the local run-cache (None: the remote has none)."""
    try:
        data = transfer.remote.read_bytes(transfer.remote.run_path(fingerprint))
    except FileNotFoundError:
        return None
    entry = parse_entry(data)
    if entry is None or entry.fingerprint != fingerprint:
        return None  # damaged or forged: a lost shortcut, never a wrong restore
    session.run_cache.put(entry)
    return entry


def _fetch_records(session: Session, transfer: Transfer) -> int:
    """Teammates' runs: their records, then the objects those records name."""
    project = _project_id(session)
    remote = transfer.remote
    store = RunStore.for_project(session.project.state_dir)
    try:
        new = sorted(_remote_records(transfer, project) - store.ids())
        raw = transfer.parallel(
            {i: functools.partial(remote.read_bytes, remote.record_path(project, i)) for i in new}
        )
        docs = [read_document(data, f"run record {i}") for i, data in raw.items()]
        transfer.download(HashInfo(d, 0, 1) for doc in docs for d in doc.objects())
        for doc in sorted(docs, key=lambda d: (d.detail.run.parent_id is not None, d.id)):
            import_run(store, doc)
    finally:
        store.close()
    return len(docs)


def _remote_records(transfer: Transfer, project: str) -> set[str]:
    names = transfer.remote.find(f"records/{project}")
    return {n.rsplit("/", 1)[-1].removesuffix(".json") for n in names if n.endswith(".json")}


def _project_id(session: Session) -> str:
    """Names this project's run records on a shared remote: its git root commit."""
    return root_commit(session.project.root) or "default"


# --- what to move, and where --------------------------------------------------------------


def _collect(
    session: Session, options: SyncOptions, *, local_entries: bool = True
) -> tuple[dict[str, HashInfo], dict[str, RunEntry]]:
    """Path (or hash, for old commits) → object to move; fingerprint → run-cache entry."""
    infos = {p: i for p, i in wanted(session, options.targets).items() if _pushed(session, p)}
    if options.all_commits:
        for lock in locks_in(session.project.root, "all-commits"):
            for entry in lock.stages.values():
                infos.update({f"{o.info.hash}": o.info for o in entry.outs})
            infos.update({f"{i.hash}": i for i in lock.data.values()})
    entries: dict[str, RunEntry] = {}
    if local_entries:
        for entry in session.lock.stages.values():
            found = session.run_cache.get(entry.fingerprint)
            if found is not None:
                entries[entry.fingerprint] = found
    return infos, entries


def _pushed(session: Session, path: str) -> bool:
    out = _out(session, path)
    return out is None or out.push


def _out(session: Session, path: str) -> Any:
    for stage in session.project.stages.values():
        for out in stage.outs:
            if out.path == path:
                return out
    return None


def _routes(
    session: Session, options: SyncOptions, infos: dict[str, HashInfo]
) -> dict[str | None, list[str]]:
    """Remote name (None: the default) → the paths going there; the first also gets the
    run-cache entries and run records."""
    routes: dict[str | None, list[str]] = {options.remote: []}
    for path in infos:
        out = _out(session, path)
        name = options.remote or (out.remote if out is not None else None)
        routes.setdefault(name, []).append(path)
    return routes


def _jobs(transfer: Transfer, options: SyncOptions) -> None:
    if options.jobs is not None:
        transfer.remote.jobs = options.jobs


# --- status --remote ----------------------------------------------------------------------


@dataclass(frozen=True)
class PathState:
    """Whether one tracked path's objects are in the local cache and on the remote."""

    path: str
    local: bool
    remote: bool


@dataclass
class RemoteStatus:
    remote: str
    url: str
    paths: list[PathState] = field(default_factory=list)

    @property
    def to_push(self) -> list[str]:
        return [s.path for s in self.paths if s.local and not s.remote]

    @property
    def to_pull(self) -> list[str]:
        return [s.path for s in self.paths if s.remote and not s.local]

    @property
    def lost(self) -> list[str]:
        return [s.path for s in self.paths if not s.local and not s.remote]

    def to_json(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "url": self.url,
            "push": self.to_push,
            "pull": self.to_pull,
            "nowhere": self.lost,
            "in_sync": [s.path for s in self.paths if s.local and s.remote],
        }


def remote_status(session: Session, options: SyncOptions) -> RemoteStatus:
    """For each tracked path, where its objects are: the cache, the remote, both, neither."""
    infos, _ = _collect(session, options, local_entries=False)
    with connect(session, options.remote) as transfer:
        transfer.open(writing=False)
        objects = {path: _objects_of(session, transfer, info) for path, info in infos.items()}
        located = set(transfer.locate(set().union(*objects.values()) if objects else set()))
        status = RemoteStatus(transfer.remote.name, transfer.remote.url)
    store = session.store
    for path, digests in sorted(objects.items()):
        local = all(store.has(d) for d in digests) and store.has(infos[path].hash)
        status.paths.append(PathState(path, local, digests <= located))
    return status


def _objects_of(session: Session, transfer: Transfer, info: HashInfo) -> set[str]:
    """An object and, for a directory, its files (from the local tree, else the remote's)."""
    if not info.isdir:
        return {info.hash}
    if not session.store.has(info.hash):
        transfer.download([HashInfo(info.hash, 0, 1)])  # the listing only: it is tiny
    if not session.store.has(info.hash):
        return {info.hash}
    return {info.hash, *(e.hash for e in session.store.read_tree(info.hash))}
