"""Build a venv for a `python_env` or `requirements.txt` env: uv when it runs, else virtualenv.

uv creates a venv in ~20 ms and installs from a warm cache in tens of ms; `python -m venv`
spends seconds installing pip. Without uv, virtualenv creates the venv and the venv's own pip
installs (pip reads its own configuration). Interpreter downloads are always disabled.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from pipeline.env.interpreters import Interpreter
from pipeline.env.tools import pip_index_options, run_tool
from pipeline.env.uvbin import uv_binary
from pipeline.errors import EnvironmentSetupError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Log = Callable[[str], None]


def tool_env() -> dict[str, str]:
    """The environment installers run with: no interpreter downloads, no inherited venv."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


_LEAKY = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT")


def create_venv(prefix: Path, interpreter: Interpreter, log: Log, *, installer: str) -> str:
    """Create an empty venv at `prefix` (absolute); returns the tool that made it."""
    uv = uv_binary() if installer == "uv" else None
    if uv is not None:
        argv = [uv, "venv", "--quiet", "--no-config", "--python", interpreter.path, str(prefix)]
        run_tool(argv, "creating the venv with uv", env=tool_env(), log=log)
        return "uv"
    argv = [sys.executable, "-m", "virtualenv", "--quiet", "--python", interpreter.path]
    run_tool([*argv, "--no-setuptools", "--no-wheel", str(prefix)], "virtualenv", log=log)
    return "virtualenv"


def pip_install(
    python: Path,
    args: Sequence[str],
    log: Log,
    *,
    installer: str,
    what: str,
    cwd: Path | None = None,
) -> None:
    """Install `args` (requirements or `-r file`) into the env whose interpreter is `python`.

    `cwd` is the spec's directory: relative paths a spec names are relative to it.
    """
    uv = uv_binary() if installer == "uv" else None
    if uv is not None:
        index = pip_index_options().uv_args()
        argv = [uv, "pip", "install", "--no-config", "--python", str(python), *_COMPILE, *index]
        argv += args
        run_tool(argv, what, env=tool_env(), log=log, cwd=cwd)
    else:
        argv = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args]
        if not (python.parent / "pip").exists():
            _ensure_pip(python, log)
        run_tool(argv, what, env=tool_env(), log=log, cwd=cwd)


# Bytecode is compiled once at build time, as pip does: an env is read by every stage and model
# server started in it, and where PYTHONDONTWRITEBYTECODE is set nothing would ever cache it
# (importing scikit-learn from source costs seconds each time).
_COMPILE = ("--compile-bytecode",)


def install_lock(python: Path, lock: Path, log: Log, *, installer: str) -> None:
    """Install exactly what a `pylock.toml` lists (no resolution)."""
    uv = uv_binary() if installer == "uv" else None
    if uv is not None:
        argv = [uv, "pip", "install", "--no-config", "--python", str(python), *_COMPILE]
        argv += ["--no-deps", "--preview-features", "pylock", "-r", str(lock)]
        run_tool(argv, f"installing {lock.name}", env=tool_env(), log=log)
        return
    # Written inside the env being built: a shared, read-only envs/ folder stays untouched.
    requirements = python.parent.parent / "pipeline-requirements.txt"
    requirements.write_text(pylock_as_requirements(lock), encoding="utf-8")
    args = ["--no-deps", "--require-hashes", "-r", str(requirements)]
    pip_install(python, args, log, installer="pip", what=f"installing {lock.name} with pip")


def _ensure_pip(python: Path, log: Log) -> None:
    run_tool([str(python), "-m", "ensurepip", "--default-pip"], "installing pip", log=log)


def site_packages(prefix: Path) -> list[Path]:
    return sorted(prefix.glob("lib/python*/site-packages"))


def installed_packages(prefix: Path) -> list[list[str]]:
    """`[name, version]` of every distribution in the env, sorted by name."""
    found = {}
    for dist in metadata.distributions(path=[str(p) for p in site_packages(prefix)]):
        name = dist.metadata["Name"]
        if name:
            found[name.lower()] = [name, dist.version]
    return [found[k] for k in sorted(found)]


def python_of(prefix: Path) -> Path:
    python = prefix / "bin" / "python"
    if not python.exists():
        raise EnvironmentSetupError(
            f"the env at {prefix} has no bin/python",
            "a conda env needs `python` in its dependencies to install a `pip:` section",
        )
    return python


def pylock_as_requirements(lock: Path) -> str:
    """A pylock.toml as hash-pinned requirement lines, for pip (which cannot read it)."""
    data = tomllib.loads(lock.read_text(encoding="utf-8"))
    lines = []
    for package in data.get("packages", []):
        artifacts = [*(package.get("wheels") or []), package.get("sdist") or {}]
        hashes = [a["hashes"]["sha256"] for a in artifacts if a.get("hashes", {}).get("sha256")]
        pins = " ".join(f"--hash=sha256:{h}" for h in hashes)
        marker = f" ; {package['marker']}" if package.get("marker") else ""
        lines.append(f"{package['name']}=={package['version']}{marker} {pins}".strip())
    return "\n".join(lines) + "\n"
