"""`pipeline push`, `fetch`, `pull` and `status --remote`: the cache and a remote in step.

What moves: the objects the lock refers to (cached outputs, tracked data; with `--all-commits`
every commit's lock), the run-cache entries of the lock's stages with their logs, and, with
`--runs`, run records with the files they kept and the model registry's events (with the
packages they register). An output declared `push: false` stays local;
one with `remote: NAME` goes to that remote unless `-r` names another. `pull` is `fetch` and
then `checkout`. Every object fetched is verified before it enters the cache (`store/transfer`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.core.git import root_commit
from pipeline.core.hashing import HashInfo
from pipeline.core.paths import is_within
from pipeline.data.checkout import CheckoutReport, checkout, wanted
from pipeline.data.dvcremote import dvc_remote, pull_pointers, stale_pointers
from pipeline.data.history import locks_in
from pipeline.data.options import SyncOptions
from pipeline.errors import DataError, UsageError
from pipeline.load.dvcfiles import read_pointers
from pipeline.plan.options import PlanOptions
from pipeline.plan.selection import select
from pipeline.plan.session import Session
from pipeline.store.remoteruns import fetch_entry
from pipeline.store.runcache import RunEntry
from pipeline.store.transfer import Meter, Report, Transfer, connected

if TYPE_CHECKING:
    from pipeline.runs.exchange import RunDocument
    from pipeline.runs.registry import Event


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
    paths: dict[str, str] = field(default_factory=dict)  # missing or corrupt digest → its path
    never_pushed: list[str] = field(default_factory=list)  # `push: false` outs a pull skipped
    events: int = 0  # model registry events moved (--runs)
    warnings: list[str] = field(default_factory=list)  # e.g. versions renumbered by a merge

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def connect(session: Session, name: str | None, meter: Meter | None = None) -> Iterator[Transfer]:
    """A transfer between this project's cache and the remote `name` (default: the default)."""
    settings = session.config.remote(name)
    with connected(session.store, settings, session.project.root, meter) as transfer:
        yield transfer


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
                report.events = _push_registry(session, transfer)
            reports.append(report)
    return reports


def _push_objects(
    session: Session, transfer: Transfer, infos: dict[str, HashInfo], entries: dict[str, RunEntry]
) -> SyncReport:
    remote = transfer.remote
    report = SyncReport(remote.name, remote.url)
    extra = [o.info for e in entries.values() for o in e.outs]
    logs = [HashInfo(e.log, 0, 1) for e in entries.values() if e.log]
    files, trees, absent = _expand(session, [*infos.values(), *extra, *logs])
    report.objects = transfer.upload(files, trees)
    report.not_cached = sorted({*absent, *report.objects.not_local})
    report.runs = _push_entries(session, transfer, entries)
    return report


def _expand(
    session: Session, infos: list[HashInfo]
) -> tuple[set[str], dict[str, set[str]], list[str]]:
    """(files, trees → their files, hashes not in the local cache) for `infos`.

    A directory's files are not looked for in the cache here: only those the remote lacks
    are (by the upload), so a no-op push never stats them."""
    store = session.store
    files: set[str] = set()
    trees: dict[str, set[str]] = {}
    absent: set[str] = set()
    for info in infos:
        if not store.has(info.hash):
            absent.add(info.hash)
        elif info.isdir:
            members = {e.hash for e in store.read_tree(info.hash)}
            files |= members
            trees[info.hash] = members
        else:
            files.add(info.hash)
    return files, trees, sorted(absent)


def _push_entries(session: Session, transfer: Transfer, entries: dict[str, RunEntry]) -> int:
    """Run-cache entries, after their objects (a teammate's repro may restore from them)."""
    keys = {f"run:{fp}": transfer.remote.run_path(fp) for fp in entries}
    present = transfer.present(keys)

    def send(fingerprint: str) -> None:
        data = session.run_cache.path(fingerprint).read_bytes()
        transfer.remote.write_bytes(transfer.remote.run_path(fingerprint), data)
        transfer.remember(f"run:{fingerprint}")

    todo = [fp for fp in entries if f"run:{fp}" not in present]
    transfer.parallel({fp: functools.partial(send, fp) for fp in todo})
    return len(todo)


