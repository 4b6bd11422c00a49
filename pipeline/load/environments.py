"""Load side of environments: the manifest's `python_env`, `conda_env` and `environments` keys.

Each becomes an `EnvDecl`: a name, a kind and the spec file, relative to the project root.
Spec files are not read here; planning reads them (`env/resolve.py`), so editing one never needs
the manifest to be parsed again. `system` is built in; `default` is the top-level env.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.core.suggest import suggest_name
from pipeline.core.yamlio import Loc, YamlDoc
from pipeline.load.envkind import EnvKind

if TYPE_CHECKING:
    from pipeline.load.manifest import EnvEntrySpec, ManifestSpec

SYSTEM = EnvKind.SYSTEM.value  # the name of the built-in env, of kind system
DEFAULT = "default"


@dataclass(frozen=True)
class EnvDecl:
    """A declared environment: `kind` says how `file` (project-relative, posix) is read."""

    name: str
    kind: EnvKind
    file: str | None = None
    python: str | None = None  # an interpreter request for requirements.txt envs
    loc: Loc = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EnvKind(self.kind))  # its name will do too

    @property
    def isolated(self) -> bool:
        return self.kind is not EnvKind.SYSTEM

    def to_json(self) -> list[Any]:
        return [self.name, self.kind.value, self.file, self.python, list(self.loc)]

    @classmethod
    def from_json(cls, row: list[Any]) -> EnvDecl:
        name, kind, file, python, loc = row
        return cls(name, EnvKind(kind), file, python, tuple(loc))


def declare_envs(doc: YamlDoc, spec: ManifestSpec) -> dict[str, EnvDecl]:
    """Every environment the manifest declares, by name, including `system`."""
    envs = {SYSTEM: EnvDecl(SYSTEM, EnvKind.SYSTEM)}
    for key in ("python_env", "conda_env"):
        file = getattr(spec, key)
        if file:
            envs[DEFAULT] = EnvDecl(DEFAULT, _kind_of(key, file), _relpath(file), loc=(key,))
    for name, entry in spec.environments.items():
        if name in envs:
            why = "it is built in" if name == SYSTEM else "the top-level python_env/conda_env"
            raise doc.error(
                ("environments", name),
                f"environment name {name!r} is reserved: {why}",
                "pick another name",
                at_key=True,
            )
        envs[name] = _decl(name, entry)
    return envs


def _decl(name: str, entry: EnvEntrySpec) -> EnvDecl:
    loc: Loc = ("environments", name)
    if entry.system:
        return EnvDecl(name, EnvKind.SYSTEM, loc=loc)
    key = next(k for k in EnvKind if getattr(entry, k.value))
    file = str(getattr(entry, key.value))
    return EnvDecl(name, _kind_of(key, file), _relpath(file), entry.python, (*loc, key))


def _kind_of(key: str, file: str) -> EnvKind:
    """MLflow's keys also take a requirements.txt or a conda-lock file; the name says which."""
    base = posixpath.basename(file)
    if key == EnvKind.PYTHON_ENV and base.endswith(".txt"):
        return EnvKind.REQUIREMENTS
    if key == EnvKind.CONDA_ENV and "conda-lock" in base:
        return EnvKind.CONDA_LOCK
    return EnvKind(key)


def _relpath(file: str) -> str:
    # Spec files may live outside the project (a shared `envs/` folder): they are only read.
    return posixpath.normpath(file.replace("\\", "/"))


def stage_env(
    doc: YamlDoc, loc: Loc, requested: str | None, envs: dict[str, EnvDecl]
) -> str | None:
    """The env a stage runs in: its `env:`, else the default env, else none (the system)."""
    if requested is None:
        return DEFAULT if DEFAULT in envs else None
    if requested not in envs:
        raise doc.error(
            (*loc, "env"),
            f"unknown environment {requested!r}",
            suggest_name(requested, list(envs), "declare it under `environments:`"),
        )
    return None if requested == SYSTEM else requested
