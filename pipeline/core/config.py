"""Project settings: `.pipeline/config.yaml` (committed) and `config.local.yaml` (this machine).

    cache:
      type: hardlink,copy      # or a list; strategies tried in order (LINK_STRATEGIES)
    env:
      installer: uv            # or pip: virtualenv + pip, where uv cannot run
      conda: rattler           # or an installed conda, mamba or micromamba
    core:
      remote: origin           # the default remote
    remotes:
      origin:
        url: s3://bucket/project
        endpoint_url: http://localhost:9000
    runs:
      url: postgresql://alice@db.example/pipeline   # the run store (default: .pipeline/runs.db)

The local file wins key by key (a remote's keys one by one, so its secrets can live there
alone). Secrets are refused in the committed file. Only what a feature reads is validated; an
unknown section is kept for later versions, an unknown value is an error naming the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.atomic import atomic_write_text
from pipeline.core.suggest import suggest_name
from pipeline.core.yamlio import DocumentMemo, YamlDoc, dump_yaml, load_yaml
from pipeline.errors import ManifestError, UsageError

FILES = ("config.yaml", "config.local.yaml")
# How a cached object may be placed at a workspace path (store/links.py implements each).
LINK_STRATEGIES = ("reflink", "hardlink", "symlink", "copy")


INSTALLERS = ("uv", "pip")  # pip: virtualenv + pip, for machines where uv cannot run
CONDA_TOOLS = ("rattler", "conda", "mamba", "micromamba")  # rattler: no conda install needed


@dataclass(frozen=True)
class EnvSettings:
    """The `env:` section: how environments are built."""

    installer: str = INSTALLERS[0]
    conda: str = CONDA_TOOLS[0]


EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class ExecutorSettings:
    """The `executor:` section: where stages run (`local`, or a Dask scheduler's `address`),
    and how often a system failure (a worker lost or killed) is retried on another worker."""

    kind: str = EXECUTORS[0]
    address: str | None = None
    retries: int = 2
    shared_fs: bool = False  # workers mount the project at the driver's path: no remote


_EXECUTOR_KEYS = ("kind", "address", "retries", "shared_fs")


# Remote options that are secrets: only in config.local.yaml (or the backend's own chain).
SECRET_KEYS = frozenset(
    {
        "access_key_id",
        "secret_access_key",
        "session_token",
        "password",
        "account_key",
        "connection_string",
        "sas_token",
        "token",
    }
)


@dataclass(frozen=True)
class RemoteSettings:
    """One configured remote: its name, URL, and backend options (endpoint, profile, keys…)."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Config:
    """The settings in force for one project."""

    cache_type: tuple[str, ...] | None = None  # None: the defaults of store/objects.py
    env: EnvSettings = EnvSettings()
    remotes: dict[str, RemoteSettings] = field(default_factory=dict, hash=False)
    default_remote: str | None = None
    runs_url: str | None = None  # None: the project's SQLite file (runs/runstore.py)
    executor: ExecutorSettings = ExecutorSettings()

    def remote(self, name: str | None = None) -> RemoteSettings:
        """The remote `name`, or the default one (a single configured remote is the default)."""
        if name is None:
            name = self.default_remote or (
                next(iter(self.remotes)) if len(self.remotes) == 1 else None
            )
            if name is None:
                raise UsageError(
                    "no default remote is set" if self.remotes else "no remote is configured",
                    "pipeline remote add -d NAME URL (or give -r NAME)",
                )
        if name not in self.remotes:
            raise UsageError(
                f"no remote named {name!r}",
                suggest_name(name, list(self.remotes), "see `pipeline remote list`"),
            )
        return self.remotes[name]

    @property
    def has_default_remote(self) -> bool:
        return bool(self.default_remote in self.remotes or len(self.remotes) == 1)


def load_config(state_dir: Path, memo: DocumentMemo | None = None) -> Config:
    """Merge the project's config files (missing files are fine)."""
    merged, origin = _merged(state_dir, memo)
    env = merged.get("env", {})
    return Config(
        cache_type=_cache_type(merged.get("cache", {}).get("type"), state_dir),
        env=EnvSettings(
            installer=_choice(env, "installer", INSTALLERS, origin),
            conda=_choice(env, "conda", CONDA_TOOLS, origin),
        ),
        remotes=_remotes(merged.get("remotes", {}), origin),
        default_remote=_default_remote(merged, origin),
        runs_url=_runs_url(merged.get("runs", {}), origin),
        executor=_executor(merged.get("executor", {}), origin),
    )


def runs_url(state_dir: Path) -> str | None:
    """Only `runs.url`: opening the run store must not fail on another section's mistake."""
    merged, origin = _merged(state_dir, None)
    return _runs_url(merged.get("runs", {}), origin)


def _merged(state_dir: Path, memo: DocumentMemo | None) -> tuple[dict[str, Any], dict[str, str]]:
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}  # "section.key" -> the file that set it, for messages
    for name in FILES:
        path = state_dir / name
        if path.is_file():
            doc = load_yaml(path, memo, f".pipeline/{name}")
            _merge(doc, merged, origin, f"{state_dir.name}/{name}")
    return merged, origin


