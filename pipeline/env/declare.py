"""Load side of environments: the manifest's `python_env`, `conda_env` and `environments` keys.

Each becomes an `EnvDecl`: a name, a kind and the spec file, relative to the project root.
Spec files are not read here; planning reads them (`resolve.py`), so editing one never needs
the manifest to be parsed again. `system` is built in; `default` is the top-level env.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.yamlio import Loc, YamlDoc

if TYPE_CHECKING:
    from pipeline.manifest import EnvEntrySpec, ManifestSpec

SYSTEM = "system"
DEFAULT = "default"
KINDS = ("python_env", "requirements", "conda_env", "conda_lock", "system")


@dataclass(frozen=True)
class EnvDecl:
    """A declared environment: `kind` says how `file` (project-relative, posix) is read."""

    name: str
    kind: str
    file: str | None = None
    python: str | None = None  # an interpreter request for requirements.txt envs
    loc: Loc = ()

    @property
    def isolated(self) -> bool:
        return self.kind != SYSTEM

    def to_json(self) -> list[Any]:
        return [self.name, self.kind, self.file, self.python, list(self.loc)]

    @classmethod
    def from_json(cls, row: list[Any]) -> EnvDecl:
        name, kind, file, python, loc = row
        return cls(name, kind, file, python, tuple(loc))


def declare_envs(doc: YamlDoc, spec: ManifestSpec) -> dict[str, EnvDecl]:
    """Every environment the manifest declares, by name, including `system`."""
    envs = {SYSTEM: EnvDecl(SYSTEM, SYSTEM)}
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
        return EnvDecl(name, SYSTEM, loc=loc)
    key = next(k for k in KINDS if getattr(entry, k))
    file = str(getattr(entry, key))
    return EnvDecl(name, _kind_of(key, file), _relpath(file), entry.python, (*loc, key))


def _kind_of(key: str, file: str) -> str:
    """MLflow's keys also take a requirements.txt or a conda-lock file; the name says which."""
    base = posixpath.basename(file)
    if key == "python_env" and base.endswith(".txt"):
        return "requirements"
    if key == "conda_env" and "conda-lock" in base:
        return "conda_lock"
    return key


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
        from pipeline.manifest import suggest_name  # noqa: PLC0415

        raise doc.error(
            (*loc, "env"),
            f"unknown environment {requested!r}",
            suggest_name(requested, list(envs), "declare it under `environments:`"),
        )
    return None if requested == SYSTEM else requested
