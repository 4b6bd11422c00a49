"""The examples run as the README says: the quick start in its own locked env, or locally; and
its manifest is a valid project.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.load.project import load_project

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def _copy_examples(tmp_path: Path) -> Path:
    """The layout README's "going back in time" section makes: examples/quickstart beside
    envs/, with the files git has (tracked or not ignored), never the outputs, lock or
    .pipeline/ a quick start run in this checkout left behind."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z", "examples/quickstart", "envs"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        if (REPO / rel).is_file():  # a tracked file deleted in the working tree is skipped
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, tmp_path / rel)
    return tmp_path / "examples" / "quickstart"


def _pipeline(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "-C", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


@pytest.mark.slow
def test_quickstart_runs_in_the_current_environment(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    root = _copy_examples(tmp_path)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    done = _pipeline(root, "repro", "--env-manager", "local", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    scores = json.loads((root / "metrics" / "scores.json").read_text())
    assert 0.8 <= scores["accuracy"] <= 1.0
    assert not (tmp_path / "xdg" / "pipeline" / "envs").exists()  # no env was built
    again = _pipeline(root, "status", "--env-manager", "local", env=env)
    assert "up to date" in again.stdout


def _reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_quickstart_env_is_built_from_its_lock(tmp_path: Path) -> None:
    """A new machine (empty env cache) gets exactly the versions in envs/pylock.sklearn.toml."""
    uv_cache = Path(os.environ.get("UV_CACHE_DIR") or Path.home() / ".cache" / "uv")
    if not _reachable("files.pythonhosted.org") and not uv_cache.is_dir():
        pytest.skip("PyPI's file host is unreachable and uv has no cache to install from")
    root = _copy_examples(tmp_path)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "UV_CACHE_DIR": str(uv_cache)}
    built = _pipeline(root, "env", "build", env=env)
    assert built.returncode == 0, built.stdout + built.stderr
    shown = _pipeline(root, "env", "show", "train", "--json", env=env)
    packages = {name.lower(): version for name, version in json.loads(shown.stdout)["packages"]}
    lock = tomllib.loads((tmp_path / "envs" / "pylock.sklearn.toml").read_text())
    wanted = {
        p["name"].lower(): p["version"]
        for p in lock["packages"]
        if python_matches(p.get("marker", ""))
    }
    assert packages == wanted
    done = _pipeline(root, "repro", "prepare", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "data" / "prepared" / "train.csv").is_file()


def python_matches(marker: str) -> bool:
    """Whether a universal lock's package applies to the Python running the tests."""
    from packaging.markers import Marker

    return not marker or Marker(marker).evaluate()


def test_mlproject_example_is_a_valid_manifest(tmp_path: Path) -> None:
    """Every field MLproject.example documents is accepted (given the files it names)."""
    from pipeline.load.project import load_project

    shutil.copy(REPO / "MLproject.example", tmp_path / "MLproject")
    files = {
        "params.yaml": "prepare: {seed: 42, test_size: 0.25, split: random}\n"
        "train: {lr: 0.01, epochs: 10, layers: [64, 32], augment: true}\nmodels: [cnn, xgb]\n",
        "config/paths.yaml": "a: 1\n",
        "config/more.json": '{"k1": 1, "k2": 2}\n',
        "config/train.json": '{"opt": {"momentum": 0.9}}\n',
        "config/extra.toml": "x = 1\n",
        "reports/local.yaml": "title: t\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    project = load_project(tmp_path)
    assert project.stages["report"].env == "viz"
    assert project.stages["baseline"].env is None  # env: system
    assert project.stages["prepare"].env == "default"
    assert project.parameters["train.lr"]["type"] == "float"
    assert "main" in project.entry_points


# -- the quick start's manifest ----------------------------------------------------------------


def test_quickstart_example_is_a_valid_project() -> None:
    project = load_project(Path(__file__).parent.parent / "examples" / "quickstart")
    assert project.name == "wine-quality"
    assert list(project.stages) == ["prepare", "train", "evaluate"]
    train = project.stages["train"]
    assert train.deps == ("data/prepared", "src/train.py")
    assert train.out_paths == ("models/model",)
    assert train.params == {
        "params.yaml": {"train.max_depth": 5, "train.n_estimators": 100, "train.seed": 0}
    }
    assert [(o.path, o.kind) for o in project.stages["evaluate"].outs] == [
        ("metrics/scores.json", "metrics")
    ]
    [wine] = project.declared.artifacts  # what `pipeline serve wine` and the registry name
    assert (wine.name, wine.path, wine.type) == ("wine", "models/model", "model")


# -- examples/dvc-get-started: a plain dvc.yaml, run in the env README's Install block makes ------

DVC_EXAMPLE = REPO / "examples" / "dvc-get-started"
# import name → the distribution providing it (numpy comes with scikit-learn)
EXAMPLE_IMPORTS = {"numpy": "scikit-learn", "sklearn": "scikit-learn"}


def _install_lines() -> list[str]:
    """The `pip install` lines of README's Install section."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Install", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("pip install")]


def _third_party_imports() -> set[str]:
    """Top-level modules the example's scripts import that the standard library lacks."""
    import ast

    names: set[str] = set()
    for script in (DVC_EXAMPLE / "src").glob("*.py"):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names)


def test_readme_install_provides_what_dvc_get_started_imports() -> None:
    """Its dvc.yaml cannot declare an env (DVC rejects unknown keys): README's Install block
    must install, through an extra, every package its scripts import."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    installed = {
        requirement.split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for line in _install_lines()
        for extra, requirements in extras.items()
        if f".[{extra}]" in line
        for requirement in requirements
    }
    imports = _third_party_imports()
    assert imports == set(EXAMPLE_IMPORTS), "new import: map it to its package above"
    assert {EXAMPLE_IMPORTS[name] for name in imports} <= installed


@pytest.mark.slow
def test_dvc_get_started_runs_in_the_current_environment(tmp_path: Path) -> None:
    """After README's install (the `examples` extra), `pipeline repro` runs all four stages."""
    pytest.importorskip("sklearn")
    root = tmp_path / "dvc-get-started"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z", "."],
        cwd=DVC_EXAMPLE,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):  # what git has, never a local run's outputs
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(DVC_EXAMPLE / rel, root / rel)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    done = _pipeline(root, "repro", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = json.loads((root / "eval" / "metrics.json").read_text())
    assert 0.8 <= metrics["accuracy"] <= 1.0
    again = _pipeline(root, "status", env=env)
    assert "up to date" in again.stdout
