"""Stage environments built as venvs (DESIGN §6): `python_env` and `requirements` specs.

Everything installs offline from wheels built here (`envkit.build_wheel`), found through pip's
own settings (`PIP_NO_INDEX`, `PIP_FIND_LINKS`), which pipeline hands to uv. Each test gets its
own env cache (`XDG_CACHE_HOME`), so nothing is shared between tests unless a test says so.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import sys
from pathlib import Path

import pytest

from pipeline.env import interpreters
from pipeline.errors import EnvironmentSetupError
from tests.conftest import Project
from tests.env.support import (
    SHOW_PY,
    EnvCache,
    builds_in,
    leaky_parent_env,
    ok,
    output,
    show_stage,
    shown,
    venv_project,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Every test here gets its own env cache and offline pip settings (conftest's `cache`).
pytestmark = pytest.mark.usefixtures("cache")

# -- 1. a venv from local wheels, and nothing of the outer environment leaks in ----------------


def test_venv_from_offline_wheels_runs_the_stage_isolated(
    project: Project, cache: EnvCache, tmp_path: Path
) -> None:
    assert importlib.util.find_spec("alpha") is None, "alpha must only exist inside the env"
    venv_project(project, deps=("alpha",), stages={"a": show_stage("a", "alpha", "beta")})
    parent = leaky_parent_env(tmp_path)

    done = ok(project.cli("repro", env=parent))

    assert builds_in(output(done), "default") == 1
    info = shown(project, "a")
    assert info["modules"] == {"alpha": "1.0", "beta": "1.0"}  # beta came as alpha's dependency
    assert cache.contains(info["prefix"]), info["prefix"]
    assert cache.contains(info["executable"]), info["executable"]
    environ = info["environ"]
    assert environ["VIRTUAL_ENV"] is not None
    assert Path(environ["VIRTUAL_ENV"]).resolve() == Path(info["prefix"]).resolve()
    assert environ["PYTHONPATH"] is None
    assert not info["leaked_importable"]
    assert environ["CONDA_PREFIX"] is None

    # The store: one build dir, published under the digest the lock records for the stage.
    digest = project.lock()["stages"]["a"]["env"]
    hexdigest = digest.rsplit(":", 1)[-1]
    published = cache.published()
    assert list(published) == [hexdigest]
    assert cache.store_dirs() == [published[hexdigest]]
    assert published[hexdigest].name.startswith(hexdigest + ".")
    assert Path(info["prefix"]).resolve() == published[hexdigest]
    meta = cache.meta(digest)
    assert meta["name"] == "default"
    assert meta["kind"] == "python_env"
    assert meta["builder"] == "uv"
    assert meta["digest"] == digest
    assert ["alpha", "1.0"] in meta["packages"]
    assert ["beta", "1.0"] in meta["packages"]
    assert meta["python"]["version"] == platform.python_version()

    again = ok(project.cli("repro", env=parent))
    assert builds_in(output(again)) == 0
    assert project.executions() == ["a"]


# -- 6. failures: exit 3, the installer's message, nothing left in the cache -------------------

FAILURES = {
    "missing-package": (
        "dependencies:\n  - no-such-package-xyz\n",
        ["no-such-package-xyz", "env 'default'"],
    ),
    "unknown-key": (
        'python: "3"\ndependencies:\n  - alpha\nbuild_dependencie:\n  - uv\n',
        ["python_env.yaml:4:", "build_dependencie"],
    ),
    "python-3.99": (
        'python: "3.99"\ndependencies:\n  - alpha\n',
        ["3.99", "found:", platform.python_version()],
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_broken_spec_fails_with_the_reason_and_leaves_no_env(
    project: Project, cache: EnvCache, case: str
) -> None:
    text, expected = FAILURES[case]
    project.write("show.py", SHOW_PY)
    project.write("python_env.yaml", text)
    project.manifest({"python_env": "python_env.yaml", "stages": {"a": show_stage("a")}})

    done = project.cli("repro")

    # A malformed spec is a usage error (2) naming its own line; a failed build is 3.
    assert done.returncode == (2 if case == "unknown-key" else 3), output(done)
    assert "Traceback" not in output(done)
    assert "error:" in done.stderr
    for part in expected:
        assert part in done.stderr, f"{part!r} not in:\n{done.stderr}"
    assert not project.exists("out/a.json")
    assert cache.published() == {}
    assert cache.store_dirs() == []
    assert project.executions() == []


# -- 12. the pip installer ----------------------------------------------------------------------


@pytest.mark.slow
def test_pip_installer_builds_a_working_venv_offline(project: Project, cache: EnvCache) -> None:
    venv_project(project, deps=("alpha",), stages={"a": show_stage("a", "alpha", "beta")})
    project.write(".pipeline/config.yaml", "env:\n  installer: pip\n")

    ok(project.cli("repro"))

    info = shown(project, "a")
    assert info["modules"] == {"alpha": "1.0", "beta": "1.0"}
    assert cache.contains(info["prefix"])
    meta = cache.meta(project.lock()["stages"]["a"]["env"])
    assert meta["builder"] == "virtualenv"
    assert ["alpha", "1.0"] in meta["packages"]


# -- creating a venv, installing from a lock, uv's declared floor ------------------------------


ROOT = Path(__file__).resolve().parents[2]


def test_a_venv_creation_failure_gets_a_hint_about_the_interpreter(tmp_path: Path) -> None:
    from pipeline.env.venv import create_venv

    broken = tmp_path / "python3.99"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    bad = interpreters.Interpreter(str(broken), "3.99.0")
    with pytest.raises(EnvironmentSetupError) as caught:
        create_venv(tmp_path / "venv", bad, lambda _: None, installer="uv")
    assert "index" not in (caught.value.hint or "")


def test_pylock_as_requirements_keeps_markers(tmp_path: Path) -> None:
    from pipeline.env.venv import pylock_as_requirements

    lock = tmp_path / "pylock.env.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "uv"\n\n'
        '[[packages]]\nname = "colorama"\nversion = "0.4.6"\n'
        "marker = \"sys_platform == 'win32'\"\n"
        'wheels = [{ url = "https://files.invalid/colorama-0.4.6-py2.py3-none-any.whl", '
        'hashes = { sha256 = "' + "a" * 64 + '" } }]\n'
    )
    text = pylock_as_requirements(lock)
    line = next((x for x in text.splitlines() if x.startswith("colorama")), None)
    assert line is None or "win32" in line, text


def _declared_uv_floor() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for dep in data["project"]["dependencies"]:
        match = re.fullmatch(r"uv\s*>=\s*([\d.]+)", dep.strip())
        if match:
            return match.group(1)
    raise AssertionError("no uv>= dependency in pyproject.toml")


def test_declared_uv_floor_knows_every_flag_we_pass() -> None:
    import inspect

    from packaging.version import Version

    from pipeline.env import venv

    if "--preview-features" in inspect.getsource(venv.install_lock):
        assert Version(_declared_uv_floor()) >= Version("0.8.20")
