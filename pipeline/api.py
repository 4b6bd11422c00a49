"""The Python API: everything the CLI does, callable as `pipeline.repro(...)` and friends.

Each call is load → plan → execute → record in one direction; the CLI only parses options into
`ReproOptions` and renders what these functions return.

Imports inside the functions protect start-up time: each command loads only what it uses, so
`status` never imports the executor, and only commands that read runs import SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.options import values_of
from pipeline.core.paths import normalize
from pipeline.data.options import SyncOptions
from pipeline.errors import AmbiguousRun, Interrupted, PipelineError, UsageError
from pipeline.execute.options import ExecOptions, ReproOptions
from pipeline.load.envkind import EnvKind
from pipeline.load.project import STATE_DIR, load_project, project_root
from pipeline.plan.adopt import record_adopted
from pipeline.plan.decisions import Plan, make_plan
from pipeline.plan.session import Session, open_session

if TYPE_CHECKING:
    from pipeline.data.add import Added
    from pipeline.data.checkout import CheckoutReport
    from pipeline.data.gc import GcReport
    from pipeline.data.remotes import RemoteSummary
    from pipeline.data.starter import Started
    from pipeline.data.sync import RemoteStatus, SyncReport
    from pipeline.env.envstore import BuiltEnv
    from pipeline.env.manage import EnvReport, Pruned
    from pipeline.execute.dispatch import JobBackend
    from pipeline.execute.scheduler import Events, RunResult
    from pipeline.execute.stagejob import JobResult
    from pipeline.experiments.dry import PointPlan
    from pipeline.experiments.entry import EntryRun
    from pipeline.experiments.options import RunOptions
    from pipeline.experiments.run import EventsFor, Experiment
    from pipeline.experiments.verify import StageCheck, VerifyReport
    from pipeline.plots import Chart, Revision
    from pipeline.runs.compare import Table
    from pipeline.runs.diff import Change, Values, Workspace
    from pipeline.runs.gittags import TagPlan
    from pipeline.runs.lineage import ModelLineage, Node
    from pipeline.runs.logs import StageLog
    from pipeline.runs.registry import Event, ModelSummary, Version
    from pipeline.runs.runstore import RunDetail, RunRow, RunStore
    from pipeline.serve.refs import ModelRef
    from pipeline.store.transfer import Meter


def init(root: Path | str = ".", *, dvc: bool = False) -> Started:
    """Start a project in `root`: a commented starter manifest (`dvc.yaml` with `dvc`, else
    `MLproject`), `params.yaml` and the `.gitignore` block; refuses to overwrite a file."""
    from pipeline.data.starter import init_project

    return init_project(Path(root), dvc=dvc)


def plan(options: ReproOptions | None = None) -> Plan:
    """What `repro` would do and why, without running anything (`status`, `repro --dry`)."""
    options = options or ReproOptions()
    with open_session(options.root) as session:
        return make_plan(session, options)


status = plan


def repro(
    options: ReproOptions | None = None,
    events: Events | None = None,
    on_wait: Callable[[str], None] | None = None,
    backend: JobBackend | None = None,
) -> RunResult:
    """Bring the workspace up to date: run every stale selected stage, upstream first.

    Only one `repro` runs per project at a time; `on_wait` hears about the one we wait for.
    With a `backend`, stages that must run leave this process as stage jobs (data through
    the default remote); planning, the lock and the records stay here.
    """
    # Imported here so that `status` never pays for the executor, threads and file locks.
    from pipeline.data.add import tracked_paths
    from pipeline.data.gitignore import update_gitignore
    from pipeline.execute.command import sigterm_as_interrupt
    from pipeline.execute.orchestrate import Execution, execute
    from pipeline.execute.outputs import restock
    from pipeline.execute.scheduler import QuietEvents
    from pipeline.runs.record import RunInfo

    options = options or ReproOptions()
    how = Execution(
        **values_of(ExecOptions, options),
        record=RunInfo(kind="repro", command=options.command) if options.record else None,
        backend=backend,
    )
    try:
        with (
            sigterm_as_interrupt(),
            _exclusive(options.root, wait=options.wait, on_wait=on_wait),
            open_session(options.root) as session,
        ):
            if options.pull:
                from pipeline.data.sync import pull_missing

                pull_missing(session, options)
            plan = make_plan(session, options)
            if not restock(session, plan):  # a workspace file was not what the memo said
                plan = make_plan(session, options)
            locked = record_adopted(session, plan.adopted)  # stages DVC ran: locked once
            result, executor = execute(locked, plan, events or QuietEvents(), how)
            # Even when nothing ran: a copied or cloned workspace may lack the block, and
            # `git add -A` would then commit the models (unchanged block: one check-ignore).
            update_gitignore(session.project.root, tracked_paths(session.project, executor.lock))
            return result
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted; the lock keeps every stage that finished",
            "run `pipeline repro` again to continue",
        ) from None


def exec_stage(job: Path | str, home: Path | str | None = None) -> JobResult:
    """Run one stage job (`JOB.json`, as `repro --executor` makes them) on this machine: the
    worker's half (DESIGN §8). Its data moves through the remote the job names (or it runs
    in place, for `executor.shared_fs`); `home` holds this worker's cache (default
    `$PIPELINE_WORKER_HOME`, else `~/.cache/pipeline/worker`). Ctrl-C stops the command."""
    from pipeline.execute.command import ProcessTracker, sigterm_as_interrupt
    from pipeline.execute.stagejob import load_job, run_job, worker_home

    parsed = load_job(Path(job))
    tracker = ProcessTracker()
    try:
        with sigterm_as_interrupt():
            return run_job(parsed, Path(home) if home else worker_home(), tracker)
    except KeyboardInterrupt:
        tracker.stop_all()
        message = f"interrupted; stage {parsed.stage} was stopped"
        raise Interrupted(message, "run it again") from None


def verify(
    root: Path | str = ".",
    targets: tuple[str, ...] = (),
    *,
    events: Events | None = None,
    on_check: Callable[[StageCheck], None] | None = None,
) -> VerifyReport:
    """Rerun stages in an isolated workspace and compare their outputs with the lock.

    `targets` are stages (default: every stage in the lock), each checked against its locked
    inputs. Only reads the workspace, lock and cache; `on_check` hears each stage's verdict.
    """
    from pipeline.execute.command import sigterm_as_interrupt
    from pipeline.experiments.verify import verify as audit

    try:
        with sigterm_as_interrupt(), open_session(root) as session:
            return audit(session, targets, events, on_check)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; nothing was changed") from None


@contextlib.contextmanager
def _exclusive(
    root: Path | str, *, wait: bool = True, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the project lock: commands that change the workspace run one at a time."""
    from pipeline.execute.projectlock import project_lock

    with project_lock(project_root(root) / STATE_DIR, wait=wait, on_wait=on_wait):
        yield


