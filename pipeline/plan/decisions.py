"""Plan step ②: for every selected stage, a `Decision` to run or skip it, with the reasons.

Planning hashes deps and outs (through the stat memo, so a no-op plan reads no file) and
compares them with `pipeline.lock`. It never runs a command. A stage whose upstream will run
cannot be decided yet: it gets `AFTER_UPSTREAM`, and the executor decides it again once its
upstream has finished, so identical upstream bytes stop the propagation.

The lock names bytes, and the cache must still hold them: an output that is not intact in the
workspace and whose object is gone (or was moved aside by `fsck`) says so in its reasons, since
no checkout can bring it back. An intact output whose object is gone is not stale: the user's
bytes are fine, and `repro` stores them again (`Plan.unstored`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.core.fingerprint import canonical_json, fingerprint
from pipeline.core.hashing import Hasher, HashInfo
from pipeline.core.lockfile import Lock, LockedPath, LockEntry
from pipeline.core.textenum import TextEnum
from pipeline.env.resolve import EnvResolver, ResolvedEnv
from pipeline.errors import UsageError
from pipeline.load.dvcfiles import DvcImport, DvcPointers, read_pointers
from pipeline.load.params import DEFAULT_PARAMS_FILE, overlay
from pipeline.load.project import Project, Stage
from pipeline.load.template import Parsing, TemplateError, render
from pipeline.plan.adopt import Adoption
from pipeline.plan.lost import lost, reread, shares_corrupt_bytes
from pipeline.plan.options import ENV_MANAGERS, PlanOptions
from pipeline.plan.selection import select
from pipeline.plan.session import Session
from pipeline.store.objects import ObjectStore
from pipeline.store.runcache import RunCache, RunEntry


class Action(TextEnum):
    """What the executor does with a stage."""

    UP_TO_DATE = "up to date"
    RUN = "run"
    RESTORE = "restore"  # run before with these exact inputs: bring the outputs back
    AFTER_UPSTREAM = "after upstream"


class ReasonKind(TextEnum):
    """Why a stage must run (or, for the last two, why the executor settled it as it did)."""

    FORCED = "forced"
    NEW_STAGE = "new stage"
    ALWAYS_CHANGED = "always changed"
    ALWAYS_RUNS = "no deps and no outs: always runs"
    FROZEN = "frozen"
    UPSTREAM = "upstream"  # an upstream stage will run first
    CMD_CHANGED = "cmd changed"
    ENV_CHANGED = "env changed"
    DEFINITION_CHANGED = "definition changed"
    PARAM_ADDED = "param added"
    PARAM_REMOVED = "param removed"
    PARAM_MISSING = "param missing"  # in `params:` but not in the file: the stage fails
    PARAM_CHANGED = "param changed"
    DEP_MISSING = "dep missing"
    DEP_ADDED = "dep added"
    DEP_MODIFIED = "dep modified"
    DEP_REMOVED = "dep removed"
    OUT_ADDED = "out added"
    OUT_MISSING = "out missing"
    OUT_MODIFIED = "out modified"
    OUT_REMOVED = "out removed"
    DATA_MISSING = "data missing"
    DATA_MODIFIED = "data modified"
    UPSTREAM_UNCHANGED = "upstream outputs unchanged"
    CACHE_CORRUPT = "cached copy is corrupt"
    OBJECT_MISSING = "cached object missing"  # the lock names bytes the cache no longer has
    OBJECT_CORRUPT = "cached object corrupt"  # ... because they were found damaged, moved aside
    ADOPTED = "adopted from dvc.lock"  # up to date: DVC ran it with these inputs (plan/adopt)


_ABOUT_A_PATH = ("dep ", "out ", "param ", "data ", "env ")  # kinds read "dep X modified"


@dataclass(frozen=True)
class Reason:
    """One reason a stage must run, e.g. `param train.lr 0.1→0.01`."""

    kind: ReasonKind
    subject: str = ""
    old: Any = None
    new: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ReasonKind(self.kind))  # its text is accepted too

    def __str__(self) -> str:
        text = self.kind.value
        if self.kind is ReasonKind.PARAM_CHANGED:
            return f"param {self.subject} {_show(self.old)}→{_show(self.new)}"
        if text.startswith(_ABOUT_A_PATH):
            noun, verb = text.split(" ", 1)
            return f"{noun} {self.subject} {verb}"
        if self.kind is ReasonKind.UPSTREAM:
            return f"upstream {self.subject} will run"
        if self.kind in (ReasonKind.OBJECT_MISSING, ReasonKind.OBJECT_CORRUPT):
            return f"output {self.subject}: {text}"
        return text

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind.value, "text": str(self)}
        if self.subject:
            data["subject"] = self.subject
        if self.kind is ReasonKind.PARAM_CHANGED:
            data.update(old=self.old, new=self.new)
        return data


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Decision:
    """The verdict for one stage and the dep hashes it was based on."""

    stage: str
    action: Action
    reasons: tuple[Reason, ...]
    deps: Mapping[str, HashInfo | None]
    cached: RunEntry | None = None  # with RESTORE: the run whose outputs come back
    env: ResolvedEnv | None = None  # the isolated env the stage runs in, if any
    unstored: tuple[LockedPath, ...] = ()  # intact outputs whose cached object is gone

    @property
    def env_digest(self) -> str | None:
        return self.env.digest if self.env else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stage": self.stage,
            "action": self.action.value,
            "reasons": [r.to_json() for r in self.reasons],
        }
        if self.env is not None:
            data["env"] = {"name": self.env.name, "digest": self.env.digest}
        if self.unstored:
            data["unstored"] = [o.path for o in self.unstored]
        return data


@dataclass(frozen=True)
class Plan:
    """Selected stages in execution order, and the decision for each."""

    order: tuple[str, ...]
    decisions: dict[str, Decision]
    forced: frozenset[str]
    options: PlanOptions
    data: tuple[Reason, ...] = ()  # tracked data (`pipeline add`) that changed
    envs: tuple[ResolvedEnv, ...] = ()  # the isolated envs the selected stages use
    unstored_data: tuple[LockedPath, ...] = ()  # intact tracked data whose object is gone
    adopted: Mapping[str, LockEntry] = field(default_factory=dict)  # from dvc.lock: `repro` locks
    imports: tuple[DvcImport, ...] = ()  # `dvc import`ed paths: named, never fetched

    @property
    def stale_locks(self) -> list[ResolvedEnv]:
        """Envs whose spec changed after their lock was written: `pipeline env lock` them."""
        return [e for e in self.envs if e.lock_stale]

    @property
    def stale(self) -> list[Decision]:
        return [d for n in self.order if (d := self.decisions[n]).action != Action.UP_TO_DATE]

    @property
    def unstored(self) -> list[LockedPath]:
        """Intact workspace paths whose cached object is gone: `repro` stores them again.

        Stages that will run or restore are left out: they replace those outputs anyway.
        """
        kept = (Action.UP_TO_DATE, Action.AFTER_UPSTREAM)
        stages = [self.decisions[n] for n in self.order]
        outs = [o for d in stages if d.action in kept for o in d.unstored]
        return [*outs, *self.unstored_data]


def make_plan(session: Session, options: PlanOptions) -> Plan:
    """Decide every selected stage of the session's project, upstream first."""
    if options.env_manager not in ENV_MANAGERS:
        raise UsageError(
            f"unknown env manager {options.env_manager!r}",
            "use `declared` (each stage's own env) or `local` (the current environment)",
        )
    project, lock, hasher = session.project, session.lock, session.hasher
    envs = EnvResolver(project, local=options.env_manager == "local")
    selection = select(
        project, options.targets, single_item=options.single_item, downstream=options.downstream
    )
    # As in DVC, -f forces every selected stage: the targets and the upstream they bring along.
    forced = frozenset(selection.order) if options.force else frozenset()
    decisions: dict[str, Decision] = {}
    adoption = Adoption(project, hasher)
    for name in selection.order:
        waiting = {
            u
            for u in project.graph.upstream[name]
            if u in decisions and decisions[u].action != Action.UP_TO_DATE
        }
        env = envs.for_stage(project.stages[name])
        decisions[name] = decide(
            project,
            project.stages[name],
            adoption.lock_entry(project.stages[name], lock, forced=name in forced, env=env),
            hasher,
            forced=name in forced,
            waiting=waiting,
            run_cache=session.run_cache if options.run_cache else None,
            env=env,
            store=session.store,
        )
        if decisions[name].action is Action.UP_TO_DATE and name in adoption.adopted:
            decisions[name] = replace(decisions[name], reasons=(Reason(ReasonKind.ADOPTED),))
    pointers = read_pointers(project.root, hasher.memo)
    data = (*_data_changes(lock, hasher), *_pointers_missing(pointers, lock, hasher))
    used = {d.env.digest: d.env for d in decisions.values() if d.env is not None}
    unstored = tuple(_unstored_data(lock, hasher, session.store))
    envs_used = tuple(used.values())
    return Plan(
        selection.order,
        decisions,
        forced,
        options,
        data,
        envs_used,
        unstored,
        adopted=adoption.adopted,
        imports=pointers.imports,
    )