def _merge(doc: YamlDoc, merged: dict[str, Any], origin: dict[str, str], where: str) -> None:
    """Fold one file into `merged`: section by section, key by key (remotes: one level down)."""
    if doc.data is not None and not isinstance(doc.data, dict):
        raise doc.error((), "a config file must be a mapping")
    for section, values in (doc.data or {}).items():
        if values is not None and not isinstance(values, dict):
            raise doc.error((section,), f"`{section}` must be a mapping of settings")
        target = merged.setdefault(section, {})
        for key, value in (values or {}).items():
            if section == "remotes":
                if not isinstance(value, dict):
                    raise doc.error((section, key), f"remote {key!r} must be a mapping")
                _check_secrets(doc, key, value, where)
                target[key] = {**target.get(key, {}), **value}
                origin.update({f"remotes.{key}.{k}": where for k in value})
            else:
                target[key] = value
            origin[f"{section}.{key}"] = where


def _check_secrets(doc: YamlDoc, remote: str, values: dict[str, Any], where: str) -> None:
    if where.endswith(FILES[1]):
        return
    for key in values:
        if key in SECRET_KEYS:
            raise doc.error(
                ("remotes", remote, key),
                f"{key} is a secret and {FILES[0]} is committed to git",
                f"move it: pipeline remote modify --local {remote} {key} VALUE",
                at_key=True,
            )


def _remotes(section: dict[str, Any], origin: dict[str, str]) -> dict[str, RemoteSettings]:
    remotes = {}
    for name, values in section.items():
        where = origin.get(f"remotes.{name}", ".pipeline/config.yaml")
        if not REMOTE_NAME.fullmatch(str(name)):
            raise ManifestError(
                f"{where}: {name!r} is not a remote name", "use letters, digits, `-`, `_`, `.`"
            )
        url = values.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ManifestError(
                f"{where}: remote {name!r} has no url",
                f"pipeline remote modify {name} url URL",
            )
        options = {k: v for k, v in values.items() if k != "url"}
        remotes[str(name)] = RemoteSettings(str(name), url.strip(), options)
    return remotes


def _default_remote(merged: dict[str, Any], origin: dict[str, str]) -> str | None:
    name = merged.get("core", {}).get("remote")
    if name is None:
        return None
    if name not in merged.get("remotes", {}):
        where = origin.get("core.remote", ".pipeline/config.yaml")
        raise ManifestError(
            f"{where}: core.remote names {name!r}, which is not a configured remote",
            "pipeline remote default NAME, or pipeline remote add NAME URL",
        )
    return str(name)


# A shared run store for a team (`runs.url`); the environment wins over both files, so one
# shell (or CI job) can point at another store without editing them.
RUNS_URL_ENV = "PIPELINE_RUNS_URL"
RUNS_SCHEMES = ("postgresql", "postgresql+psycopg", "postgres")
# libpq's connection keywords whose values are secrets: a URL's query passes them to the server
# as `user:password@` does (matched without case: no spelling of them may slip through).
RUNS_SECRETS = ("password", "sslpassword")