Waiting = Callable[[str], None] | None


def checkout(
    root: Path | str = ".",
    targets: tuple[str, ...] = (),
    *,
    verify: bool = False,
    on_wait: Waiting = None,
    run: str | None = None,
    force: bool = False,
) -> CheckoutReport:
    """Make the workspace's outputs and tracked data match `pipeline.lock`, from the cache.

    With `run`, first bring that experiment's params files and lock into the workspace (params
    files with uncommitted edits are refused unless `force`).
    """
    from pipeline.data.checkout import checkout as restore_workspace

    with _exclusive(root, on_wait=on_wait):
        if run is not None:
            from pipeline.experiments.apply import apply_run_files

            with open_session(root) as session, _run_store(root) as store:
                apply_run_files(session, store, run, force=force)
        with open_session(root) as session:
            if run is not None:  # a teammate's run (`pull --runs`): its outputs may be remote
                from pipeline.data.sync import fetch_missing

                fetch_missing(session)
            names = functools.partial(_run_names, root)  # asked only for a did-you-mean
            report = restore_workspace(session, targets, verify=verify, runs=names)
            _keep_ignored(session)
            return report


def _run_names(root: Path | str) -> list[str]:
    """Every recorded run's name and id (for a did-you-mean)."""
    with _run_store(root) as store:
        rows = store.runs(limit=None)
    return [*(r.name for r in rows if r.name), *(r.id for r in rows)]


