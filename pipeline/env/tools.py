"""The installers pipeline drives, and the index settings they must be given.

uv is a dependency and does the work when it can run. uv does not read pip's configuration,
so the settings a user gave pip (`PIP_INDEX_URL`, `PIP_EXTRA_INDEX_URL`, `PIP_FIND_LINKS`,
`PIP_NO_INDEX` and pip's config files) are read here, in pip's order, and passed to uv as flags.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import EnvironmentSetupError


@dataclass(frozen=True)
class IndexOptions:
    """Where packages come from, as pip is configured on this machine."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    constraints: tuple[str, ...] = ()

    def uv_args(self) -> list[str]:
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        elif self.index_url:
            args += ["--index-url", self.index_url]
        for url in () if self.no_index else self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        if self.extra_index_urls and not self.no_index:
            args += ["--index-strategy", "unsafe-best-match"]  # pip's rule: best version wins
        for constraint in self.constraints:
            args += ["--constraint", constraint]
        return args


def pip_index_options(environ: Mapping[str, str] | None = None) -> IndexOptions:
    """pip's effective index settings, found the way pip finds them.

    Files in pip's priority order (global, user, site, then `PIP_CONFIG_FILE`; user files are
    skipped when that one exists; `os.devnull` skips them all); every file's `[global]`, then
    every file's `[install]`, then `PIP_*` variables, each overriding the one before.
    """
    environ = os.environ if environ is None else environ
    sections: dict[str, dict[str, str]] = {"global": {}, "install": {}}
    for path in _config_files(environ):
        for section, values in _read_config(path).items():
            if section in sections:
                sections[section].update(values)
    values = {**sections["global"], **sections["install"]}
    for key in _KEYS:
        env_value = environ.get("PIP_" + key.upper().replace("-", "_"))
        if env_value:  # pip ignores empty variables
            values[key] = env_value
    return IndexOptions(
        index_url=values.get("index-url") or None,
        extra_index_urls=tuple(values.get("extra-index-url", "").split()),
        find_links=tuple(values.get("find-links", "").split()),
        no_index=_true(values.get("no-index", "")),
        constraints=tuple(values.get("constraint", "").split()),
    )


_KEYS = ("index-url", "extra-index-url", "find-links", "no-index", "constraint")


def _read_config(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return {}  # pip itself would refuse it; the installer will say why
    return {
        section: {_key(k): v for k, v in parser.items(section) if _key(k) in _KEYS and v.strip()}
        for section in parser.sections()
    }


def _key(name: str) -> str:
    return name.strip().lstrip("-").replace("_", "-").lower()


def _true(value: str) -> bool:
    return value.strip().lower() in ("y", "yes", "t", "true", "on", "1")


def _config_files(environ: Mapping[str, str]) -> list[Path]:
    """pip's files, lowest priority first."""
    explicit = environ.get("PIP_CONFIG_FILE")
    if explicit == os.devnull:
        return []
    home = Path(environ.get("HOME") or Path.home())
    dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    config_home = environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    files = [Path(d) / "pip" / "pip.conf" for d in dirs.split(os.pathsep) if d]
    files.append(Path("/etc/pip.conf"))
    if not (explicit and os.path.exists(explicit)):
        files += [home / ".pip" / "pip.conf", Path(config_home) / "pip" / "pip.conf"]
    files.append(Path(sys.prefix) / "pip.conf")
    if explicit:
        files.append(Path(explicit))
    return [f for f in files if f.is_file()]


def run_tool(
    argv: Sequence[str],
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> str:
    """Run an installer; on failure raise with the tail of its own message (exit code 3)."""
    try:
        proc = subprocess.run(
            list(argv),
            check=False,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except OSError as exc:
        raise EnvironmentSetupError(f"{what}: cannot run {argv[0]}: {exc}") from None
    if log is not None:
        log(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        detail = _tail(proc.stderr or proc.stdout)
        raise EnvironmentSetupError(f"{what} failed:\n{detail}", _hint(what, detail))
    return proc.stdout


def _tail(text: str, lines: int = 25) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join("  " + line for line in kept[-lines:]) or "  (no output)"


def _hint(what: str, detail: str) -> str:
    if "No solution found" in detail or "not found in the package registry" in detail:
        return "check the package names and versions in the spec; they must exist on your index"
    if "venv" in what or "virtualenv" in what:
        return "the interpreter could not make a venv: check that it runs, or pick another python"
    return "fix the spec, or the index settings pip uses (pip.conf, PIP_INDEX_URL)"