def _runs_url(section: dict[str, Any], origin: dict[str, str]) -> str | None:
    """`runs.url` (or $PIPELINE_RUNS_URL): the run store's SQLAlchemy URL, if not the default."""
    env = os.environ.get(RUNS_URL_ENV, "").strip()
    value, where = section.get("url"), origin.get("runs.url", ".pipeline/config.yaml")
    if env:
        value, where = env, RUNS_URL_ENV
    if value is None or value == "":
        return None
    scheme = str(value).split("://", 1)[0] if "://" in str(value) else ""
    if not isinstance(value, str) or scheme not in RUNS_SCHEMES:  # SQLite: leave it unset
        raise ManifestError(
            f"{where}: runs.url must be a postgresql:// URL",  # not echoed: it may hold secrets
            "e.g. `runs: {url: postgresql://user@host/dbname}`",
        )
    value = value.strip()
    url = _server_url(value, where)
    secret = url.password is not None or any(k.lower() in RUNS_SECRETS for k in url.query)
    if where.endswith(FILES[0]) and secret:
        raise ManifestError(
            f"{where}: runs.url has a password and {FILES[0]} is committed to git",
            f"put runs.url in .pipeline/{FILES[1]}, or the password in ~/.pgpass or PGPASSWORD",
        )
    return value


def _server_url(value: str, where: str) -> Any:
    """`value` read as SQLAlchemy (and so the driver) will read it: a password is found where
    the server would find it, not where a pattern guesses (`u:pass/word@h`, `?password=`)."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - only when a server store is set
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    try:
        return make_url(value)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ManifestError(
            f"{where}: runs.url is not a valid URL",  # not echoed: it may hold a password
            "the form is postgresql://user@host:5432/dbname, the port a number",
        ) from None


REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _executor(section: dict[str, Any], origin: dict[str, str]) -> ExecutorSettings:
    """`executor: {kind: dask, address: tcp://HOST:PORT, retries: 2, shared_fs: false}`."""
    where = next((origin[f"executor.{k}"] for k in section if f"executor.{k}" in origin), "")
    where = where or ".pipeline/config.yaml"
    kind = section.get("kind", EXECUTORS[0])
    address, retries = section.get("address"), section.get("retries", 2)
    shared = section.get("shared_fs", False)
    unknown = sorted(set(section) - set(_EXECUTOR_KEYS))
    if unknown:
        raise ManifestError(
            f"{where}: unknown key executor.{unknown[0]}",
            "the keys are " + ", ".join(_EXECUTOR_KEYS),
        )
    if kind not in EXECUTORS:
        raise ManifestError(
            f"{where}: executor.kind {kind!r} is not one of " + ", ".join(EXECUTORS),
            "e.g. `executor: {kind: dask, address: tcp://scheduler:8786}`",
        )
    if address is not None and not isinstance(address, str):
        raise ManifestError(f"{where}: executor.address must be a string", "tcp://HOST:PORT")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ManifestError(f"{where}: executor.retries must be a whole number >= 0", "e.g. 2")
    if not isinstance(shared, bool):
        raise ManifestError(f"{where}: executor.shared_fs must be true or false", "e.g. true")
    return ExecutorSettings(str(kind), address, retries, shared)


def _choice(
    section: dict[str, Any], key: str, allowed: tuple[str, ...], origin: dict[str, str]
) -> str:
    value = section.get(key, allowed[0])
    if value not in allowed:
        where = origin.get(f"env.{key}", ".pipeline/config.yaml")
        raise ManifestError(
            f"{where}: env.{key} {value!r} is not one of " + ", ".join(allowed),
            f"e.g. `env: {{{key}: {allowed[0]}}}`",
        )
    return str(value)


def _cache_type(value: Any, state_dir: Path) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    names = tuple(str(item).strip() for item in items) if isinstance(items, list) else ()
    bad = [n for n in names if n not in LINK_STRATEGIES]
    if not names or bad:
        raise ManifestError(
            f"{state_dir.name}/config.yaml: cache.type {value!r} is not a link strategy",
            f"use one or more of {', '.join(LINK_STRATEGIES)}, e.g. `type: hardlink,copy`",
        )
    return names


def read_file(state_dir: Path, *, local: bool = False) -> dict[str, Any]:
    """One config file as written (a missing file is empty), for commands that edit it."""
    path = state_dir / FILES[1 if local else 0]
    if not path.is_file():
        return {}
    doc = load_yaml(path)
    if doc.data is not None and not isinstance(doc.data, dict):
        raise doc.error((), "a config file must be a mapping")
    return dict(doc.data or {})


def write_file(state_dir: Path, data: dict[str, Any], *, local: bool = False) -> Path:
    """Rewrite one config file (atomically; comments are not kept)."""
    path = state_dir / FILES[1 if local else 0]
    header = "# pipeline settings; `pipeline remote ...` rewrites this file\n"
    if local:
        header = "# this machine's settings and secrets: never committed\n"
    atomic_write_text(path, header + (dump_yaml(data) if data else ""))
    return path