def _keep_ignored(session: Session) -> None:
    """The `.gitignore` block lists what the lock restores (a clone may lack it)."""
    from pipeline.data.add import tracked_paths
    from pipeline.data.gitignore import update_gitignore

    update_gitignore(session.project.root, tracked_paths(session.project, session.lock))


def is_run(root: Path | str, ref: str) -> bool:
    """Whether `ref` names a recorded run (and not a stage or a path of the project)."""
    with open_session(root) as session:
        if ref in session.project.stages or (Path.cwd() / ref).exists():
            return False
        from pipeline.runs.runstore import has_store

        if not has_store(session.project.state_dir):
            return False
    try:
        with _run_store(root) as store:
            store.find(ref)
    except AmbiguousRun:
        return True  # checking out says which runs it could mean
    except PipelineError:
        return False
    return True


def add(root: Path | str, paths: list[str], *, on_wait: Waiting = None) -> list[Added]:
    """Track raw data: hash it into the cache and record it in the lock's `data:` section."""
    from pipeline.data.add import add_paths

    with _exclusive(root, on_wait=on_wait), open_session(root) as session:
        return add_paths(session, paths)


def gc(
    root: Path | str = ".",
    scope: str = "branches",
    *,
    dry: bool = False,
    on_wait: Waiting = None,
    remote: str | None = None,
    runs_older_than: str | float | None = None,
    drop_runs: Sequence[str] = (),
) -> GcReport:
    """Free cache objects that no lock in `scope`, recorded run or running experiment needs;
    with `remote`, on that remote instead (never the local cache).

    Recorded runs are dropped first: those started more than `runs_older_than` ago (seconds,
    or text such as `30d`, `12h`, `2w`) and those `drop_runs` names (ids, prefixes, names).
    """
    from pipeline.data.gc import collect, collect_remote
    from pipeline.data.runkeep import RunDrop, parse_age

    age = parse_age(runs_older_than) if isinstance(runs_older_than, str) else runs_older_than
    drop = RunDrop(age, tuple(drop_runs))
    if remote is not None and drop:
        raise UsageError("runs are dropped from the local run store only", "leave out --remote")
    with _exclusive(root, on_wait=on_wait), open_session(root) as session:
        if remote is not None:
            return collect_remote(session, scope, remote, dry=dry)
        return collect(session, scope, dry=dry, drop=drop)


def push(
    options: SyncOptions | None = None,
    root: Path | str = ".",
    *,
    meter: Meter | None = None,
) -> list[SyncReport]:
    """Send the lock's objects (and run-cache entries; with `runs`, run records) to remotes."""
    from pipeline.data import sync

    options = options or SyncOptions()
    return _sync(root, lambda session: sync.push(session, options, meter))


def fetch(
    options: SyncOptions | None = None,
    root: Path | str = ".",
    *,
    meter: Meter | None = None,
) -> list[SyncReport]:
    """Bring the lock's objects into the cache from remotes, verified (workspace untouched)."""
    from pipeline.data import sync

    options = options or SyncOptions()
    return _sync(root, lambda session: sync.fetch(session, options, meter))


def pull(
    options: SyncOptions | None = None,
    root: Path | str = ".",
    *,
    meter: Meter | None = None,
    on_wait: Waiting = None,
) -> list[SyncReport]:
    """`fetch`, then `checkout`: the workspace gets the lock's data and outputs."""
    from pipeline.data import sync

    options = options or SyncOptions()

    def pull_and_ignore(session: Session) -> list[SyncReport]:
        reports = sync.pull(session, options, meter)
        _keep_ignored(session)
        return reports

    with _exclusive(root, on_wait=on_wait):
        return _sync(root, pull_and_ignore)


