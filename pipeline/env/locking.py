"""`pipeline env lock`: pin an env's exact packages, with hashes, in a file next to its spec.

pip-style envs get a PEP 751 `pylock.<name>.toml` written by `uv pip compile`; conda envs get a
conda-lock (v1) file from py-rattler's solve, with the `pip:` section resolved by uv against the
env's own python. Each lock starts with `# pipeline-spec-digest: …`, the digest of the spec it
was made from, so a spec edited after its lock is reported (`resolve.py`). A lock that pins
exactly the versions the env has now (as built, or as the previous lock pinned them) also says
`# pipeline-env-content: …`, which keeps the env's digest: locking changes no stage's status.
"""

from __future__ import annotations

import re
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.core.atomic import atomic_write_text
from pipeline.core.yamlio import dump_yaml, parse_yaml
from pipeline.env import conda, venv
from pipeline.env.envstore import EnvStore
from pipeline.env.resolve import CONTENT_MARK, LOCK_MARK, ResolvedEnv, body_digest, lock_path
from pipeline.env.tools import pip_index_options, run_tool
from pipeline.env.uvbin import uv_binary
from pipeline.errors import EnvironmentSetupError, PipelineError, UsageError
from pipeline.load.envkind import EnvKind

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Log = Callable[[str], None]


def write_lock(env: ResolvedEnv, scratch: Path, conda_cache: Path) -> Path:
    """Resolve `env`'s spec afresh and write its lock.

    `scratch` holds temporary prefixes; `conda_cache` is where rattler keeps packages.
    """
    if env.kind is EnvKind.CONDA_LOCK:
        raise UsageError(
            f"env {env.name!r} is a conda-lock file already",
            "lock the environment.yml it was made from instead",
        )
    target = lock_path(env.kind, env.spec)
    # Nothing here names the env: one spec shared by several envs gives one lock (one digest).
    header = (
        f"# Written by `pipeline env lock`: exact packages of {env.spec.name}.\n"
        f"{LOCK_MARK}{env.spec_digest}\n"
    )
    if env.is_conda:
        data = _conda_lock(env, scratch, conda_cache)
        body = dump_yaml(data)
    else:
        body = _compile(env.request.requirements, env.interpreter_path, env.spec.parent)
        data = tomllib.loads(body)
    header += _same_content(env, body, data)
    atomic_write_text(target, header + body)
    return target


def _same_content(env: ResolvedEnv, body: str, data: Any) -> str:
    """The header line that keeps the env's digest, when the new lock pins exactly the
    versions the env has now and its body alone would name another content; else nothing."""
    written = body_digest(body)
    if env.content == written:
        return ""  # the same packages, the same body: the digest stays as it is
    now = _versions_now(env)
    if now is None or now != _pinned(data):
        return ""
    return f"{CONTENT_MARK}{env.content} for {written}\n"


Versions = frozenset[tuple[str, str]]


def _versions_now(env: ResolvedEnv) -> Versions | None:
    """The package versions of the env as its digest names it now: as built here, else as
    its current lock pins them; None when neither is known."""
    built = EnvStore().lookup(env.digest)
    if built is not None:
        rows = [*built.packages, *built.meta.get("pip_packages", [])]
        return frozenset((_canonical(str(r[0])), str(r[1])) for r in rows)
    if env.lock is None:
        return None
    try:
        text = env.lock.read_text(encoding="utf-8")
        return _pinned(parse_yaml(text, env.lock).data if env.is_conda else tomllib.loads(text))
    except (PipelineError, ValueError):
        return None  # a lock we cannot read pins nothing we know


def _pinned(data: Any) -> Versions | None:
    """`(name, version)` of every package a lock pins: a conda-lock's `package` list, or a
    pylock.toml's `packages`; None for anything else."""
    try:
        rows = data.get("package", data.get("packages", []))
        return frozenset((_canonical(str(p["name"])), str(p["version"])) for p in rows)
    except (AttributeError, KeyError, TypeError):
        return None


