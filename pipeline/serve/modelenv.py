"""The env a served model runs in: built once through the env store, never re-resolved.

A package whose stage env was locked carries a byte copy of the lock (`pylock.toml`): the model
env is that lock under the same digest as the stage env (same kind, platform, interpreter and
lock content, `env/resolve.py`), so an env the stage already built is reused as it is. A package
without a lock is built from its `requirements.txt` (exact `name==version` pins). With
`--env-manager local` the model runs in the interpreter running pipeline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.fingerprint import canonical_json
from pipeline.core.hashing import digest_bytes
from pipeline.env.resolve import FORMAT, ResolvedEnv, locked_content, resolve_env
from pipeline.errors import EnvironmentSetupError
from pipeline.load.environments import EnvDecl
from pipeline.load.envkind import EnvKind

Log = Callable[[str], None]
MANAGERS = ("virtualenv", "local")
_SPECS = {EnvKind.PYTHON_ENV: "python_env.yaml", EnvKind.REQUIREMENTS: "requirements.txt"}


@dataclass(frozen=True)
class ModelEnv:
    """How to start the model's worker: its interpreter and environment variables."""

    python: str
    environ: dict[str, str] | None  # None: this process's own
    digest: str | None = None  # the env store's digest; None for `local`
    description: str = "the current interpreter"


@dataclass(frozen=True)
class PackageEnv:
    """What a package says about the env it needs (from its MLmodel)."""

    package: Path
    lock: str | None  # the lock's file name in the package, when it has one
    python_version: str | None
    env_kind: str | None  # the kind of env of the stage that saved it


def resolve_package_env(spec: PackageEnv) -> ResolvedEnv:
    """The package's env made concrete on this machine, with the digest naming it."""
    kind = EnvKind.REQUIREMENTS
    if spec.lock is not None and spec.env_kind in (EnvKind.PYTHON_ENV, EnvKind.REQUIREMENTS):
        kind = EnvKind(spec.env_kind)
    file = _SPECS[kind]
    if not (spec.package / file).is_file():
        raise EnvironmentSetupError(
            f"the model package {spec.package} has no {file} to build its env from",
            "serve it in this interpreter with --env-manager local",
        )
    decl = EnvDecl(f"model {spec.package.name}", kind, file, spec.python_version)
    resolved = resolve_env(spec.package, decl)
    if spec.lock is None:
        return resolved
    return _locked(resolved, spec.package / spec.lock)


def _locked(resolved: ResolvedEnv, lock: Path) -> ResolvedEnv:
    """`resolved` built from `lock`: the digest `resolve_env` gives the stage env of that lock.

    The package's copy of the lock is named `pylock.toml`, not after its spec, so `resolve_env`
    cannot find it: its digest payload is repeated here (tests check the two agree).
    """
    content = locked_content(lock.read_bytes())
    assert resolved.interpreter is not None
    payload = {
        "format": FORMAT,
        "kind": resolved.kind,
        "platform": sysconfig.get_platform(),
        "python": resolved.interpreter.identity,
        "content": content,
    }
    digest = digest_bytes(canonical_json(payload))
    return dataclasses.replace(resolved, digest=digest, lock=lock, content=content)


@contextlib.contextmanager
def model_env(spec: PackageEnv, manager: str, log: Log) -> Iterator[ModelEnv]:
    """The env to run the model in, kept from `env prune` while the block runs."""
    if manager == "local":
        yield ModelEnv(sys.executable, None)
        return
    # the env store's builders (filelock, installers) only when an env is wanted
    from pipeline.env import venv  # noqa: PLC0415
    from pipeline.env.provision import Provisioner, activate  # noqa: PLC0415
    from pipeline.env.stagepath import stage_pythonpath  # noqa: PLC0415

    resolved = resolve_package_env(spec)
    source = resolved.lock.name if resolved.lock else resolved.spec.name
    log(f"model env {resolved.short} from {source}\n")
    with Provisioner().activated(resolved, log) as built:
        environ = activate(os.environ, built)
        environ["PYTHONPATH"] = str(stage_pythonpath())  # `pipeline` alone, not its deps
        python = str(venv.python_of(built.prefix))
        yield ModelEnv(python, environ, resolved.digest, f"env {resolved.short} ({source})")
