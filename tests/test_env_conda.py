"""Stage environments built as conda envs with py-rattler (DESIGN §6), from a local channel.

The channel is built here (`envkit.make_channel`): `hello` (bin/hello prints "hello from
conda"), `greet` (noarch python: module `greet`, console script `greet`) and a test-only
`python` that turns the prefix into a venv of the host interpreter. A `pip:` section installs
wheels from a local find-links dir. No conda installation and no network are involved.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import envkit
import pytest
import yaml
from conftest import Project, record
from test_env_common import (
    SHOW_PY,
    EnvCache,
    builds_in,
    isolate,
    leaky_parent_env,
    ok,
    output,
    repro_ok,
    write_yaml,
)

from pipeline import api

rattler = pytest.importorskip("rattler")

PROBE = (
    "hello > out/{name}.txt && greet >> out/{name}.txt && "
    "python show.py greet {modules} > out/{name}.json && " + "{record}"
)


# Every test here gets its own env cache and offline pip settings (conftest's `cache`).
pytestmark = pytest.mark.usefixtures("cache")


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    """A fresh channel per test (milliseconds): tests may add packages to it."""
    return envkit.make_channel(tmp_path, with_python=True)


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


# -- 3. a conda env from a local channel --------------------------------------------------------


def test_conda_env_runs_binaries_python_packages_variables_and_pip_section(
    project: Project, cache: EnvCache, channel: Path, tmp_path: Path
) -> None:
    assert channel == project.root.parent.parent / "channel"
    # A local channel given as a path relative to the spec (as a project would commit it).
    relative = "../../channel"
    conda_project(project, relative, pip=["alpha"], variables={"MY_VAR": "from-environment-yml"})
    parent = leaky_parent_env(tmp_path)

    done = ok(project.cli("repro", env=parent))

    assert builds_in(output(done), "default") == 1
    lines, info = probe(project)
    assert lines == ["hello from conda", "hi"]  # bin/hello, then the greet entry point
    assert info["modules"]["greet"].endswith("greet/__init__.py")
    assert info["modules"]["alpha"] == "1.0"  # the pip: section, from a local wheel
    assert cache.contains(info["prefix"])
    environ = info["environ"]
    assert environ["CONDA_PREFIX"] is not None
    assert Path(environ["CONDA_PREFIX"]).resolve() == Path(info["prefix"]).resolve()
    assert environ["MY_VAR"] == "from-environment-yml"
    assert environ["VIRTUAL_ENV"] is None
    assert environ["PYTHONPATH"] is None
    assert not info["leaked_importable"]

    shown = json.loads(ok(project.cli("env", "show", "a", "--json")).stdout)
    assert shown["kind"] == "conda_env"
    assert shown["built"] is True
    assert {row[0] for row in shown["packages"]} == {"hello", "greet", "python"}
    assert ["alpha", "1.0"] in shown["pip_packages"]
    meta = cache.meta(project.lock()["stages"]["a"]["env"])
    assert meta["builder"] == "rattler"
    assert meta["variables"] == {"MY_VAR": "from-environment-yml"}


def test_unsolvable_conda_spec_exits_3_with_the_solver_message(
    project: Project, cache: EnvCache, channel: Path
) -> None:
    project.write("show.py", SHOW_PY)
    write_yaml(
        project,
        "environment.yml",
        {"channels": [channel.as_uri()], "dependencies": ["hello >=99", "python"]},
    )
    project.manifest({"conda_env": "environment.yml", "stages": {"a": conda_stage("a")}})

    done = project.cli("repro")

    assert done.returncode == 3, output(done)
    assert "Traceback" not in output(done)
    assert "hello >=99" in done.stderr
    assert "environment.yml" in done.stderr
    assert cache.published() == {}
    assert cache.store_dirs() == []
    assert project.executions() == []


def test_broken_pip_section_of_a_conda_env_exits_3_and_leaves_no_env(
    project: Project, cache: EnvCache, channel: Path
) -> None:
    conda_project(project, channel, pip=["no-such-wheel-xyz"])
    done = project.cli("repro")
    assert done.returncode == 3, output(done)
    assert "no-such-wheel-xyz" in done.stderr
    assert cache.published() == {}
    assert cache.store_dirs() == []


# -- 4. conda-lock round trip -------------------------------------------------------------------


@pytest.mark.slow
def test_conda_lock_round_trip_in_a_fresh_cache(
    make_project: Callable[..., Project],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    wheels: Path,
    channel: Path,
) -> None:
    project = conda_project(make_project("locked"), channel, pip=["alpha"])
    repro_ok(project)

    done = ok(project.cli("env", "lock"))
    lock = project.root / "environment.conda-lock.yml"
    assert "environment.conda-lock.yml" in output(done)
    text = lock.read_text()
    assert any(line.startswith("# pipeline-spec-digest: ") for line in text.splitlines()[:3])
    data = yaml.safe_load(text)
    assert data["version"] == 1
    platform = envkit.current_subdir()
    assert platform in data["metadata"]["platforms"]
    managers = {(p["name"], p["manager"]) for p in data["package"]}
    assert managers == {
        ("hello", "conda"),
        ("greet", "conda"),
        ("python", "conda"),
        ("alpha", "pip"),
        ("beta", "pip"),
    }
    # rattler reads it as a conda-lock file, with this platform's conda packages.
    environment = rattler.LockFile.from_path(lock).default_environment()
    assert environment is not None
    current = next(p for p in environment.platforms() if p.name == platform)
    locked = environment.conda_repodata_records_for_platform(current) or []
    assert sorted(r.name.normalized for r in locked) == ["greet", "hello", "python"]

    # A newer hello in the channel; a fresh cache builds from the lock: still hello 1.0.
    envkit.build_conda_package(
        channel,
        "hello",
        "2.0",
        files={"bin/hello": '#!/bin/sh\necho "hello 2"\n'},
        executables=["bin/hello"],
    )
    envkit.index_channel(channel)
    fresh = isolate(monkeypatch, tmp_path, wheels, "xdg-fresh")
    assert "env default changed" in ok(project.cli("status")).stdout
    done = ok(project.cli("repro"))
    assert builds_in(output(done), "default") == 1
    assert "environment.conda-lock.yml" in output(done)
    lines, info = probe(project)
    assert lines == ["hello from conda", "hi"]
    assert info["modules"]["alpha"] == "1.0"
    assert fresh.contains(info["prefix"])
    repro_ok(project)
    assert project.executions() == ["a", "a"]

    # Another project uses the lock file directly as its env.
    direct = make_project("direct")
    direct.write("show.py", SHOW_PY)
    direct.write("env.conda-lock.yml", text)
    direct.manifest({"conda_env": "env.conda-lock.yml", "stages": {"a": conda_stage("a", "alpha")}})
    isolate(monkeypatch, tmp_path, wheels, "xdg-direct")
    listed = json.loads(ok(direct.cli("env", "list", "--json")).stdout)
    assert listed[0]["kind"] == "conda_lock"
    repro_ok(direct)
    lines, info = probe(direct)
    assert lines == ["hello from conda", "hi"]
    assert info["modules"]["alpha"] == "1.0"

    # Control: unlocked, the same spec solves to the newer hello.
    unlocked = conda_project(make_project("unlocked"), channel)
    isolate(monkeypatch, tmp_path, wheels, "xdg-unlocked")
    repro_ok(unlocked)
    assert probe(unlocked)[0][0] == "hello 2"


def test_conda_spec_edited_after_its_lock_warns(project: Project, channel: Path) -> None:
    conda_project(project, channel)
    api.env_lock(project.root)
    assert "changed after" not in ok(project.cli("status")).stderr

    spec = environment_yml(channel, variables={"MY_VAR": "x"})
    write_yaml(project, "environment.yml", spec)
    status = ok(project.cli("status"))
    assert "changed after" in status.stderr
    assert "env lock" in status.stderr
    assert "environment.yml" in status.stderr

    api.env_lock(project.root)
    assert "changed after" not in ok(project.cli("status")).stderr


def test_env_lock_of_a_conda_lock_env_is_a_usage_error(project: Project, channel: Path) -> None:
    conda_project(project, channel)
    api.env_lock(project.root)
    project.write(
        "MLproject",
        yaml.safe_dump(
            {"conda_env": "environment.conda-lock.yml", "stages": {"a": conda_stage("a")}}
        ),
    )
    done = project.cli("env", "lock", "default")
    assert done.returncode == 2, output(done)
    assert "conda-lock" in done.stderr
    assert "Traceback" not in output(done)


def test_conda_env_in_a_named_environment_next_to_a_venv_default(
    project: Project, cache: EnvCache, channel: Path
) -> None:
    project.write("show.py", SHOW_PY)
    write_yaml(project, "envs/conda.yml", environment_yml(channel))
    write_yaml(project, "python_env.yaml", {"dependencies": ["alpha"]})
    project.manifest(
        {
            "python_env": "python_env.yaml",
            "environments": {"tools": {"conda_env": "envs/conda.yml"}},
            "stages": {
                "a": conda_stage("a", env="tools"),
                "b": {
                    "cmd": "python show.py alpha > out/b.json",
                    "deps": ["show.py"],
                    "outs": ["out/b.json"],
                },
            },
        }
    )
    ok(project.cli("repro", "-j", "2"))
    lines, info = probe(project)
    assert lines == ["hello from conda", "hi"]
    other = json.loads(project.read("out/b.json"))
    assert other["modules"] == {"alpha": "1.0"}
    assert other["environ"]["CONDA_PREFIX"] is None
    assert other["environ"]["VIRTUAL_ENV"] is not None
    assert info["prefix"] != other["prefix"]
    assert len(cache.published()) == 2
    assert sys.prefix not in (info["prefix"], other["prefix"])


def test_activate_d_scripts_of_conda_packages_run_before_the_stage(
    project: Project, channel: Path
) -> None:
    envkit.build_conda_package(
        channel,
        "activator",
        files={"etc/conda/activate.d/activator.sh": 'export OTHER_VAR="on:$CONDA_PREFIX"\n'},
    )
    envkit.index_channel(channel)
    project.write("show.py", SHOW_PY)
    spec = environment_yml(channel)
    spec["dependencies"].append("activator")
    write_yaml(project, "environment.yml", spec)
    project.manifest({"conda_env": "environment.yml", "stages": {"a": conda_stage("a")}})

    repro_ok(project)

    _, info = probe(project)
    assert info["environ"]["OTHER_VAR"] == f"on:{info['environ']['CONDA_PREFIX']}"