def _push_records(session: Session, transfer: Transfer) -> int:
    """Every finished run not on the remote yet: its objects first, then its record."""
    from pipeline.runs.exchange import export_run, shareable  # noqa: PLC0415 - SQLAlchemy
    from pipeline.runs.runstore import RunStore, has_store  # noqa: PLC0415 - only with --runs

    if not has_store(session.project.state_dir):
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
    infos += [o for doc in docs for o in lock_outputs(session, doc)]
    files, trees, _ = _expand(session, infos)
    transfer.upload(files, trees)
    remote = transfer.remote
    for doc in docs:
        remote.write_bytes(remote.record_path(project, doc.id), doc.to_bytes())
    return len(docs)


def lock_outputs(session: Session, doc: RunDocument) -> list[HashInfo]:
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
    from pipeline.core.yamlio import parse_yaml, read_document  # noqa: PLC0415 - PyYAML only here

    path = session.store.path(digest)
    return parse_yaml(read_document(path), path).data


# --- fetch and pull -----------------------------------------------------------------------


def fetch(session: Session, options: SyncOptions, meter: Meter | None = None) -> list[SyncReport]:
    """Bring into the cache what the lock refers to, from its remote(s)."""
    _fetch_listings(session, options)
    infos, _ = _collect(session, options, local_entries=False)
    routes = _routes(session, options, infos)
    reports = []
    for index, (name, paths) in enumerate(routes.items()):
        chosen = [infos[p] for p in paths]
        if not options.runs and all(_cached(session, info) for info in chosen):
            # nothing to bring: not even a request (nor the backend's import)
            settings = session.config.remote(name)
            reports.append(SyncReport(settings.name, settings.url, Report(present=len(chosen))))
            continue
        with connect(session, name, meter) as transfer:
            _jobs(transfer, options)
            report = SyncReport(transfer.remote.name, transfer.remote.url)
            if index == 0:
                report.runs = _fetch_entries(session, transfer)
            report.objects = transfer.download(infos[p] for p in paths)
            report.paths = _paths_of(session, {p: infos[p] for p in paths}, report.objects)
            if options.runs and index == 0:
                report.records = _fetch_records(session, transfer)
                report.events, report.warnings = _fetch_registry(session, transfer)
            reports.append(report)
    return reports


def _fetch_listings(session: Session, options: SyncOptions) -> None:
    """A target inside a tracked directory is found through the directory's listing: bring
    the listings such targets need (tiny) before resolving them."""
    dirs = {
        path: info
        for path, info in wanted(session, ()).items()
        if info.isdir
        and not session.store.has(info.hash)
        and any(is_within(t.rstrip("/"), path) and t.rstrip("/") != path for t in options.targets)
    }
    for path, info in dirs.items():
        out = _out(session, path)
        with connect(session, options.remote or (out.remote if out else None)) as transfer:
            transfer.download([HashInfo(info.hash, 0, 1)])


def _paths_of(session: Session, infos: dict[str, HashInfo], objects: Report) -> dict[str, str]:
    """The workspace path of each object that could not be brought (for the message)."""
    bad = set(objects.missing) | set(objects.corrupt)
    found: dict[str, str] = {}
    for path, info in infos.items():
        if info.hash in bad:
            found[info.hash] = path
        elif info.isdir and session.store.has(info.hash):
            with contextlib.suppress(DataError):
                for entry in session.store.read_tree(info.hash):
                    if entry.hash in bad:
                        found[entry.hash] = f"{path}/{entry.path}"
    return found


def _stale(session: Session, targets: tuple[str, ...]) -> bool:
    """Whether some wanted path differs from the lock in the workspace."""
    for path, info in wanted(session, targets).items():
        current = session.hasher.hash(path)
        if current is None or current.hash != info.hash:
            return True
    return False


def fetch_missing(session: Session) -> list[SyncReport]:
    """What the lock names and the cache lacks, from the default remote (for `checkout RUN`
    of a teammate's run); nothing, and no request, when the cache has it all."""
    if not session.config.has_default_remote:
        return []
    infos = wanted(session, ())
    if all(_cached(session, info) for info in infos.values()):
        return []
    return fetch(session, SyncOptions())


def _cached(session: Session, info: HashInfo) -> bool:
    try:
        return session.store.complete(info)
    except DataError:
        return False


