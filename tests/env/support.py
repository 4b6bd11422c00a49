"""Helpers shared by the environment tests (tests/env, and env tests of the manifest, the plan and
the CLI); this module holds no tests.

Every env test is hermetic: `isolate` points `XDG_CACHE_HOME` (the env store, rattler's caches)
and `UV_CACHE_DIR` at the test's tmp dir, disables pip's config files and every index, and
serves packages only from a find-links directory of wheels built by the test (`envkit`).
Nothing touches the network or the developer's caches.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Project, cli_env, record
from tests.env import envkit

# Variables that would send an installer elsewhere than the test's find-links directory, or
# leak an outer environment into the one under test.
_UNSET = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_REQUIRE_VIRTUALENV",
    "UV_INDEX",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_CACHE",
    "UV_PYTHON",
    "UV_CONSTRAINT",
    "UV_OVERRIDE",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
)

# A stage script: imports the modules named on its command line and reports, as JSON, where it
# runs. It must run on any Python 3 (the second-interpreter test uses another version).
SHOW_PY = """\
import importlib, importlib.util, json, os, sys
modules = {}
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    modules[name] = getattr(module, "VERSION", None) or getattr(module, "__file__", None)
print(json.dumps({
    "prefix": sys.prefix,
    "executable": sys.executable,
    "version": list(sys.version_info[:2]),
    "modules": modules,
    "leaked_importable": importlib.util.find_spec("leaked_module") is not None,
    "environ": {k: os.environ.get(k) for k in (
        "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "MY_VAR", "OTHER_VAR"
    )},
}))
"""


def build_wheels(dest: Path) -> Path:
    """The standard find-links dir: alpha 1.0 (needs beta>=1), beta 1.0, gamma 1.0."""
    envkit.build_wheel(dest, "alpha", "1.0", requires=["beta>=1"])
    envkit.build_wheel(dest, "beta", "1.0")
    envkit.build_wheel(dest, "gamma", "1.0")
    return dest


@dataclass
class EnvCache:
    """The env store of one test: `$XDG_CACHE_HOME/pipeline/envs`."""

    xdg: Path

    @property
    def root(self) -> Path:
        return self.xdg / "pipeline" / "envs"

    def published(self) -> dict[str, Path]:
        """Published envs: digest hex → the real directory its symlink points at."""
        if not self.root.is_dir():
            return {}
        return {p.name: p.resolve() for p in self.root.iterdir() if p.is_symlink()}

    def store_dirs(self) -> list[Path]:
        """Every build directory under `.store/` (published or not)."""
        store = self.root / ".store"
        return sorted(store.iterdir()) if store.is_dir() else []

    def contains(self, path: str | Path) -> bool:
        """Whether `path` lies in the store (its last part is not resolved: a venv's python
        is a symlink to the base interpreter)."""
        where = Path(path)
        return (where.parent.resolve() / where.name).is_relative_to(self.root.resolve())

    def meta(self, digest: str) -> dict[str, Any]:
        hexdigest = digest.rsplit(":", 1)[-1]
        return json.loads((self.root / hexdigest / "pipeline-env.json").read_text())


def isolate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, find_links: Path, name: str = "xdg"
) -> EnvCache:
    """Point every cache at `tmp_path/name` and every installer at `find_links` only.

    Called again with another `name`, the test continues with a fresh, empty cache.
    """
    for key in _UNSET:
        monkeypatch.delenv(key, raising=False)
    xdg = tmp_path / name
    xdg.mkdir(exist_ok=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setenv("UV_CACHE_DIR", str(xdg / "uv"))
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    monkeypatch.setenv("UV_NO_PROGRESS", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(find_links))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    return EnvCache(xdg)


def write_yaml(project: Project, rel: str, data: dict[str, Any]) -> Path:
    return project.write(rel, yaml.safe_dump(data, sort_keys=False))


def show_stage(name: str, *modules: str, **extra: Any) -> dict[str, Any]:
    """A stage running SHOW_PY (importing `modules`) into `out/<name>.json`."""
    command = " ".join(["python", "show.py", *modules])
    cmd = f"{command} > out/{name}.json && {record(name)}"
    return {"cmd": cmd, "deps": ["show.py"], "outs": [f"out/{name}.json"], **extra}


def shown(project: Project, stage: str) -> dict[str, Any]:
    return json.loads(project.read(f"out/{stage}.json"))


def repro_ok(project: Project) -> None:
    """`repro` in-process (faster than the CLI) where a test does not read its output."""
    result = project.repro()
    assert result.failed is None, result.failed.error if result.failed else None


def output(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"exit {done.returncode}\n{output(done)}"
    assert "Traceback" not in output(done)
    return done


def builds_in(text: str, env: str | None = None) -> int:
    """How many env builds a command's output announces (of env `env`, or of any)."""
    name = re.escape(env) if env else "[^']+"
    # not "waiting for another process to finish building env ..."
    return len(re.findall(rf"(?<!finish )building env '{name}'", text))


