"""Build a conda env with py-rattler: solve and install, no conda installation needed.

`environment.yml` specs are solved against their channels; a conda-lock file is installed
exactly as listed. An env's `pip:` section (or a lock's `manager: pip` packages) is then
installed by uv into the env's own python. A user may instead name an installed conda, mamba
or micromamba in `.pipeline/config.yaml` (`env: {conda: micromamba}`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.yamlio import parse_yaml, read_document
from pipeline.env.resolve import ResolvedEnv
from pipeline.env.tools import run_tool
from pipeline.errors import EnvironmentSetupError

if TYPE_CHECKING:
    import rattler

Log = Callable[[str], None]
EXTERNAL_TOOLS = ("conda", "mamba", "micromamba")


def _rattler() -> Any:
    try:
        import rattler  # noqa: PLC0415 - an optional extra, needed only to build conda envs
    except ImportError:
        raise EnvironmentSetupError(
            "conda environments need py-rattler, which is not installed",
            "pip install 'pipeline[conda]' (or set `env: {conda: micromamba}` in the config)",
        ) from None
    return rattler


def solve(env: ResolvedEnv, cache: Path) -> list[rattler.RepoDataRecord]:
    """Solve an `environment.yml`'s conda dependencies for this platform."""
    rattler = _rattler()
    request = env.request
    if not request.channels:
        raise EnvironmentSetupError(
            f"{env.spec.name} lists no channels", "add `channels:` (a name, URL or local path)"
        )
    gateway = rattler.Gateway(cache_dir=cache / "repodata")
    try:
        return list(
            asyncio.run(
                rattler.solve(
                    list(request.channels),
                    list(request.conda),
                    gateway=gateway,
                    virtual_packages=rattler.VirtualPackage.detect(),
                )
            )
        )
    except Exception as exc:  # rattler's errors share no base class but Exception
        raise _error(f"solving {env.spec.name}", exc) from None


def locked_records(lock: Path) -> list[rattler.RepoDataRecord]:
    """The conda packages a conda-lock file pins for this platform."""
    rattler = _rattler()
    try:
        environment = rattler.LockFile.from_path(lock).default_environment()
    except Exception as exc:
        raise _error(f"reading {lock.name}", exc, "regenerate it: pipeline env lock") from None
    current = str(rattler.Subdir.current())
    platforms = environment.platforms() if environment is not None else []
    platform = next((p for p in platforms if p.name == current), None)
    if platform is None:
        raise EnvironmentSetupError(
            f"{lock.name} has no packages for {current}",
            "lock it on (or for) this platform: pipeline env lock",
        )
    return list(environment.conda_repodata_records_for_platform(platform) or [])


def current_subdir() -> str:
    """This machine's conda platform, e.g. `linux-64`."""
    return str(_rattler().Subdir.current())


def locked_pip_requirements(lock: Path) -> list[str]:
    """The `manager: pip` packages of a conda-lock file, as `name @ url --hash=…` lines."""
    doc = parse_yaml(read_document(lock), lock)
    platform = current_subdir()
    lines = []
    for package in (doc.data or {}).get("package") or []:
        if package.get("manager") == "pip" and package.get("platform") == platform:
            sha = (package.get("hash") or {}).get("sha256")
            pin = f" --hash=sha256:{sha}" if sha else ""
            lines.append(f"{package['name']} @ {package['url']}{pin}")
    return lines


def install(records: list[rattler.RepoDataRecord], prefix: Path, cache: Path) -> None:
    """Link `records` into the absolute `prefix` (relative prefixes end up inside files)."""
    rattler = _rattler()
    try:
        asyncio.run(
            rattler.install(
                records,
                target_prefix=str(prefix.absolute()),
                cache_dir=cache / "pkgs",
                show_progress=False,
            )
        )
    except Exception as exc:
        raise _error("installing the conda packages", exc) from None


def create_with_tool(tool: str, spec: Path, prefix: Path, log: Log) -> None:
    """Let an installed conda, mamba or micromamba build the env from a spec or explicit list."""
    exe = shutil.which(tool)
    if exe is None:
        raise EnvironmentSetupError(
            f"the config asks for {tool}, which is not on PATH",
            "install it, or remove `env.conda` from .pipeline/config.yaml to use py-rattler",
        )
    if tool == "micromamba" or spec.suffix == ".txt":
        argv = [exe, "create", "--yes", "--prefix", str(prefix), "--file", str(spec)]
    else:
        argv = [exe, "env", "create", "--prefix", str(prefix), "--file", str(spec)]
    run_tool(argv, f"{tool} creating the env", log=log)


def explicit_list(records: list[rattler.RepoDataRecord]) -> str:
    """conda's `@EXPLICIT` format: what conda/mamba/micromamba install from a lock."""
    lines = ["@EXPLICIT"]
    for record in records:
        md5 = record.md5.hex() if record.md5 else ""
        lines.append(f"{record.url}#{md5}" if md5 else record.url)
    return "\n".join(lines) + "\n"


def installed_packages(prefix: Path) -> list[list[str]]:
    """`[name, version, build, channel]` of each conda package in the prefix, by name."""
    found = []
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        row = [meta["name"], meta["version"], meta.get("build", ""), meta.get("channel", "")]
        found.append(row)
    return sorted(found)


def activation_script(prefix: Path) -> Path | None:
    """A script sourcing the env's `activate.d` hooks, for stages to run with (via BASH_ENV)."""
    hooks = sorted((prefix / "etc" / "conda" / "activate.d").glob("*.sh"))
    if not hooks:
        return None
    script = prefix / "etc" / "conda" / "pipeline-activate.sh"
    outer = '[ -n "$PIPELINE_OUTER_BASH_ENV" ] && . "$PIPELINE_OUTER_BASH_ENV"\n'
    body = "".join(f'. "{hook}"\n' for hook in hooks)
    script.write_text(outer + f'export CONDA_PREFIX="{prefix}"\n' + body, encoding="utf-8")
    os.chmod(script, 0o644)
    return script


def _error(what: str, exc: Exception, hint: str | None = None) -> EnvironmentSetupError:
    message = str(exc).strip() or type(exc).__name__
    kind = type(exc).__name__
    return EnvironmentSetupError(
        f"{what} failed ({kind}):\n  " + message.replace("\n", "\n  "),
        hint or "check the package names, versions and channels in the spec",
    )
