"""Finding a Python for a request like `"3.12"`: the running interpreter first, other installed
ones next, never a download; stages run with the version they ask for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.env import interpreters, uvbin
from pipeline.errors import EnvironmentSetupError, PipelineError
from tests.conftest import Project
from tests.env.support import (
    SHOW_PY,
    EnvCache,
    other_python,
    repro_ok,
    show_stage,
    shown,
    write_yaml,
)

# Tests marked `usefixtures("cache")` get their own env cache and offline pip settings.

# --- interpreters -------------------------------------------------------------------------


def test_no_request_means_the_running_interpreter() -> None:
    found = interpreters.find_python(None)
    assert found.path == sys.executable
    assert found.version.startswith(f"{sys.version_info[0]}.{sys.version_info[1]}.")


def test_a_matching_request_finds_the_running_version() -> None:
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert interpreters.find_python(minor).minor == minor


def test_unavailable_version_lists_what_was_found() -> None:
    with pytest.raises(EnvironmentSetupError) as info:
        interpreters.find_python("3.99")
    assert "no Python 3.99" in info.value.message
    current = f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"
    assert current in (info.value.hint or "")


def test_a_version_request_must_look_like_one() -> None:
    with pytest.raises(EnvironmentSetupError, match="not a version"):
        interpreters.find_python("latest")


@pytest.fixture
def fresh_interpreter_caches() -> Iterator[None]:
    """Interpreter lookups are memoised per process; a test that changes PATH needs them cold."""

    def clear() -> None:
        for fn in (interpreters._pyenv, interpreters._on_path, interpreters._probe):
            fn.cache_clear()
        uvbin.uv_binary.cache_clear()

    clear()
    yield
    clear()


@pytest.mark.usefixtures("cache")
def test_python_2_is_refused_when_resolving() -> None:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if not any(root.glob("2.7.*")):
        pytest.skip("no Python 2.7 under pyenv on this machine")
    with pytest.raises(PipelineError) as caught:
        interpreters.find_python("2.7")
    # Refused, although installed: not "no Python 2.7 is installed".
    assert "only Python 3 environments" in caught.value.message, caught.value.message


@pytest.mark.usefixtures("cache")
def test_status_runs_no_subprocess_for_an_interpreter_on_path(
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_interpreter_caches: None,
) -> None:
    other = other_python()
    if other is None:
        pytest.skip("needs a second CPython 3.9+ (another X.Y than the running one)")
    version, exe = other
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / f"python{version}").symlink_to(os.path.realpath(exe))
    empty = tmp_path / "no-pyenv"
    (empty / "versions").mkdir(parents=True)
    monkeypatch.setenv("PYENV_ROOT", str(empty))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    write_yaml(project, "python_env.yaml", {"python": version, "dependencies": ["alpha"]})
    project.manifest(
        {
            "python_env": "python_env.yaml",
            "stages": {"a": {"cmd": "echo a > a.txt", "outs": ["a.txt"]}},
        }
    )
    repro_ok(project)
    interpreters._on_path.cache_clear()  # a second `pipeline status` is a new process
    interpreters._probe.cache_clear()
    uvbin.uv_binary.cache_clear()

    calls: list[Any] = []
    real_run, real_popen = subprocess.run, subprocess.Popen

    def run(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else kwargs.get("args"))
        return real_run(*args, **kwargs)

    class Popen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append(args[0] if args else kwargs.get("args"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(subprocess, "Popen", Popen)
    plan = project.plan()
    assert plan.stale == []
    # the one call listing the manifests (load/discover.py) is not about interpreters
    assert [c for c in calls if list(c[:2]) != ["git", "ls-files"]] == []


# -- 2. another Python version ------------------------------------------------------------------


def test_stage_runs_with_the_requested_python_version(project: Project, cache: EnvCache) -> None:
    other = other_python()
    if other is None:
        pytest.skip(
            "needs an installed CPython 3.9+ with another X.Y than the running "
            f"{sys.version_info[0]}.{sys.version_info[1]} (pyenv versions or python3.X on PATH)"
        )
    version, _ = other
    want = [int(part) for part in version.split(".")]
    project.write("show.py", SHOW_PY)
    write_yaml(project, "envs/other.yaml", {"python": version, "dependencies": ["alpha"]})
    project.write("envs/plain.txt", "beta\n")
    project.manifest(
        {
            "environments": {
                "other": {"python_env": "envs/other.yaml"},
                "plain": {"requirements": "envs/plain.txt", "python": version},
            },
            "stages": {
                "a": show_stage("a", "alpha", env="other"),
                "b": show_stage("b", "beta", env="plain"),
                "c": show_stage("c"),
            },
        }
    )

    repro_ok(project)

    for stage, module in (("a", "alpha"), ("b", "beta")):
        info = shown(project, stage)
        assert info["version"] == want, stage
        assert info["modules"][module] == "1.0"
        assert cache.contains(info["prefix"])
        digest = project.lock()["stages"][stage]["env"]
        assert cache.meta(digest)["python"]["version"].startswith(version + ".")
    system = shown(project, "c")  # no env: the interpreter on PATH, not from the env cache
    assert not cache.contains(system["prefix"])