def build_counting_sdist(links: Path, work: Path, name: str, counter: Path) -> Path:
    """An sdist `{name}-1.0.tar.gz` in `links` whose build appends a line to `counter`.

    Its in-tree build backend (no build requirements, so it builds offline) hands over a
    prebuilt wheel. With `UV_NO_CACHE=1` uv builds it once per install, so `counter` counts
    how many times an env containing it was installed.
    """
    wheel = envkit.build_wheel(work / f"{name}-prebuilt", name, "1.0")
    backend = (
        "import shutil\n"
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
        f"    with open({str(counter)!r}, 'a') as fh:\n"
        "        fh.write('built\\n')\n"
        f"    shutil.copy({str(wheel)!r}, wheel_directory)\n"
        f"    return {wheel.name!r}\n"
    )
    files = {
        "pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        ),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        "backend.py": backend,
    }
    links.mkdir(parents=True, exist_ok=True)
    sdist = links / f"{name}-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-1.0/{rel}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return sdist


def counted(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def copy_tree(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def other_python() -> tuple[str, Path] | None:
    """An installed CPython 3.9+ whose X.Y differs from the running one: ("3.X", executable).

    Looks where pipeline looks: pyenv's `versions/*` (`pyenv root`, else PYENV_ROOT or
    ~/.pyenv) and `python3.X` on PATH, skipping pyenv shims. The newest such version wins.
    """
    current = sys.version_info[:2]
    found: dict[tuple[int, int], Path] = {}
    pyenv = shutil.which("pyenv")
    root = None
    if pyenv:
        done = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        root = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    root = root or Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for version_dir in sorted((root / "versions").glob("*")):
        match = re.fullmatch(r"3\.(\d+)\.\d+", version_dir.name)
        if match:
            exe = version_dir / "bin" / f"python3.{match.group(1)}"
            if exe.is_file() and os.access(exe, os.X_OK):
                found[(3, int(match.group(1)))] = exe
    for minor in range(9, 30):
        exe_name = shutil.which(f"python3.{minor}")
        if exe_name and f"{os.sep}shims{os.sep}" not in exe_name:
            found.setdefault((3, minor), Path(exe_name))
    usable = sorted(v for v in found if v != current and v >= (3, 9))
    if not usable:
        return None
    best = usable[-1]
    return f"{best[0]}.{best[1]}", found[best]


def leaky_parent_env(tmp_path: Path) -> dict[str, str]:
    """A CLI environment whose PYTHONPATH, VIRTUAL_ENV and CONDA_PREFIX must not reach a stage."""
    leak = tmp_path / "leak"
    leak.mkdir()
    (leak / "leaked_module.py").write_text("")
    outer = tmp_path / "outer-env"
    outer.mkdir()
    return cli_env(PYTHONPATH=str(leak), VIRTUAL_ENV=str(outer), CONDA_PREFIX=str(outer))


def json_of(done: Any) -> Any:
    return json.loads(ok(done).stdout)


PROBE = (
    "hello > out/{name}.txt && greet >> out/{name}.txt && "
    "python show.py greet {modules} > out/{name}.json && " + "{record}"
)


def conda_stage(name: str, *modules: str, **extra: Any) -> dict[str, Any]:
    """Runs `hello`, the `greet` script and the env's python importing greet and `modules`."""
    cmd = PROBE.format(name=name, modules=" ".join(modules), record=record(name))
    return {
        "cmd": cmd,
        "deps": ["show.py"],
        "outs": [f"out/{name}.txt", f"out/{name}.json"],
        **extra,
    }


def environment_yml(
    channel: Path | str, *, pip: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """An environment.yml; `channel` is a path (made a file:// URL) or a string kept as is."""
    deps: list[Any] = ["hello", "greet", "python"]
    if pip:
        deps.append({"pip": pip})
    url = channel.as_uri() if isinstance(channel, Path) else channel
    return {"channels": [url], "dependencies": deps, **extra}


def conda_project(
    project: Project, channel: Path | str, *, pip: list[str] | None = None, **extra: Any
) -> Project:
    project.write("show.py", SHOW_PY)
    write_yaml(project, "environment.yml", environment_yml(channel, pip=pip, **extra))
    modules = tuple(r.split("=")[0] for r in pip or ())
    project.manifest({"conda_env": "environment.yml", "stages": {"a": conda_stage("a", *modules)}})
    return project


def probe(project: Project, stage: str = "a") -> tuple[list[str], dict[str, Any]]:
    lines = project.read(f"out/{stage}.txt").splitlines()
    return lines, json.loads(project.read(f"out/{stage}.json"))


def venv_project(
    project: Project,
    deps: tuple[str, ...] = ("alpha",),
    stages: dict[str, object] | None = None,
) -> Project:
    """A project whose default env is `python_env.yaml` with `deps`; stage `a` imports them."""
    project.write("show.py", SHOW_PY)
    write_yaml(project, "python_env.yaml", {"dependencies": list(deps)})
    project.manifest(
        {"python_env": "python_env.yaml", "stages": stages or {"a": show_stage("a", *deps)}},
        commit=False,
    )
    project.commit()
    return project


def _pipeline(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def only_stage_path(value: str | None) -> bool:
    """Whether a stage's PYTHONPATH is just the tool's stage path: one folder holding only the
    `pipeline` link (`env/stagepath.py`), nothing of the parent's PYTHONPATH."""
    if value is None or os.pathsep in value:
        return False
    return sorted(p.name for p in Path(value).iterdir()) == ["pipeline"]