def pull_missing(
    options: ReproOptions, *, meter: Meter | None = None, on_wait: Waiting = None
) -> list[SyncReport]:
    """`repro --pull`'s first step: the tracked data and outputs of the selected stages that
    this workspace lacks, from the default remote."""
    from pipeline.data import sync

    with _exclusive(options.root, on_wait=on_wait):
        return _sync(options.root, lambda session: sync.pull_missing(session, options, meter))


def remote_status(options: SyncOptions | None = None, root: Path | str = ".") -> RemoteStatus:
    """Which tracked paths are only local (push them), only remote (pull them), or nowhere."""
    from pipeline.data import sync

    with open_session(root) as session:
        return sync.remote_status(session, options or SyncOptions())


def _sync(root: Path | str, action: Callable[[Session], list[SyncReport]]) -> list[SyncReport]:
    from pipeline.execute.command import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt(), open_session(root) as session:
            return action(session)
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted; what was transferred is kept", "run the command again to finish"
        ) from None


def remote_list(root: Path | str = ".") -> list[RemoteSummary]:
    """The configured remotes (`pipeline remote list`), secrets masked."""
    from pipeline.data import remotes

    with open_session(root) as session:
        return remotes.listing(session.config)


def remote_add(
    root: Path | str, name: str, url: str, *, default: bool = False, force: bool = False
) -> None:
    """Add a remote to `.pipeline/config.yaml` (the first one becomes the default)."""
    from pipeline.data import remotes

    remotes.add(_state_dir(root), name, url, default=default, force=force)


def remote_modify(
    root: Path | str, name: str, key: str, value: str | None, *, local: bool = False
) -> Path:
    """Set (value None: unset) an option of a remote; secrets only with `local`."""
    from pipeline.data import remotes

    return remotes.modify(_state_dir(root), name, key, value, local=local)


def remote_remove(root: Path | str, name: str) -> None:
    from pipeline.data import remotes

    remotes.remove(_state_dir(root), name)


def remote_default(root: Path | str, name: str) -> None:
    from pipeline.data import remotes

    remotes.set_default(_state_dir(root), name)


def _state_dir(root: Path | str) -> Path:
    from pipeline.core.statmemo import init_state_dir

    return init_state_dir(project_root(root) / STATE_DIR)


def fsck(
    root: Path | str = ".", on_progress: Callable[[int, int], None] | None = None
) -> list[str]:
    """Rehash every cached object; return the damaged ones (moved to `cache/corrupt/`).

    `on_progress(done, total)` hears about every object checked.
    """
    with open_session(root) as session:
        total = sum(1 for _ in session.store.all_objects())
        corrupt = []
        for done, (digest, intact) in enumerate(session.store.fsck(), start=1):
            if not intact:
                corrupt.append(digest)
            if on_progress is not None:
                on_progress(done, total)
        return corrupt


def env_list(root: Path | str = ".") -> list[EnvReport]:
    """The project's environments, resolved on this machine (`pipeline env list`)."""
    from pipeline.env import manage

    with open_session(root) as session:
        return manage.env_list(session.project)


def env_show(root: Path | str, stage: str) -> EnvReport | None:
    """The env a stage runs in, with its packages if built; None: the system's."""
    from pipeline.env import manage

    with open_session(root) as session:
        return manage.env_show(session.project, stage)


def env_build(
    root: Path | str = ".",
    names: tuple[str, ...] = (),
    *,
    everything: bool = False,
    force: bool = False,
    say: Callable[[str], None] | None = None,
) -> list[tuple[str, BuiltEnv]]:
    """Build envs ahead of time: `names`, or all declared (`everything`), or those in use."""
    from pipeline.env import manage

    with open_session(root) as session:
        chosen = manage.selected(session.project, names, everything=everything)
        return manage.env_build(session.project, chosen, session.config.env, force=force, say=say)


