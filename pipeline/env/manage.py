"""`pipeline env list | build | lock | prune | show`: the environments of a project.

Each function takes a loaded `Project` and returns plain data; `cli/report.py` renders it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.config import EnvSettings
from pipeline.core.paths import display_path
from pipeline.core.suggest import suggest_name
from pipeline.env.envstore import BuiltEnv, EnvStore
from pipeline.env.locking import write_lock
from pipeline.env.provision import Provisioner
from pipeline.env.resolve import EnvResolver, ResolvedEnv
from pipeline.errors import PipelineError, UsageError
from pipeline.load.environments import DEFAULT, SYSTEM
from pipeline.load.envkind import EnvKind
from pipeline.load.project import Project

Say = Callable[[str], None]


@dataclass(frozen=True)
class EnvReport:
    """One declared env: its spec and lock, digest, whether it is built, who uses it."""

    name: str
    kind: str
    spec: str | None
    stages: tuple[str, ...]
    lock: str = "none"  # "locked", "stale" (spec newer), "none", or "is a lock"
    digest: str | None = None
    built: BuiltEnv | None = None
    error: str | None = None

    def to_json(self, *, packages: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "spec": self.spec,
            "stages": list(self.stages),
            "lock": self.lock,
            "digest": self.digest,
            "built": self.built is not None,
            "prefix": str(self.built.prefix) if self.built else None,
        }
        if self.error:
            data["error"] = self.error
        if packages and self.built is not None:
            data["python"] = self.built.meta.get("python")
            data["packages"] = self.built.packages
            data["pip_packages"] = self.built.meta.get("pip_packages", [])
        return data


def env_list(project: Project) -> list[EnvReport]:
    """Every declared env (but `system`), resolved on this machine."""
    resolver = EnvResolver(project)
    store = EnvStore()
    return [
        _report(project, resolver, store, name)
        for name, decl in project.environments.items()
        if decl.isolated
    ]


def _report(project: Project, resolver: EnvResolver, store: EnvStore, name: str) -> EnvReport:
    decl = project.environments[name]
    users = tuple(s.name for s in project.stages.values() if s.env == name)
    spec = None
    if decl.file:
        spec = display_path(Path(os.path.normpath(project.root / decl.file)))
    try:
        env = resolver.get(name)
    except PipelineError as exc:
        return EnvReport(name, decl.kind, spec, users, error=exc.message)
    assert env is not None
    return EnvReport(
        name, decl.kind, spec, users, _lock_state(env), env.digest, store.lookup(env.digest)
    )


def _lock_state(env: ResolvedEnv) -> str:
    if env.kind is EnvKind.CONDA_LOCK:
        return "is a lock"
    if env.lock is None:
        return "none"
    return "stale" if env.lock_stale else "locked"


def env_show(project: Project, stage: str) -> EnvReport | None:
    """The env `stage` runs in (None: the system's, no isolation)."""
    found = project.stages.get(stage)
    if found is None:
        names = list(project.stages)
        hint = suggest_name(stage, names, "see `pipeline dag`")
        raise UsageError(f"no stage named {stage!r}", hint)
    if found.env is None or not project.environments[found.env].isolated:
        return None
    return _report(project, EnvResolver(project), EnvStore(), found.env)


def selected(project: Project, names: tuple[str, ...], *, everything: bool) -> list[str]:
    """The envs to act on: `names`, or all declared (`everything`), or those stages use."""
    declared = [n for n, d in project.environments.items() if d.isolated]
    for name in names:
        if name in project.environments and name not in declared:
            raise UsageError(
                f"env {name!r} is the system environment: there is nothing to build or lock",
                "its stages run in whatever environment pipeline runs in (unpinned)",
            )
        if name not in declared:
            raise UsageError(
                f"no environment named {name!r}",
                suggest_name(name, declared, "declared: " + (", ".join(declared) or "none")),
            )
    if names:
        return list(names)
    if everything:
        return declared
    used = {s.env for s in project.stages.values() if s.env}
    return [n for n in declared if n in used or n == DEFAULT]


def env_build(
    project: Project,
    names: list[str],
    settings: EnvSettings,
    *,
    force: bool = False,
    say: Say | None = None,
) -> list[tuple[str, BuiltEnv]]:
    """Build (or find) each named env; `force` rebuilds."""
    resolver = EnvResolver(project)
    builder = Provisioner(settings)
    built = []
    for name in names:
        env = resolver.get(name)
        assert env is not None
        if force and not builder.store.remove(env.digest):
            raise UsageError(
                f"env {name!r} is in use by a running stage; it was not rebuilt",
                "run `pipeline env build --force` again when the stage has finished",
            )
        built.append((name, builder.ensure(env, say)))
    return built


def env_lock(project: Project, names: list[str], say: Say | None = None) -> list[Path]:
    """Write a lock for each named env; returns the files written."""
    resolver = EnvResolver(project)
    store = EnvStore()
    scratch = store.root / ".scratch"  # not .store: `env prune` must not take it for a crash
    written = []
    for name in names:
        env = resolver.get(name)
        assert env is not None
        if say is not None:
            say(f"locking env {name!r} from {env.spec.name}\n")
        scratch.mkdir(parents=True, exist_ok=True)
        written.append(write_lock(env, scratch, store.conda_cache))
    return written


@dataclass(frozen=True)
class Pruned:
    """What `env prune` removed (or would remove), and what it kept."""

    removed: tuple[str, ...]
    freed_bytes: int
    kept: int


def env_prune(project: Project, *, days: float, dry: bool = False) -> Pruned:
    """Remove cached envs this project does not use and no one used for `days` days."""
    resolver = EnvResolver(project)
    keep = set()
    for name, decl in project.environments.items():
        if decl.isolated and name != SYSTEM:
            try:
                env = resolver.get(name)
            except PipelineError:
                continue
            if env is not None:
                keep.add(env.digest)
    store = EnvStore()
    cutoff = time.time() - days * 86400
    removed, freed, kept = [], 0, 0
    for built in store.all():
        if built.digest in keep or built.last_used >= cutoff:
            kept += 1
            continue
        size, label = _du(built.prefix), f"{built.meta.get('name', '?')} ({built.prefix.name})"
        if dry or store.remove(built.digest):
            freed += size
            removed.append(label)
        else:
            kept += 1  # a stage is running in it right now
    for link in store.dangling():
        removed.append(f"broken entry {link.name}")
        if not dry:
            store.remove(link.name)
    for orphan in store.orphans():
        size = _du(orphan)
        if dry or store.remove_orphan(orphan):
            freed += size
            removed.append(f"unfinished build {orphan.name}")
    return Pruned(tuple(removed), freed, kept)


def _du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