def pull(session: Session, options: SyncOptions, meter: Meter | None = None) -> list[SyncReport]:
    """`fetch`, then `checkout` what was asked for; first, `.dvc` data from the DVC remote."""
    dvc = _pull_dvc(session, options)
    if dvc is not None and not session.config.remotes:
        return [dvc]  # a DVC repository not yet pushed anywhere else: its remote is enough
    _fetch_listings(session, options)
    if options.runs or _stale(session, options.targets):
        reports = fetch(session, options, meter)
    else:  # the workspace matches the lock already: nothing to look for, here or there
        settings = session.config.remote(options.remote)
        reports = [SyncReport(settings.name, settings.url)]
    if reports:
        restored = checkout(session, options.targets)
        local = [p for p in restored.missing if not _pushed(session, p)]
        restored.missing = [p for p in restored.missing if p not in local]
        reports[-1].checkout = restored
        reports[-1].never_pushed = local
    return reports


def _pull_dvc(session: Session, options: SyncOptions) -> SyncReport | None:
    """`.dvc` data this workspace lacks, from the DVC remote; None if there is none to bring."""
    wanted = stale_pointers(session, read_pointers(session.project.root, session.hasher.memo))
    if options.targets:
        wanted = [
            p for p in wanted if any(is_within(p.path, t.rstrip("/")) for t in options.targets)
        ]
    if not wanted:
        return None
    name = options.remote if options.remote and not session.config.remotes else None
    try:
        settings = dvc_remote(session.project.root, name)
    except UsageError:
        if session.config.remotes:  # no DVC remote: the project's own remotes may hold it
            return None
        raise
    report = SyncReport(f"{settings.name} (dvc)", settings.url)
    report.objects = pull_pointers(session, wanted, settings)
    report.paths = {p.md5: p.path for p in wanted}
    return report


def pull_missing(
    session: Session, options: PlanOptions, meter: Meter | None = None
) -> list[SyncReport]:
    """`repro --pull`: what the selected stages read or write, tracked, and absent here."""
    project = session.project
    chosen = select(
        project, options.targets, single_item=options.single_item, downstream=options.downstream
    )
    paths = set()
    for name in chosen.order:
        stage = project.stages[name]
        paths |= set(stage.deps) | {o.path for o in stage.outs}
    missing = tuple(
        sorted(
            p
            for p in wanted(session, ())
            if any(is_within(p, q) or is_within(q, p) for q in paths)
            and not (project.root / p).exists()
        )
    )
    return pull(session, SyncOptions(targets=missing), meter) if missing else []


def _fetch_entries(session: Session, transfer: Transfer) -> int:
    """The run-cache entries of the lock's stages that this machine lacks."""
    wanted_fps = [
        e.fingerprint
        for e in session.lock.stages.values()
        if session.run_cache.get(e.fingerprint) is None
    ]
    entries = transfer.parallel(
        {fp: functools.partial(fetch_entry, transfer, fp) for fp in wanted_fps}
    )
    for entry in entries.values():
        if entry is not None:
            session.run_cache.put(entry)
    return sum(entry is not None for entry in entries.values())


def _fetch_records(session: Session, transfer: Transfer) -> int:
    """Teammates' runs: their records, then the objects those records name."""
    from pipeline.runs.exchange import import_run  # noqa: PLC0415 - SQLAlchemy
    from pipeline.runs.runstore import RunStore  # noqa: PLC0415 - only with --runs

    store = RunStore.for_project(session.project.state_dir)
    try:
        docs = remote_documents(session, transfer, skip=store.ids())
        transfer.download(HashInfo(d, 0, 1) for doc in docs for d in doc.objects())
        for doc in sorted(docs, key=lambda d: (d.detail.run.parent_id is not None, d.id)):
            import_run(store, doc)
    finally:
        store.close()
    return len(docs)


def remote_documents(
    session: Session, transfer: Transfer, skip: set[str] | frozenset[str] = frozenset()
) -> list[RunDocument]:
    """This project's run records on the remote, but those in `skip`."""
    from pipeline.runs.exchange import read_document  # noqa: PLC0415 - SQLAlchemy

    project = _project_id(session)
    remote = transfer.remote
    wanted_ids = sorted(_remote_records(transfer, project) - set(skip))
    raw = transfer.parallel(
        {
            i: functools.partial(remote.read_bytes, remote.record_path(project, i))
            for i in wanted_ids
        }
    )
    return [read_document(data, f"run record {i}") for i, data in raw.items()]


def _remote_records(transfer: Transfer, project: str) -> set[str]:
    names = transfer.remote.find(f"records/{project}")
    return {n.rsplit("/", 1)[-1].removesuffix(".json") for n in names if n.endswith(".json")}


# --- the model registry (--runs) ----------------------------------------------------------


