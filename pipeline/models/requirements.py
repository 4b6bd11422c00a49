"""The environment files of a package: exact pins of the running env, python_env.yaml, its lock.

Requirements are the distributions actually installed in the interpreter that saves the model
(the stage's env, built from its lock), never guessed from imports. `pipeline` itself is not
pinned: it reaches a stage env through PYTHONPATH, not as a distribution.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
from importlib import metadata
from pathlib import Path

from pipeline.errors import ModelError

REQUIREMENTS = "requirements.txt"
PYTHON_ENV = "python_env.yaml"
_SKIP = frozenset({"pipeline"})
# the lock file name inside a package, by the kind of env the stage ran in
_LOCK_NAMES = {"python_env": "pylock.toml", "requirements": "pylock.toml"}
_CONDA_KINDS = frozenset({"conda_env", "conda_lock"})


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> tuple[str, ...]:
    """`name==version` of every distribution of this interpreter, sorted and unique."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if not name or normalise(name) in _SKIP:
            continue
        found.setdefault(normalise(name), dist.version)  # the first on sys.path wins, as import
    return tuple(f"{name}=={version}" for name, version in sorted(found.items()))


def python_env_yaml() -> str:
    """MLflow's python_env.yaml, written by hand: a model env needs no PyYAML."""
    return (
        f"python: {platform.python_version()}\n"
        "build_dependencies:\n- pip\n"
        f"dependencies:\n- -r {REQUIREMENTS}\n"
    )


def write_env_files(dest: Path) -> tuple[str, ...]:
    """Write requirements.txt and python_env.yaml into `dest`; the pins written."""
    pinned = pins()
    (dest / REQUIREMENTS).write_text("".join(f"{p}\n" for p in pinned), encoding="utf-8")
    (dest / PYTHON_ENV).write_text(python_env_yaml(), encoding="utf-8")
    return pinned


def copy_lock(dest: Path) -> tuple[str | None, str | None]:
    """Copy the stage env's lock ($PIPELINE_ENV_LOCK) into `dest`: (its name there, env kind)."""
    kind = os.environ.get("PIPELINE_ENV_KIND") or None
    lock = os.environ.get("PIPELINE_ENV_LOCK")
    if not lock:
        return None, kind
    name = "conda-lock.yml" if kind in _CONDA_KINDS else _LOCK_NAMES.get(kind or "", "pylock.toml")
    try:
        shutil.copyfile(lock, dest / name)  # bytes as they are: the lock is hashed elsewhere
    except OSError as exc:
        raise ModelError(
            f"cannot copy the env lock {lock}: {exc.strerror or exc}",
            "PIPELINE_ENV_LOCK is set by `pipeline repro`; unset it when saving by hand",
        ) from None
    return name, kind