def _canonical(name: str) -> str:
    """A package name as PEP 503 compares them (`My_Pkg` is `my-pkg`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _compile(requirements: tuple[str, ...], python: str, cwd: Path) -> str:
    """`uv pip compile` of requirement lines into pylock.toml text."""
    uv = uv_binary()
    if uv is None:
        raise EnvironmentSetupError("locking needs uv, which cannot run here", "pip install uv")
    stdin = cwd / f".pipeline-lock-{secrets.token_hex(4)}.in"
    try:
        stdin.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        argv = [uv, "pip", "compile", "--no-config", "--quiet", "--no-header"]
        argv += ["--format", "pylock.toml", "--universal", "--python", python, "--generate-hashes"]
        argv += [*pip_index_options().uv_args(), str(stdin)]
        return run_tool(argv, "resolving the requirements", env=venv.tool_env(), cwd=cwd)
    finally:
        stdin.unlink(missing_ok=True)


def _conda_lock(env: ResolvedEnv, scratch: Path, cache: Path) -> dict[str, Any]:
    records = conda.solve(env, cache)
    platform = conda.current_subdir()
    packages = [_conda_entry(r, platform) for r in records]
    if env.request.pip:
        packages += _pip_entries(env, records, scratch, cache, platform)
    return {
        "version": 1,
        "metadata": {
            "content_hash": {platform: env.spec_digest},
            "channels": [{"url": c, "used_env_vars": []} for c in env.request.channels],
            "platforms": [platform],
            "sources": [env.spec.name],
        },
        "package": sorted(packages, key=lambda p: (p["manager"], p["name"])),
    }


def _conda_entry(record: Any, platform: str) -> dict[str, Any]:
    depends = {}
    for spec in record.depends:
        name, _, constraint = spec.partition(" ")
        depends[name] = constraint.strip() or "*"
    return {
        "name": record.name.normalized if hasattr(record.name, "normalized") else str(record.name),
        "version": str(record.version),
        "manager": "conda",
        "platform": platform,
        "dependencies": depends,
        "url": record.url,
        "hash": {"md5": _hex(record.md5), "sha256": _hex(record.sha256)},
        "category": "main",
        "optional": False,
    }


def _hex(value: Any) -> str | None:
    return value.hex() if isinstance(value, (bytes, bytearray)) else value


def _pip_entries(
    env: ResolvedEnv, records: list[Any], scratch: Path, cache: Path, platform: str
) -> list[dict[str, Any]]:
    """Resolve the `pip:` section against the env's python, installed in a scratch prefix."""
    prefix = scratch / f"lock-{secrets.token_hex(4)}"
    try:
        conda.install(records, prefix, cache)
        python = str(venv.python_of(prefix))
        text = _compile(env.request.pip, python, env.spec.parent)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    entries = []
    for package in tomllib.loads(text).get("packages", []):
        artifact = _pick_artifact(package)
        entries.append(
            {
                "name": package["name"],
                "version": str(package.get("version", "")),
                "manager": "pip",
                "platform": platform,
                "dependencies": {},
                "url": artifact["url"],
                "hash": {"sha256": artifact["hashes"]["sha256"]},
                "category": "main",
                "optional": False,
            }
        )
    return entries


def _pick_artifact(package: dict[str, Any]) -> dict[str, Any]:
    """A pure wheel if there is one, else the first wheel, else the sdist."""
    wheels = package.get("wheels") or []
    pure = [w for w in wheels if str(w.get("url", "")).endswith("-none-any.whl")]
    chosen = (pure or wheels or [package.get("sdist")])[0]
    if not chosen or "url" not in chosen:
        raise EnvironmentSetupError(
            f"the lock of pip package {package.get('name')} has no downloadable file",
            "local-path and VCS requirements cannot be locked into a conda-lock file",
        )
    return dict(chosen)
