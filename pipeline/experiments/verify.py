"""`pipeline verify`: the reproducibility audit. Rerun stages, compare with the lock byte for byte.

Each selected stage runs again in one isolated workspace (`isolate.py`, under a lease so `gc`
leaves it alone), with its deps placed from the objects `pipeline.lock` names, so the stage sees
exactly the inputs it was locked with. Its outputs are hashed and compared with the lock: equal
is *reproducible*, different is *nondeterministic* (which outputs), and a stage that cannot be
rerun as locked (inputs lost, definition changed since, command failed) says why. The run-cache
entry under the locked fingerprint is checked against the real run too: one whose outputs differ
would restore bytes no run of the stage produces.

Stages run one at a time, without the run-cache, and nothing is stored: the user's workspace,
lock, cache and run-cache are only read. Files the workspace would share with the user's
(hardlinked raw data) are copied first, so a stage writing in place cannot reach them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.fingerprint import fingerprint
from pipeline.core.lockfile import LockedPath, LockEntry
from pipeline.core.textenum import TextEnum
from pipeline.env.provision import Provisioner
from pipeline.errors import DataError, PipelineError
from pipeline.execute.options import ExecOptions
from pipeline.execute.scheduler import Events, Executor, Outcome, QuietEvents
from pipeline.experiments.isolate import (
    isolated_session,
    make_workspace,
    remove_workspace,
    workspace_dir,
)
from pipeline.load.project import STATE_DIR
from pipeline.plan.decisions import make_plan
from pipeline.plan.options import PlanOptions
from pipeline.plan.selection import select
from pipeline.plan.session import Session
from pipeline.runs.record import new_run_id
from pipeline.runs.workspaces import leased
from pipeline.store.restore import Restorer


class Verdict(TextEnum):
    REPRODUCIBLE = "reproducible"
    NONDETERMINISTIC = "nondeterministic"
    NOT_RUN = "could not run"


@dataclass(frozen=True)
class Differs:
    """An output whose bytes the rerun did not reproduce."""

    path: str
    locked: str  # the hash pipeline.lock names
    actual: str | None  # what the rerun wrote (None: nothing)


@dataclass(frozen=True)
class StageCheck:
    """One stage's verdict; `why` says why it could not run, `run_cache` what is wrong with
    its run-cache entry ("" when it matches the rerun, or there is none)."""

    stage: str
    verdict: Verdict
    differs: tuple[Differs, ...] = ()
    why: str = ""
    run_cache: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"stage": self.stage, "verdict": str(self.verdict)}
        if self.differs:
            data["differs"] = [dataclasses.asdict(d) for d in self.differs]
        if self.why:
            data["why"] = self.why
        if self.run_cache:
            data["run_cache"] = self.run_cache
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass(frozen=True)
class VerifyReport:
    stages: tuple[StageCheck, ...]

    @property
    def ok(self) -> bool:
        """Every stage reproduced its locked outputs, and no run-cache entry contradicts it."""
        return all(c.verdict is Verdict.REPRODUCIBLE and not c.run_cache for c in self.stages)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "stages": [c.to_json() for c in self.stages]}


OnCheck = Callable[[StageCheck], None]


def verify(
    session: Session,
    targets: tuple[str, ...] = (),
    events: Events | None = None,
    on_check: OnCheck | None = None,
) -> VerifyReport:
    """Rerun the selected stages (default: every stage in the lock) and compare with the lock."""
    names = _selected(session, targets)
    checks: list[StageCheck] = []

    def done(check: StageCheck) -> None:
        checks.append(check)
        if on_check is not None:
            on_check(check)

    for name in (n for n in names if n not in session.lock.stages):
        done(StageCheck(name, Verdict.NOT_RUN, why="not in pipeline.lock: run `pipeline repro`"))
    locked = [n for n in names if n in session.lock.stages]
    if locked:
        with _workspace(session) as isolated:
            for name in locked:
                done(_check_stage(session, isolated, name, events or QuietEvents()))
    order = {n: i for i, n in enumerate(names)}
    return VerifyReport(tuple(sorted(checks, key=lambda c: order[c.stage])))


def _selected(session: Session, targets: tuple[str, ...]) -> list[str]:
    """The named stages (not their upstream: each is checked against its locked inputs)."""
    if targets:
        return list(select(session.project, targets, single_item=True).order)
    return [n for n in session.project.graph.order if n in session.lock.stages]


@contextlib.contextmanager
def _workspace(session: Session) -> Iterator[Session]:
    """An isolated copy of the project, leased for as long as it exists, then removed."""
    run_id = f"verify-{new_run_id()}"
    project = session.project
    root = workspace_dir(project, run_id)
    with leased(project.state_dir, run_id):
        try:
            make_workspace(project, session.lock, run_id)
            _unshare_tree(root)
            with isolated_session(session, root) as isolated:
                yield isolated
        finally:
            remove_workspace(root)


def _unshare_tree(root: Path) -> None:
    """Give every hardlinked file of the workspace its own copy: a stage writing in place must
    never reach the user's file on the other end of the link."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != STATE_DIR]
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if st.st_nlink > 1 and not os.path.islink(path):
                shutil.copy2(path, f"{path}.pipeline-verify")
                os.replace(f"{path}.pipeline-verify", path)