def _data_changes(lock: Lock, hasher: Hasher) -> list[Reason]:
    reasons = []
    for path, info in sorted(lock.data.items()):
        current = hasher.hash(path)
        if current is None:
            reasons.append(Reason(ReasonKind.DATA_MISSING, path))
        elif current.hash != info.hash:
            reasons.append(Reason(ReasonKind.DATA_MODIFIED, path))
    return reasons


def _pointers_missing(pointers: DvcPointers, lock: Lock, hasher: Hasher) -> list[Reason]:
    """`.dvc` data the workspace lacks (`pipeline pull` brings it); once pulled, the lock's
    `data:` tracks it. Only presence is checked: DVC's md5 is not memoised, xxh3 is."""
    return [
        Reason(ReasonKind.DATA_MISSING, p.path)
        for p in pointers.data
        if p.path not in lock.data and hasher.hash(p.path) is None
    ]


def _unstored_data(lock: Lock, hasher: Hasher, store: ObjectStore) -> list[LockedPath]:
    """Tracked data intact in the workspace (as hashed just before) whose object is gone."""
    found = []
    for path, info in sorted(lock.data.items()):
        current = hasher.hash(path)  # memoised by `_data_changes`: no second stat
        if current is not None and current.hash == info.hash and lost(store, info):
            found.append(LockedPath(path, info))
    return found


