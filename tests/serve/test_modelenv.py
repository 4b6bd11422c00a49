"""The served model's env (`pipeline.serve.modelenv`): the stage env's digest when the package
carries its lock, so nothing is re-resolved or rebuilt; else its exact requirements; and one
real venv built from a package's requirements and served."""

from __future__ import annotations

import json
import os
import platform
import shutil
from importlib import metadata
from pathlib import Path

import pytest

from pipeline.env.resolve import resolve_env
from pipeline.load.environments import EnvDecl
from pipeline.load.envkind import EnvKind
from pipeline.serve.modelenv import PackageEnv, resolve_package_env
from tests.serve.support import Server, children, wine_package

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "envs" / "pylock.sklearn.toml"


def stage_project(root: Path, kind: EnvKind) -> Path:
    """A stage env spec of `kind` with its lock next to it, as `pipeline env lock` leaves it."""
    root.mkdir()
    (root / "requirements.txt").write_text("scikit-learn\n")
    spec = "requirements.txt"
    if kind is EnvKind.PYTHON_ENV:
        spec = "python_env.yaml"
        minor = ".".join(platform.python_version().split(".")[:2])
        (root / spec).write_text(f'python: "{minor}"\ndependencies:\n  - -r requirements.txt\n')
    lock = root / (
        "pylock.python_env.toml" if kind is EnvKind.PYTHON_ENV else "pylock.requirements.toml"
    )
    shutil.copyfile(LOCK, lock)
    return lock


def saved_package(
    tmp_path: Path, lock: Path, kind: EnvKind, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A package saved the way a stage running in that env saves it."""
    monkeypatch.setenv("PIPELINE_ENV_LOCK", str(lock))
    monkeypatch.setenv("PIPELINE_ENV_KIND", str(kind))
    package, _ = wine_package(tmp_path / "model")
    return package


@pytest.mark.parametrize("kind", [EnvKind.PYTHON_ENV, EnvKind.REQUIREMENTS])
def test_a_packaged_lock_names_the_stage_env(
    tmp_path: Path, kind: EnvKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = stage_project(tmp_path / "project", kind)
    spec = "python_env.yaml" if kind is EnvKind.PYTHON_ENV else "requirements.txt"
    stage_env = resolve_env(tmp_path / "project", EnvDecl("train", kind, spec))
    assert stage_env.lock == lock
    package = saved_package(tmp_path, lock, kind, monkeypatch)
    mlmodel = json.loads((package / "MLmodel").read_text())
    own = mlmodel["pipeline"]
    assert (package / own["lock"]).read_bytes() == lock.read_bytes()
    served = resolve_package_env(
        PackageEnv(package, own["lock"], platform.python_version(), own["env_kind"])
    )
    assert served.digest == stage_env.digest
    assert served.lock == package / own["lock"]


def test_without_a_lock_the_requirements_name_the_env(tmp_path: Path) -> None:
    package, _ = wine_package(tmp_path / "model")
    found = resolve_package_env(PackageEnv(package, None, platform.python_version(), None))
    assert found.lock is None
    assert found.kind is EnvKind.REQUIREMENTS
    assert found.spec == package / "requirements.txt"
    again = resolve_package_env(PackageEnv(package, None, platform.python_version(), None))
    assert again.digest == found.digest  # nothing random: the same env next time


def test_a_package_without_env_files_says_what_to_do(tmp_path: Path) -> None:
    from pipeline.errors import EnvironmentSetupError

    with pytest.raises(EnvironmentSetupError, match=r"no requirements\.txt") as caught:
        resolve_package_env(PackageEnv(tmp_path, None, None, None))
    assert "--env-manager local" in (caught.value.hint or "")


def _pins(*names: str) -> str:
    return "".join(f"{name}=={metadata.version(name)}\n" for name in names)


@pytest.mark.slow
def test_serving_from_a_venv_built_from_the_requirements(tmp_path: Path) -> None:
    """The model runs in its own venv (numpy, scikit-learn, skops as installed here), built once."""
    uv_cache = Path(os.environ.get("UV_CACHE_DIR") or Path.home() / ".cache" / "uv")
    package, model = wine_package(tmp_path / "model")
    (package / "requirements.txt").write_text(_pins("numpy", "scipy", "scikit-learn", "skops"))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "UV_CACHE_DIR": str(uv_cache)}
    env.pop("VIRTUAL_ENV", None)
    running = Server.start(package, env=env)
    try:
        assert "building env" in running.first_lines
        versions = json.loads(running.get("/interface.json")[1])["versions"]
        assert versions["scikit-learn"] == metadata.version("scikit-learn")
        data = [[13.0, 2.0, 2.4, 19.0, 100.0, 2.5, 2.5, 0.3, 1.7, 5.0, 1.0, 3.0, 1000.0]]
        status, body, _ = running.post({"inputs": data})
        assert status == 200, body
        assert json.loads(body)["predictions"] == model.predict(data).tolist()
        (worker,) = children(running.process.pid)
        python = Path(f"/proc/{worker}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert Path(python).is_relative_to(tmp_path / "xdg")  # the env store's venv
    finally:
        running.stop()
    again = Server.start(package, env=env)  # the second time: the env is reused, not rebuilt
    again.stop()
    assert "building env" not in again.first_lines
