"""Stage code imports `pipeline.models` in its own env through a PYTHONPATH directory that holds
only the `pipeline` package: the tool's dependencies (pydantic, ...) stay out of the stage.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import pytest

import pipeline
from pipeline.env.stagepath import stage_pythonpath
from tests.conftest import Project
from tests.env.support import ok, repro_ok, write_yaml

PROBE_PY = """\
import importlib.util, json, os, sys
import pipeline.models
print(json.dumps({
    "models": pipeline.models.__file__,
    "pydantic": importlib.util.find_spec("pydantic") is not None,
    "prefix": sys.prefix,
    "environ": {k: os.environ.get(k) for k in (
        "PYTHONPATH", "PIPELINE_ENV_KIND", "PIPELINE_ENV_LOCK", "PIPELINE_STAGE"
    )},
}))
"""


def probe_manifest(python: str, **extra: object) -> dict[str, object]:
    return {
        **extra,
        "stages": {
            "probe": {
                "cmd": f"{python} probe.py > probe.json",
                "deps": ["probe.py"],
                "outs": ["probe.json"],
            },
        },
    }


@pytest.mark.usefixtures("xdg_cache_home")
def test_the_directory_holds_only_the_pipeline_package() -> None:
    path = stage_pythonpath()
    assert [p.name for p in path.iterdir()] == ["pipeline"]
    link = path / "pipeline"
    assert link.is_symlink()
    assert link.resolve() == Path(pipeline.__file__).resolve().parent
    assert path.is_relative_to(Path(os.environ["XDG_CACHE_HOME"]) / "pipeline" / "stagepath")


@pytest.mark.usefixtures("xdg_cache_home")
def test_threads_racing_to_create_it_agree() -> None:
    found: list[Path] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        found.append(stage_pythonpath())

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1
    assert [p.name for p in found[0].iterdir()] == ["pipeline"]  # no temp link left


@pytest.mark.usefixtures("xdg_cache_home")
def test_a_local_stage_keeps_the_users_pythonpath_first(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/users/own/path")
    project.write("probe.py", PROBE_PY)
    project.manifest(probe_manifest(sys.executable))
    repro_ok(project)
    shown = json.loads(project.read("probe.json"))
    assert shown["environ"]["PYTHONPATH"] == os.pathsep.join(
        ["/users/own/path", str(stage_pythonpath())]
    )
    assert shown["environ"]["PIPELINE_STAGE"] == "probe"


@pytest.mark.slow
@pytest.mark.usefixtures("cache")
def test_a_stage_in_a_built_venv_imports_pipeline_models_but_not_pydantic(
    project: Project,
) -> None:
    write_yaml(project, "python_env.yaml", {"dependencies": ["alpha"]})
    project.write("probe.py", PROBE_PY)
    project.manifest(probe_manifest("python", python_env="python_env.yaml"))
    repro_ok(project)
    shown = json.loads(project.read("probe.json"))
    assert shown["prefix"] != sys.prefix  # the stage ran in its own env
    assert shown["pydantic"] is False  # the tool's dependencies did not leak in
    models = Path(shown["models"])
    assert models.is_relative_to(stage_pythonpath())  # through the symlink, from the tool
    assert models.resolve().is_relative_to(Path(pipeline.__file__).resolve().parent)
    assert shown["environ"]["PYTHONPATH"] == str(stage_pythonpath())
    assert shown["environ"]["PIPELINE_ENV_KIND"] == "python_env"
    assert shown["environ"]["PIPELINE_ENV_LOCK"] is None  # built from its spec: no lock

    ok(project.cli("env", "lock"))
    ok(project.cli("repro", "--force"))
    locked = json.loads(project.read("probe.json"))["environ"]
    assert locked["PIPELINE_ENV_LOCK"] == str(project.root / "pylock.python_env.toml")
    assert locked["PIPELINE_ENV_KIND"] == "python_env"