def env_lock(
    root: Path | str = ".", names: tuple[str, ...] = (), say: Callable[[str], None] | None = None
) -> list[Path]:
    """Write lock files for `names` (default: the envs in use); returns the paths."""
    from pipeline.env import manage

    with open_session(root) as session:
        chosen = manage.selected(session.project, names, everything=False)
        lockable = [
            n for n in chosen if session.project.environments[n].kind is not EnvKind.CONDA_LOCK
        ]
        return manage.env_lock(session.project, lockable if not names else chosen, say)


def env_prune(root: Path | str = ".", *, days: float = 30, dry: bool = False) -> Pruned:
    """Remove cached envs this project does not use and nobody used for `days` days."""
    from pipeline.env import manage

    with open_session(root) as session:
        return manage.env_prune(session.project, days=days, dry=dry)


def run(options: RunOptions, events_for: EventsFor | None = None) -> Experiment:
    """Experiments: run in isolated workspaces with `--param` overrides or a `--sweep` grid.

    The user's files are never written; every point is recorded as a run (a sweep also as the
    parent of its points). `events_for(point, count)` gives each point's progress sink.
    """
    from pipeline.execute.command import sigterm_as_interrupt
    from pipeline.experiments.run import run_experiments

    try:
        with sigterm_as_interrupt():
            return run_experiments(options, events_for)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; the runs are recorded as interrupted") from None


def run_plan(options: RunOptions) -> tuple[PointPlan, ...]:
    """`run --dry`: what each point of the experiment would run and why; nothing is executed
    or recorded, and the user's files are not written."""
    from pipeline.experiments.dry import plan_experiments

    return plan_experiments(options)


def run_entry(
    root: Path | str,
    name: str,
    params: tuple[str, ...] = (),
    sink: Callable[[bytes], None] | None = None,
    *,
    env_manager: str = "declared",
    command: str = "",
) -> EntryRun:
    """Run an MLflow entry point with `-P key=value` params, validated, and record it."""
    from pipeline.execute.command import sigterm_as_interrupt
    from pipeline.experiments.entry import run_entry as run_it

    try:
        with sigterm_as_interrupt(), open_session(root) as session:
            return run_it(
                session,
                name,
                params,
                sink or (lambda _: None),
                local=env_manager == "local",
                command_line=command,
            )
    except KeyboardInterrupt:
        raise Interrupted("interrupted; the run is recorded as interrupted") from None


def default_entry(root: Path | str = ".") -> str | None:
    """`main`, when the project has no stages but a `main` entry point (MLflow's default)."""
    project = load_project(root)
    return "main" if not project.stages and "main" in project.entry_points else None


@contextlib.contextmanager
def _run_store(root: Path | str) -> Iterator[RunStore]:
    from pipeline.runs.tracking import reading

    with reading(root) as store:
        yield store


def runs(root: Path | str = ".", limit: int | None = 20) -> list[RunRow]:
    """Recorded runs, newest first (`pipeline runs`); `missing_objects` marks a run whose
    objects are gone from the cache."""
    from pipeline.runs.needs import mark_missing

    with _run_store(root) as store:
        return mark_missing(store, store.runs(limit=limit), _present(root))


def run_detail(root: Path | str, ref: str) -> RunDetail:
    """Everything recorded about one run: a run id, id prefix, name or `latest`."""
    from pipeline.runs.needs import mark_detail

    with _run_store(root) as store:
        return mark_detail(store, store.detail(ref), _present(root))


def run_logs(root: Path | str, ref: str, stage: str | None = None) -> list[StageLog]:
    """The logs of RUN's stages (a sweep: its points'), or of one `stage`, from the cache.

    A log whose object is gone from the cache comes back with `data` None.
    """
    from pipeline.runs.logs import stage_logs, with_points

    with _run_store(root) as store:
        return stage_logs(with_points(store, ref), stage, _reader(root))