def decide(
    project: Project,
    stage: Stage,
    entry: LockEntry | None,
    hasher: Hasher,
    *,
    forced: bool = False,
    waiting: set[str] | frozenset[str] = frozenset(),
    run_cache: RunCache | None = None,
    env: ResolvedEnv | None = None,
    store: ObjectStore | None = None,
) -> Decision:
    """Compare a stage with its lock entry; `waiting` are upstream stages not yet finished.

    A stage that must run but whose exact inputs ran before (same fingerprint, every output
    object still cached) is restored instead: `run_cache` is where to look. `env` is the
    stage's resolved environment; its digest is part of the fingerprint. `store` (default: the
    run-cache's) is where the lock's output objects must still be.
    """
    if stage.frozen:
        return _frozen(stage, hasher)
    digest = env.digest if env else None
    pending = {d for d in stage.deps if project.outputs.producers(d) & waiting}
    deps = {d: hasher.hash(d) for d in stage.deps if d not in pending}
    if stage.missing_params:  # as in DVC, only this stage fails, and only when it runs
        missing = tuple(Reason(ReasonKind.PARAM_MISSING, k) for k in stage.missing_params)
        return Decision(stage.name, Action.RUN, missing, deps, env=env)
    objects = store if store is not None else run_cache.store if run_cache else None
    unstored: list[LockedPath] = []
    if forced:
        reasons = [Reason(ReasonKind.FORCED)]
    elif entry is None:
        reasons = [Reason(ReasonKind.NEW_STAGE)]
    else:
        reasons = _changes(stage, entry, deps, hasher, pending, env=digest)
        if objects is not None:
            reasons += _lost_outputs(stage, entry, hasher, objects, unstored)
    if stage.always_changed:
        reasons.append(Reason(ReasonKind.ALWAYS_CHANGED))
    elif not stage.deps and not stage.outs and not forced:
        reasons.append(Reason(ReasonKind.ALWAYS_RUNS))
    if reasons and run_cache is not None and not forced and _restorable(stage, deps, waiting):
        cached = run_cache.restorable(fingerprint(stage, deps, digest))
        if cached is not None and _declares(stage, cached):  # reasons: why; action: how
            return Decision(stage.name, Action.RESTORE, tuple(reasons), deps, cached, env)
    if reasons:
        return Decision(stage.name, Action.RUN, tuple(reasons), deps, env=env)
    if waiting:
        upstream = tuple(Reason(ReasonKind.UPSTREAM, u) for u in sorted(waiting))
        return Decision(
            stage.name, Action.AFTER_UPSTREAM, upstream, deps, env=env, unstored=tuple(unstored)
        )
    return Decision(stage.name, Action.UP_TO_DATE, (), deps, env=env, unstored=tuple(unstored))