def _check_stage(session: Session, isolated: Session, name: str, events: Events) -> StageCheck:
    started = time.monotonic()
    entry = session.lock.stages[name]
    try:
        check = _rerun(isolated, name, entry, events)
    except PipelineError as exc:
        check = StageCheck(name, Verdict.NOT_RUN, why=exc.message)
    return dataclasses.replace(check, seconds=time.monotonic() - started)


def _rerun(isolated: Session, name: str, entry: LockEntry, events: Events) -> StageCheck:
    """Place the locked deps, run the stage, compare its outputs with the lock."""
    stage = isolated.project.stages[name]
    refused = _unverifiable(isolated, name, entry)
    if refused:
        return StageCheck(name, Verdict.NOT_RUN, why=refused)
    options = PlanOptions(
        root=isolated.project.root, targets=(name,), force=True, single_item=True, run_cache=False
    )
    plan = make_plan(isolated, options)
    decision = plan.decisions[name]
    if fingerprint(stage, decision.deps, decision.env_digest) != entry.fingerprint:
        why = "changed since pipeline.lock was written (cmd, params, deps or env): repro it first"
        return StageCheck(name, Verdict.NOT_RUN, why=why)
    executor = Executor(
        isolated.project,
        isolated.lock,
        isolated.hasher,
        events,
        options=ExecOptions(jobs=1),
        envs=Provisioner(isolated.config.env),
    )
    (result,) = executor.run(plan).results
    if result.outcome is not Outcome.RAN:
        why = result.error.message if result.error else f"{result.outcome}"
        return StageCheck(name, Verdict.NOT_RUN, why=why)
    rerun = executor.lock.stages[name]
    return _compare(isolated, name, entry, rerun)


def _unverifiable(isolated: Session, name: str, entry: LockEntry) -> str:
    """Why the stage cannot be rerun as locked ("" if it can), after placing its deps."""
    stage = isolated.project.stages[name]
    if stage.frozen:
        return "frozen: its outputs are never rebuilt"
    if any(o.persist for o in stage.outs):
        return "persist outputs: each run builds on the last, so no rerun can match"
    for locked in entry.deps:
        problem = _place_dep(isolated, locked)
        if problem:
            return problem
    return ""


def _place_dep(isolated: Session, locked: LockedPath) -> str:
    """Put the locked bytes of a dep in the workspace, from the cache or as copied ("" if so)."""
    try:
        cached = isolated.store.complete(locked.info)
    except DataError:
        cached = False
    if cached:
        restorer = Restorer(isolated.project.root, isolated.store, isolated.hasher, ["copy"])
        try:
            restorer.restore(locked.path, locked.info)
            return ""
        except DataError as exc:
            return f"dep {locked.path}: {exc.message}"
    current = isolated.hasher.hash(locked.path)
    if current is not None and current.hash == locked.info.hash:
        return ""  # a source file git has, copied with the workspace: the locked bytes
    return f"dep {locked.path}: the locked bytes are neither in the cache nor in the workspace"


def _compare(isolated: Session, name: str, entry: LockEntry, rerun: LockEntry) -> StageCheck:
    differs = tuple(
        Differs(o.path, o.info.hash, actual.hash if actual else None)
        for o in entry.outs
        if (actual := rerun.out(o.path)) is None or actual.hash != o.info.hash
    )
    verdict = Verdict.NONDETERMINISTIC if differs else Verdict.REPRODUCIBLE
    return StageCheck(name, verdict, differs, run_cache=_run_cache_problem(isolated, entry, rerun))


def _run_cache_problem(isolated: Session, entry: LockEntry, rerun: LockEntry) -> str:
    """What is wrong with the run-cache entry under the locked fingerprint ("" if nothing).

    It must hold what a real run wrote: the rerun's outputs, or for a nondeterministic stage
    at least the locked ones (another real run's).
    """
    remembered = isolated.run_cache.read(entry.fingerprint)
    if remembered is None:
        return ""
    if remembered.fingerprint != entry.fingerprint:
        return f"the entry is forged: it records the run {remembered.fingerprint}"
    held = _hashes(remembered.outs)
    if held in (_hashes(rerun.outs), _hashes(entry.outs)):
        return ""
    real = _hashes(rerun.outs)
    wrong = sorted(p for p in held.keys() | real.keys() if held.get(p) != real.get(p))
    return f"the entry would restore bytes no real run wrote: {', '.join(wrong)}"


def _hashes(outs: tuple[LockedPath, ...]) -> dict[str, str]:
    return {o.path: o.info.hash for o in outs}