def failed_logs(root: Path | str, ref: str) -> list[StageLog]:
    """The failed stages of RUN (a sweep: of its points), each with its log if still cached."""
    from pipeline.runs import logs

    with _run_store(root) as store:
        return logs.failed_logs(logs.with_points(store, ref), _reader(root))


def _reader(root: Path | str) -> Callable[[str], bytes | None]:
    """An object's bytes from the project's cache, or None when it is not there."""
    from pipeline.store.objects import ObjectStore

    cache = ObjectStore(project_root(root) / STATE_DIR / "cache")  # never created

    def read(digest: str) -> bytes | None:
        try:
            return cache.path(digest).read_bytes()
        except (OSError, PipelineError):  # gone, unreadable, or not a hash at all
            return None

    return read


def _present(root: Path | str) -> Callable[[str], bool]:
    """Whether the project's cache holds an object: one `stat`, never a hash."""
    from pipeline.store.objects import ObjectStore

    cache = ObjectStore(project_root(root) / STATE_DIR / "cache")  # never created

    def present(digest: str) -> bool:
        try:
            return cache.has(digest)
        except PipelineError:  # not a hash at all: a damaged record needs what cannot be
            return False

    return present


def compare(
    root: Path | str = ".",
    refs: tuple[str, ...] = (),
    *,
    limit: int = 20,
    all_columns: bool = False,
    sort_by: str | None = None,
    ascending: bool = False,
) -> Table:
    """Runs side by side: params and metrics, by default only the columns that differ."""
    from pipeline.runs.compare import compare as build

    with _run_store(root) as store:
        return build(
            store,
            refs,
            limit=limit,
            all_columns=all_columns,
            sort_by=sort_by,
            descending=not ascending,
            present=_present(root),
        )


def metrics_show(root: Path | str = ".", ref: str = "workspace") -> Values:
    """The metrics of the workspace, a run or a git revision."""
    from pipeline.runs.diff import metrics_of

    with open_session(root) as session, _run_store(root) as store:
        return metrics_of(_workspace(session), store, ref)


def metrics_diff(
    root: Path | str = ".", old: str = "HEAD", new: str = "workspace", *, all_keys: bool = False
) -> tuple[Values, Values, list[Change]]:
    """Metrics of `old` and `new` (each the workspace, a run or a revision) and what changed."""
    return _diff(root, "metrics", old, new, all_keys=all_keys)


def params_diff(
    root: Path | str = ".", old: str = "HEAD", new: str = "workspace", *, all_keys: bool = False
) -> tuple[Values, Values, list[Change]]:
    """Params of `old` and `new` and what changed."""
    return _diff(root, "params", old, new, all_keys=all_keys)


def _diff(
    root: Path | str, what: str, old: str, new: str, *, all_keys: bool
) -> tuple[Values, Values, list[Change]]:
    from pipeline.runs import diff

    values_of = diff.metrics_of if what == "metrics" else diff.params_of
    with open_session(root) as session, _run_store(root) as store:
        here = _workspace(session)
        a, b = values_of(here, store, old), values_of(here, store, new)
        return a, b, diff.diff(a, b, all_keys=all_keys)


def _workspace(session: Session) -> Workspace:
    from pipeline.runs.diff import Workspace

    return Workspace(session.project, session.store.path)


def lineage(root: Path | str, path: str) -> Node:
    """Which run and stage produced the file at `path`, from which inputs, back to raw data."""
    from pipeline.runs.lineage import lineage as walk

    with open_session(root) as session, _run_store(root) as store:
        relpath = _project_path(session, path)
        return walk(store, session.hasher, normalize(relpath))


def _project_path(session: Session, path: str) -> str:
    absolute = (Path.cwd() / path).resolve()
    try:
        return absolute.relative_to(session.project.root.resolve()).as_posix()
    except ValueError:
        raise UsageError(
            f"{path} is outside the project at {session.project.root}",
            "give a path inside the project",
        ) from None


