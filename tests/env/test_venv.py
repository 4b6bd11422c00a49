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
    only_stage_path,
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
    assert only_stage_path(environ["PYTHONPATH"]), environ["PYTHONPATH"]
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
    hint = caught.value.hint
    assert hint, caught.value.message
    assert "interpreter" in hint, hint  # the interpreter could not make a venv: …
    assert "index" not in hint, hint  # not the advice for a failed install


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
    lines = [x for x in text.splitlines() if x.startswith("colorama")]
    assert len(lines) == 1, text
    assert lines[0].startswith("colorama==0.4.6"), text
    assert "sys_platform == 'win32'" in lines[0], text
    assert f"--hash=sha256:{'a' * 64}" in lines[0], text


def _declared_uv_floor() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for dep in data["project"]["dependencies"]:
        match = re.fullmatch(r"uv\s*>=\s*([\d.]+)", dep.strip())
        if match:
            return match.group(1)
    raise AssertionError("no uv>= dependency in pyproject.toml")


# uv flags pipeline passes that an older uv rejects: the first uv release that accepts each.
# A new such flag belongs here, with the `uv>=` floor in pyproject.toml raised to match.
UV_FLAG_MINIMUMS = {"--preview-features": "0.8.20"}


def test_declared_uv_floor_knows_every_flag_we_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from packaging.version import Version

    from pipeline.env import locking, venv

    argvs: dict[str, list[str]] = {}

    def record(argv: list[str], what: str, **_: object) -> str:
        argvs[what] = list(argv)
        return ""

    # Every uv command line pipeline makes, as it makes them, without running uv.
    for module in (venv, locking):
        monkeypatch.setattr(module, "uv_binary", lambda: "/fake/uv")
        monkeypatch.setattr(module, "run_tool", record)
    python = tmp_path / "venv" / "bin" / "python"
    lock = tmp_path / "pylock.env.toml"

    def quiet(_: str) -> None:
        pass

    venv.create_venv(tmp_path / "venv", interpreters.current(), quiet, installer="uv")
    venv.pip_install(python, ["alpha"], quiet, installer="uv", what="pip install")
    venv.install_lock(python, lock, quiet, installer="uv")
    locking._compile(("alpha",), sys.executable, tmp_path)

    assert {what: argv[:3] for what, argv in argvs.items()} == {
        "creating the venv with uv": ["/fake/uv", "venv", "--quiet"],
        "pip install": ["/fake/uv", "pip", "install"],
        "installing pylock.env.toml": ["/fake/uv", "pip", "install"],
        "resolving the requirements": ["/fake/uv", "pip", "compile"],
    }, argvs
    install_lock = argvs["installing pylock.env.toml"]
    # Renamed or dropped: update UV_FLAG_MINIMUMS (and maybe the floor) to what is passed now.
    assert "--preview-features" in install_lock, install_lock
    flag = install_lock.index("--preview-features")
    assert install_lock[flag + 1] == "pylock", install_lock
    passed = {arg for argv in argvs.values() for arg in argv if arg in UV_FLAG_MINIMUMS}
    needed = max(Version(UV_FLAG_MINIMUMS[arg]) for arg in passed)
    assert Version(_declared_uv_floor()) >= needed, (_declared_uv_floor(), needed)
