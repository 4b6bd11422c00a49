"""Project settings: `.pipeline/config.yaml` (committed) and `config.local.yaml` (this machine).

    cache:
      type: hardlink,copy      # or a list; strategies tried in order (LINK_STRATEGIES)
    env:
      installer: uv            # or pip: virtualenv + pip, where uv cannot run
      conda: rattler           # or an installed conda, mamba or micromamba

The local file wins key by key. Only what a feature reads is validated; an unknown section is
kept for later versions, an unknown cache strategy is an error naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.yamlio import DocumentMemo, load_yaml
from pipeline.errors import ManifestError

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


@dataclass(frozen=True)
class Config:
    """The settings in force for one project."""

    cache_type: tuple[str, ...] | None = None  # None: the defaults of store/objects.py
    env: EnvSettings = EnvSettings()


def load_config(state_dir: Path, memo: DocumentMemo | None = None) -> Config:
    """Merge the project's config files (missing files are fine)."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}  # "section.key" -> the file that set it, for messages
    for name in FILES:
        path = state_dir / name
        if path.is_file():
            doc = load_yaml(path, memo, f".pipeline/{name}")
            if doc.data is not None and not isinstance(doc.data, dict):
                raise doc.error((), "a config file must be a mapping")
            for section, values in (doc.data or {}).items():
                if values is not None and not isinstance(values, dict):
                    raise doc.error((section,), f"`{section}` must be a mapping of settings")
                merged[section] = {**merged.get(section, {}), **(values or {})}
                origin.update({f"{section}.{k}": f"{state_dir.name}/{name}" for k in values or {}})
    env = merged.get("env", {})
    return Config(
        cache_type=_cache_type(merged.get("cache", {}).get("type"), state_dir),
        env=EnvSettings(
            installer=_choice(env, "installer", INSTALLERS, origin),
            conda=_choice(env, "conda", CONDA_TOOLS, origin),
        ),
    )


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