def model_lineage(root: Path | str, ref: str) -> ModelLineage:
    """`lineage models:/NAME@ALIAS` (or `/N`, `/latest`, `runs:/RUN/PATH`): the run and stage
    that wrote the package, with commit, params, metrics, env and inputs back to raw data."""
    from pipeline.runs import modeluri
    from pipeline.runs.lineage import package_lineage
    from pipeline.runs.registry import Registry

    uri = modeluri.parse(ref)
    with _run_store(root) as store:
        if isinstance(uri, modeluri.ModelUri):
            found = Registry(store).show(uri.name, uri.spec)
            where, version = (found.path, found.hash), (found.name, found.version)
        else:
            detail = store.detail(uri.run)
            outs = [o for s in detail.stages for o in s.outs]
            out = next(
                (o for o in outs if o.path == uri.path or uri.path.startswith(o.path + "/")), None
            )
            if out is None:
                raise UsageError(
                    f"run {detail.run.id} wrote no {uri.path}", "see `pipeline runs show RUN`"
                )
            where, version = (out.path, out.hash), None
        return package_lineage(store, ref, where[0], where[1], version)


# --- the model registry ---------------------------------------------------------------------


def resolve_model(root: Path | str, ref: str) -> ModelRef:
    """A MODEL reference (package dir, `runs:/`, `models:/`, declared artifact) as a local
    package directory, materialised read-only from the cache when the workspace lacks it."""
    from pipeline.serve.refs import resolve_model as resolve

    return resolve(root, ref)


def registry_add(
    root: Path | str, name: str, model: str | None = None, *, message: str | None = None
) -> tuple[Version, bool]:
    """Register MODEL (default: the artifact declared as `name`) as the next version of
    `name`; (the version, whether it is new). The package goes into the cache if it is not
    there; the run and stage that produced it are recorded when one did."""
    from pipeline.runs.registry import Registry, check_name
    from pipeline.serve.refs import artifact, resolve, store_package

    check_name(name)
    with open_session(root) as session:
        if model is None and artifact(session, name) is None:
            names = [a.name for a in session.project.declared.artifacts]
            raise UsageError(
                f"no MODEL given and no artifact is declared as {name!r}",
                "give MODEL: a package dir, runs:/RUN/PATH or models:/NAME/N"
                + (f"; declared artifacts: {', '.join(names)}" if names else ""),
            )
        ref = resolve(session, model or name)
        if ref.path is not None and (session.project.root / ref.path) == ref.dir:
            store_package(session, ref)
        assert ref.hash is not None
        with _store_for_writing(root) as store:
            found = store.producer(ref.hash, ref.path) if ref.path else None
            run_id, stage = (found[0].id, found[1].stage) if found else (ref.run_id, None)
            return Registry(store).add(
                name, ref.hash, path=ref.path, run_id=run_id, stage=stage, message=message
            )


def registry_list(root: Path | str = ".") -> list[ModelSummary]:
    """Every registered model: versions, latest, aliases, tags."""
    from pipeline.runs.registry import Registry

    with _run_store(root) as store:
        return Registry(store).names()


def registry_versions(root: Path | str, name: str) -> list[Version]:
    """Every version of `name`, newest first."""
    from pipeline.runs.registry import Registry

    with _run_store(root) as store:
        return Registry(store).versions(name)


def registry_show(root: Path | str, name: str, version: int | str | None = None) -> Version:
    """One version of `name`: a number, an alias or `latest` (None: the latest)."""
    from pipeline.runs.registry import Registry

    with _run_store(root) as store:
        return Registry(store).show(name, version)


def registry_alias(
    root: Path | str, name: str, alias: str, version: int, *, message: str | None = None
) -> Event:
    """Point `alias` of `name` at `version` (recorded in the history with `message`)."""
    from pipeline.runs.registry import Registry

    with _store_for_writing(root) as store:
        return Registry(store).alias(name, alias, version, message)


def registry_unalias(
    root: Path | str, name: str, alias: str, *, message: str | None = None
) -> Event:
    """Remove `alias` from `name`."""
    from pipeline.runs.registry import Registry

    with _store_for_writing(root) as store:
        return Registry(store).unalias(name, alias, message)


