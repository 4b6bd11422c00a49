"""An isolated workspace under `.pipeline/tmp/runs/<id>/` for one experiment.

Source files are copied from the working tree (git's view of it: tracked and untracked but not
ignored files; every file when the project is not in git). Stage outputs and tracked data are
not copied: `pipeline.lock` is, and they come back from the shared cache by checkout, as links.
The workspace's `.pipeline/cache` is a symlink to the project's, so whatever the experiment
computes lands in the one cache (and run-cache) every later run and `checkout RUN` read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from pipeline.core.config import FILES as CONFIG_FILES
from pipeline.core.lockfile import LOCK_NAME, Lock
from pipeline.core.sources import source_files
from pipeline.errors import DataError
from pipeline.load.project import STATE_DIR, Project
from pipeline.plan.session import Session, open_session
from pipeline.runs.workspaces import runs_dir


def workspace_dir(project: Project, run_id: str) -> Path:
    """Where run `run_id`'s workspace lives; its lease (`runs/workspaces.py`) sits beside it."""
    return runs_dir(project.state_dir) / run_id


def make_workspace(project: Project, lock: Lock, run_id: str) -> Path:
    """Copy the project's sources into a fresh workspace; returns its root."""
    root = workspace_dir(project, run_id)
    skip = _derived(project, lock)
    for relpath in source_files(project.root, project.manifest.name):
        if not _under_any(relpath, skip):
            _copy_source(project.root, relpath, root / relpath)
    _link_raw_deps(project, root)
    state = root / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    shared = project.state_dir.resolve() / "cache"
    shared.mkdir(parents=True, exist_ok=True)  # a project that never ran has none yet
    os.symlink(shared, state / "cache")
    for name in CONFIG_FILES:
        if (project.state_dir / name).is_file():
            shutil.copy2(project.state_dir / name, state / name)
    if (project.root / LOCK_NAME).is_file():
        shutil.copy2(project.root / LOCK_NAME, root / LOCK_NAME)
    return root


def _copy_source(root: Path, relpath: str, target: Path) -> None:
    """A copy; a symlink stays a link unless it leads outside the project (then: absolute)."""
    source = root / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        resolved = source.resolve()
        inside = resolved == root.resolve() or root.resolve() in resolved.parents
        os.symlink(os.readlink(source) if inside else resolved, target)
        return
    shutil.copy2(source, target)


def _link_raw_deps(project: Project, root: Path) -> None:
    """Deps no stage produces and git does not list (ignored raw data): linked, not copied."""
    for stage in project.stages.values():
        for dep in stage.deps:
            source, target = project.root / dep, root / dep
            if project.outputs.producers(dep) or not source.exists():
                continue
            files = [source] if source.is_file() else [p for p in source.rglob("*") if p.is_file()]
            for path in files:  # one by one: git may list part of a directory and not the rest
                dest = target / path.relative_to(source) if source.is_dir() else target
                if not os.path.lexists(dest):
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    _link_or_copy(path, dest)


def _link_or_copy(source: Path, dest: Path) -> None:
    """Stages only read deps, so a hardlink is as good as a copy, and free."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _derived(project: Project, lock: Lock) -> list[str]:
    """Paths that come from the cache, not from a copy: outputs and tracked data."""
    outs = [o.path for stage in project.stages.values() for o in stage.outs]
    return [*outs, *lock.data]


def _under_any(relpath: str, prefixes: list[str]) -> bool:
    return any(relpath == p or relpath.startswith(p.rstrip("/") + "/") for p in prefixes)


def with_outside_specs(isolated: Project, original: Project) -> Project:
    """Env specs outside the project (`../envs/x.yaml`) stay where the original project has them."""
    envs = {
        name: replace(decl, file=str((original.root / decl.file).resolve()))
        if decl.file and decl.file.startswith("..")
        else decl
        for name, decl in isolated.environments.items()
    }
    return replace(isolated, environments=envs)


def remove_workspace(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def isolated_session(session: Session, root: Path) -> Iterator[Session]:
    """The session of the workspace `make_workspace` made at `root`, with env specs outside the
    project where the original has them. It is refused unless it really is that workspace's:
    whatever runs there must never run in the user's project."""
    manifest = root / session.project.manifest.relative_to(session.project.root)
    with open_session(manifest) as opened:
        if opened.project.root.resolve() != root.resolve():
            raise DataError(f"the isolated workspace {root} holds no copy of the manifest")
        yield replace(opened, project=with_outside_specs(opened.project, session.project))