def _lost_outputs(
    stage: Stage, entry: LockEntry, hasher: Hasher, store: ObjectStore, unstored: list[LockedPath]
) -> list[Reason]:
    """Reasons for outputs whose locked bytes the cache lost; intact ones go to `unstored`.

    One stat per output (the workspace was hashed already, through the memo): cheap enough
    for a no-op `status`. An output the workspace does not hold intact cannot be checked out
    again, so saying so tells the user why only a run brings it back. A workspace file that is
    a hardlink to the quarantined object holds the corrupt bytes itself, whatever the memo
    says: it is read again.
    """
    reasons = []
    for locked in entry.outs:
        if locked.path not in stage.out_paths:
            continue  # a removed output: reported as such, and never checked out again
        gone = lost(store, locked.info)
        if not gone:
            continue
        root, path = hasher.root, locked.path
        shared = [g.path(path) for g in gone if shares_corrupt_bytes(root, store, path, g)]
        if shared:  # the memo remembers these files' bytes from before the object went bad
            reread(hasher, shared)
            hasher.forget(locked.path)
        current = hasher.hash(locked.path)
        if current is not None and current.hash == locked.info.hash:
            unstored.append(locked)
            continue
        kind = ReasonKind.OBJECT_CORRUPT if gone[0].quarantined else ReasonKind.OBJECT_MISSING
        reasons.append(Reason(kind, gone[0].path(locked.path)))
    return reasons


def _restorable(
    stage: Stage, deps: Mapping[str, HashInfo | None], waiting: set[str] | frozenset[str]
) -> bool:
    """Stages whose outputs depend on more than their inputs are never restored.

    That includes a stage with no deps and no params (`date > now.txt`), as in DVC.
    """
    if waiting or stage.always_changed or any(o.persist for o in stage.outs):
        return False
    if not stage.deps and not stage.params:
        return False
    return bool(stage.outs) and all(info is not None for info in deps.values())


def _declares(stage: Stage, entry: RunEntry) -> bool:
    """An entry restores exactly the stage's declared outputs, nothing else: one that names
    other paths (damaged, or forged on a shared remote) is never used."""
    return sorted(o.path for o in entry.outs) == sorted(o.path for o in stage.outs)