def registry_tag(
    root: Path | str,
    name: str,
    version: int | None,
    key: str,
    value: str | None,
    *,
    message: str | None = None,
) -> Event:
    """Set tag `key` of a version of `name` (None: of the model); `value` None removes it."""
    from pipeline.runs.registry import Registry

    with _store_for_writing(root) as store:
        registry = Registry(store)
        if value is None:
            return registry.untag(name, version, key, message)
        return registry.tag(name, version, key, value, message)


def registry_history(root: Path | str, name: str | None = None) -> list[Event]:
    """Every change of `name` (None: of every model), oldest first."""
    from pipeline.runs.registry import Registry

    with _run_store(root) as store:
        return Registry(store).history(name)


def registry_export_tags(root: Path | str = ".", *, dry: bool = False) -> TagPlan:
    """GTO-style annotated git tags from the registry's history (existing tags are kept)."""
    from pipeline.runs.gittags import export_tags

    with _run_store(root) as store:
        return export_tags(project_root(root), store, dry=dry)


@contextlib.contextmanager
def _store_for_writing(root: Path | str) -> Iterator[RunStore]:
    from pipeline.runs.runstore import RunStore

    store = RunStore.for_project(project_root(root) / STATE_DIR)
    try:
        yield store
    finally:
        store.close()


WORKSPACE = "workspace"


def plots_charts(
    root: Path | str, targets: Sequence[str] = (), refs: Sequence[str] = (WORKSPACE,)
) -> tuple[Path, list[Chart]]:
    """`plots show`/`plots diff`: the charts of `targets` at each REF (the project's root too).

    A REF is `workspace`, a recorded run (its outputs from the cache) or a git revision. The
    metrics a run's code logged are drawn too, one chart per key with a line per run; for
    the workspace, those of the latest run.
    """
    from pipeline import plots
    from pipeline.runs.tracking import reading

    with open_session(root) as session, reading(root) as store:
        revisions = [_plot_revision(session, store, ref) for ref in refs]
        charts = plots.collect(session.project, revisions, targets)
        charts += _logged_charts(store, refs, targets)
        return session.project.root, charts


def _plot_revision(session: Session, store: RunStore, ref: str) -> Revision:
    """`workspace`, else a recorded run's outputs from the cache, else a git revision."""
    from pipeline import plots

    if ref == WORKSPACE:
        return plots.workspace_revision(session.project.root)
    try:
        run = store.find(ref)
    except AmbiguousRun:
        raise
    except UsageError:
        return plots.git_revision(session.project.root, ref)
    outs = {a.path: a.hash for s in store.detail(run.id).stages for a in s.outs}
    return plots.cached_revision(run.name or run.id, outs, session.store.path)


def _logged_charts(store: RunStore, refs: Sequence[str], targets: Sequence[str]) -> list[Chart]:
    """A chart per logged metric key, with a line per run (and stage) that logged it."""
    from pipeline import plots
    from pipeline.runs.tracking import history

    series: dict[str, list[plots.Series]] = {}
    for label, run_id in _logged_runs(store, refs):
        for found in history(store, run_id, targets):
            rows = [{"step": step, found.key: value} for step, _, value in found.points]
            rev = label if found.stage in ("", "script") else f"{label} ({found.stage})"
            series.setdefault(found.key, []).append(plots.Series(rev, found.key, rows))
    return [plots.chart(plots.logged_plot(key), lines) for key, lines in sorted(series.items())]


def _logged_runs(store: RunStore, refs: Sequence[str]) -> list[tuple[str, str]]:
    """(label, run id) of each REF that is a run; the latest run stands for the workspace."""
    found = []
    for ref in refs:
        name = "latest" if ref == WORKSPACE else ref
        with contextlib.suppress(UsageError):  # a git revision, or no run at all: no logged values
            run = store.find(name)
            found.append((run.name or run.id, run.id))
    return found
