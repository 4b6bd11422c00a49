"""Find a Python interpreter on this machine for a request like `"3.12"`; never download one.

The interpreter running pipeline wins when it matches. Otherwise the highest matching version
among: pyenv's `versions/*` (whose pyenv shims
fail for non-selected versions, so they are skipped), `python3.X` on `PATH`, and finally
`uv python find` with downloads disabled.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.atomic import atomic_write_text
from pipeline.env.uvbin import uv_binary
from pipeline.errors import EnvironmentSetupError

_VERSION = re.compile(r"^\d+(\.\d+){0,2}$")
_PROBE = "import platform, sys; print(platform.python_implementation(), platform.python_version())"


@dataclass(frozen=True)
class Interpreter:
    """A Python found on this machine: its executable and `X.Y.Z` version."""

    path: str
    version: str
    implementation: str = "cpython"

    @property
    def identity(self) -> str:
        """What an env digest records: portable across machines, unlike the path."""
        return f"{self.implementation}-{self.version}"

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def current() -> Interpreter:
    """The interpreter running pipeline: the default for specs that name no version."""
    impl = platform.python_implementation().lower()
    return Interpreter(sys.executable, platform.python_version(), impl)


def find_python(request: str | None) -> Interpreter:
    """The best installed interpreter for `request` (`3`, `3.12` or `3.12.1`; None: current)."""
    if request is None:
        return current()
    request = request.strip()
    if request.startswith("=="):
        request = request[2:].strip()
    if not _VERSION.match(request):
        raise EnvironmentSetupError(
            f"python: {request!r} is not a version",
            'give a version such as "3.12" or "3.12.1"',
        )
    if not request.startswith("3"):
        raise EnvironmentSetupError(
            f"python: {request!r}: only Python 3 environments can be built",
            'ask for a Python 3 version such as "3.11"',
        )
    running = current()
    if _matches(running.version, request):  # `3` or `3.11` on 3.11: what pipeline runs on
        return running
    found = _candidates(request)
    matching = [i for i in found if _matches(i.version, request)]
    if matching:
        return max(matching, key=lambda i: _key(i.version))
    versions = sorted({i.version for i in _all_found()}, key=_key)
    raise EnvironmentSetupError(
        f"no Python {request} is installed on this machine (nothing is downloaded)",
        "found: " + (", ".join(versions) or "none") + "; install it (e.g. `pyenv install "
        f"{request}`) or change the env's `python:`",
    )


def _candidates(request: str) -> list[Interpreter]:
    """Cheap sources first; PATH, then uv, only when the ones before found nothing matching."""
    found = [current(), *_pyenv()]
    for more in (_on_path, lambda: _uv_find(request)):
        if any(_matches(i.version, request) for i in found):
            break
        found += more()
    return found


def _all_found() -> list[Interpreter]:
    return [current(), *_pyenv(), *_on_path()]


def _matches(version: str, request: str) -> bool:
    return (version + ".").startswith(request + ".")


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


@functools.cache
def _pyenv() -> tuple[Interpreter, ...]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    for version_dir in sorted(root.glob("*")) if root.is_dir() else ():
        if not re.match(r"^\d+\.\d+\.\d+$", version_dir.name):
            continue  # virtualenvs and other implementations are probed only via PATH
        minor = ".".join(version_dir.name.split(".")[:2])
        exe = version_dir / "bin" / f"python{minor}"
        if exe.is_file() and os.access(exe, os.X_OK):
            found.append(Interpreter(str(exe), version_dir.name))
    return tuple(found)


@functools.cache
def _on_path() -> tuple[Interpreter, ...]:
    shims = os.sep + "shims" + os.sep
    found = []
    for minor in range(6, 30):
        exe = shutil.which(f"python3.{minor}")
        if exe and shims not in exe:
            probed = _probe(exe)
            if probed is not None:
                found.append(probed)
    return tuple(found)


def _uv_find(request: str) -> list[Interpreter]:
    uv = uv_binary()
    if uv is None:
        return []
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    try:
        argv = [uv, "python", "find", request]
        out = subprocess.run(argv, check=False, capture_output=True, text=True, env=env, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    path = out.stdout.strip()
    probed = _probe(path) if out.returncode == 0 and path else None
    return [probed] if probed else []


@functools.cache
def _probe(exe: str) -> Interpreter | None:
    """The interpreter at `exe`, asked once per binary (then remembered on disk)."""
    try:
        st = os.stat(exe)
    except OSError:
        return None
    key = f"{os.path.realpath(exe)}:{st.st_mtime_ns}:{st.st_size}"
    memo = _probe_memo()
    if key in memo:
        impl, version = memo[key]
        return Interpreter(exe, version, impl)
    found = _ask(exe)
    if found is not None:
        _remember_probe(key, found)
    return found


def _memo_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pipeline" / "interpreters.json"


def _probe_memo() -> dict[str, list[str]]:
    try:
        data = json.loads(_memo_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember_probe(key: str, found: Interpreter) -> None:
    memo = _probe_memo()
    memo[key] = [found.implementation, found.version]
    with contextlib.suppress(OSError):
        _memo_path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(_memo_path(), json.dumps(memo, indent=0), durable=False)


def _ask(exe: str) -> Interpreter | None:
    try:
        argv = [exe, "-c", _PROBE]
        out = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    if out.returncode != 0 or len(parts) != 2:
        return None
    return Interpreter(exe, parts[1], parts[0].lower())