def _frozen(stage: Stage, hasher: Hasher) -> Decision:
    """A frozen stage never runs: it is up to date while its outputs exist."""
    missing = tuple(
        Reason(ReasonKind.OUT_MISSING, o.path) for o in stage.outs if hasher.hash(o.path) is None
    )
    if missing:
        return Decision(stage.name, Action.RUN, (*missing, Reason(ReasonKind.FROZEN)), {})
    return Decision(stage.name, Action.UP_TO_DATE, (), {})


def _changes(
    stage: Stage,
    entry: LockEntry,
    deps: Mapping[str, HashInfo | None],
    hasher: Hasher,
    pending: set[str],
    *,
    env: str | None,
) -> list[Reason]:
    reasons = [Reason(ReasonKind.CMD_CHANGED)] if _cmd_changed(stage, entry) else []
    if env != entry.env:
        reasons.append(Reason(ReasonKind.ENV_CHANGED, stage.env or "system"))
    reasons += _param_changes(stage.params, entry.params)
    reasons += _dep_changes(deps, entry, pending)
    reasons += _out_changes(stage, entry, hasher)
    if not reasons and not pending and fingerprint(stage, deps, env) != entry.fingerprint:
        reasons.append(Reason(ReasonKind.DEFINITION_CHANGED))
    return reasons


def _cmd_changed(stage: Stage, entry: LockEntry) -> bool:
    """True unless the commands are equal, or differ only through templated param values."""
    if stage.cmd == entry.cmd:
        return False
    context = stage.context
    for values in entry.params.values():
        context = overlay(context, values)
    try:
        raw = Parsing.from_style(stage.cmd_style)
        old = tuple(render(t, context, quote=True, raw=raw).text for t in stage.cmd_template)
    except TemplateError:
        return True
    return old != entry.cmd


def _param_changes(
    now: Mapping[str, Mapping[str, Any]], then: Mapping[str, Mapping[str, Any]]
) -> list[Reason]:
    reasons = []
    for file in sorted(set(now) | set(then)):
        new, old = now.get(file, {}), then.get(file, {})
        prefix = "" if file == DEFAULT_PARAMS_FILE else f"{file}:"
        for key in sorted(set(new) | set(old)):
            if key not in old:
                reasons.append(Reason(ReasonKind.PARAM_ADDED, prefix + key))
            elif key not in new:
                reasons.append(Reason(ReasonKind.PARAM_REMOVED, prefix + key))
            elif canonical_json(new[key]) != canonical_json(old[key]):  # 1 ≠ 1.0, nan = nan
                reasons.append(Reason(ReasonKind.PARAM_CHANGED, prefix + key, old[key], new[key]))
    return reasons


def _dep_changes(
    deps: Mapping[str, HashInfo | None], entry: LockEntry, pending: set[str]
) -> list[Reason]:
    reasons = []
    for path, info in deps.items():
        locked = entry.dep(path)
        if info is None:
            reasons.append(Reason(ReasonKind.DEP_MISSING, path))
        elif locked is None:
            reasons.append(Reason(ReasonKind.DEP_ADDED, path))
        elif locked.hash != info.hash:
            reasons.append(Reason(ReasonKind.DEP_MODIFIED, path))
    current = set(deps) | pending
    reasons += [Reason(ReasonKind.DEP_REMOVED, d.path) for d in entry.deps if d.path not in current]
    return reasons


def _out_changes(stage: Stage, entry: LockEntry, hasher: Hasher) -> list[Reason]:
    reasons = []
    for out in stage.outs:
        locked = entry.out(out.path)
        info = hasher.hash(out.path)
        if locked is None:
            reasons.append(Reason(ReasonKind.OUT_ADDED, out.path))
        elif info is None:
            reasons.append(Reason(ReasonKind.OUT_MISSING, out.path))
        elif info.hash != locked.hash:
            reasons.append(Reason(ReasonKind.OUT_MODIFIED, out.path))
    paths = set(stage.out_paths)
    reasons += [Reason(ReasonKind.OUT_REMOVED, o.path) for o in entry.outs if o.path not in paths]
    return reasons