def _push_registry(session: Session, transfer: Transfer) -> int:
    """Registry events the remote lacks: the packages they register first, then the events
    (one document each, named by the event's id)."""
    from pipeline.runs.exchange import event_bytes  # noqa: PLC0415 - SQLAlchemy
    from pipeline.runs.registry import Registry  # noqa: PLC0415 - only with --runs
    from pipeline.runs.runstore import RunStore, has_store  # noqa: PLC0415 - only with --runs

    if not has_store(session.project.state_dir):
        return 0
    project = _project_id(session)
    on_remote = _remote_events(transfer, project)
    store = RunStore.for_project(session.project.state_dir)
    try:
        events = [e for e in Registry(store).history() if e.id not in on_remote]
    finally:
        store.close()
    packages = {e.hash for e in events if e.action == "register" and e.hash}
    files, trees, _ = _expand(session, [HashInfo(h, 0, 0, isdir=True) for h in packages])
    transfer.upload(files, trees)
    remote = transfer.remote

    def send(data: bytes, path: str) -> None:
        remote.write_bytes(path, data)

    transfer.parallel(
        {
            e.id: functools.partial(send, event_bytes(e), _event_path(transfer, project, e.id))
            for e in events
        }
    )
    return len(events)


def _fetch_registry(session: Session, transfer: Transfer) -> tuple[int, list[str]]:
    """Teammates' registry events this store lacks, imported and replayed; (how many, the
    warnings: versions that got another number, events skipped as invalid)."""
    from pipeline.runs.registry import Registry  # noqa: PLC0415 - only with --runs
    from pipeline.runs.runstore import RunStore  # noqa: PLC0415 - only with --runs

    project = _project_id(session)
    store = RunStore.for_project(session.project.state_dir)
    try:
        registry = Registry(store)
        local = {e.id for e in registry.history()}
        wanted_ids = sorted(_remote_events(transfer, project) - local)
        raw = transfer.parallel(
            {
                i: functools.partial(transfer.remote.read_bytes, _event_path(transfer, project, i))
                for i in wanted_ids
            }
        )
        events, skipped = _read_events(raw)
        count, warnings = registry.import_events(events)
    finally:
        store.close()
    return count, skipped + warnings


def remote_registered(session: Session, transfer: Transfer) -> set[str]:
    """The packages this project's registry events on the remote register (remote `gc` keeps
    them)."""
    project = _project_id(session)
    ids = sorted(_remote_events(transfer, project))
    raw = transfer.parallel(
        {
            i: functools.partial(transfer.remote.read_bytes, _event_path(transfer, project, i))
            for i in ids
        }
    )
    events, _ = _read_events(raw)  # an invalid one names no package to keep
    return {e.hash for e in events if e.action == "register" and e.hash}


def _read_events(raw: dict[str, bytes]) -> tuple[list[Event], list[str]]:
    """The valid events of `raw` (by id) and a warning for each other one: whoever can write
    to the remote can write events, and one bad event must not stop a pull."""
    from pipeline.runs.exchange import read_event  # noqa: PLC0415 - SQLAlchemy

    events, skipped = [], []
    for event_id, data in sorted(raw.items()):
        try:
            event = read_event(data, f"registry event {event_id}")
        except DataError as exc:
            skipped.append(f"{exc}: it was skipped")
            continue
        if event.id != event_id:  # the file name is how pulls tell which events they have
            skipped.append(f"registry event {event_id} says its id is another: it was skipped")
            continue
        events.append(event)
    return events, skipped


def _remote_events(transfer: Transfer, project: str) -> set[str]:
    names = transfer.remote.find(f"registry/{project}")
    return {n.rsplit("/", 1)[-1].removesuffix(".json") for n in names if n.endswith(".json")}


def _event_path(transfer: Transfer, project: str, event_id: str) -> str:
    return f"{transfer.remote.base}/registry/{project}/{event_id}.json"


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
        for name, entry in session.lock.stages.items():
            found = session.run_cache.get(entry.fingerprint)
            if found is not None and _entry_shared(session, name, options):
                entries[entry.fingerprint] = found
    return infos, entries


def _entry_shared(session: Session, name: str, options: SyncOptions) -> bool:
    """A stage's run-cache entry travels with its outputs: not when one stays local
    (`push: false`) or goes to a remote of its own (`remote:`, unless `-r` names one)."""
    stage = session.project.stages.get(name)
    if stage is None:
        return False
    return all(o.push and (options.remote or not o.remote) for o in stage.outs)


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
