"""`pipeline env lock`: pylock and conda-lock files that pin an env, building from them in a
fresh cache, and the warning when a spec changes after its lock.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import api
from pipeline.env.manage import Pruned
from tests.conftest import Project
from tests.env import envkit
from tests.env.support import (
    SHOW_PY,
    builds_in,
    conda_project,
    conda_stage,
    copy_tree,
    environment_yml,
    isolate,
    ok,
    output,
    probe,
    repro_ok,
    shown,
    venv_project,
    write_yaml,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

try:
    import rattler
except ImportError:  # the conda tests skip through the `channel` fixture
    rattler = None

# Every test here gets its own env cache and offline pip settings (conftest's `cache`).
pytestmark = pytest.mark.usefixtures("cache")


def env_json(project: Project, *args: str) -> object:
    return json.loads(ok(project.cli("env", *args, "--json")).stdout)


# -- 4. lock files: pins, rebuild from the lock, stale warning ----------------------------------


def test_pip_lock_pins_versions_in_a_fresh_cache(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wheels: Path
) -> None:
    links = copy_tree(wheels, tmp_path / "links")  # this test adds a newer wheel
    isolate(monkeypatch, tmp_path, links)
    venv_project(project, deps=("alpha",))
    repro_ok(project)

    done = ok(project.cli("env", "lock"))
    lock = project.root / "pylock.python_env.toml"
    assert "pylock.python_env.toml" in output(done)
    text = lock.read_text()
    assert any(line.startswith("# pipeline-spec-digest: ") for line in text.splitlines()[:3])
    pinned = {p["name"]: p["version"] for p in tomllib.loads(text)["packages"]}
    assert pinned == {"alpha": "1.0", "beta": "1.0"}
    assert "up to date" in ok(project.cli("status")).stdout  # the versions it ran with

    # A newer alpha appears, and a colleague starts with an empty cache.
    envkit.build_wheel(links, "alpha", "2.0", requires=["beta>=1"])
    fresh = isolate(monkeypatch, tmp_path, links, "xdg-fresh")
    done = ok(project.cli("repro", "--force"))
    assert builds_in(output(done), "default") == 1
    assert "pylock.python_env.toml" in output(done)  # the build says it uses the lock
    info = shown(project, "a")
    assert info["modules"]["alpha"] == "1.0"
    assert fresh.contains(info["prefix"])
    shown_env = env_json(project, "show", "a")
    assert isinstance(shown_env, dict)
    assert ["alpha", "1.0"] in shown_env["packages"]
    assert shown_env["lock"] == "locked"
    repro_ok(project)
    assert project.executions() == ["a", "a"]  # the first run, the forced one; then up to date

    # Control: without the lock the same spec, resolved in an empty cache, gets the newer
    # wheel (the run-cache would restore the first run's output, made under the same digest).
    lock.unlink()
    isolate(monkeypatch, tmp_path, links, "xdg-control")
    ok(project.cli("repro", "--force", "--no-run-cache"))
    assert shown(project, "a")["modules"]["alpha"] == "2.0"


def test_spec_edited_after_its_lock_warns_until_locked_again(project: Project) -> None:
    venv_project(project, deps=("alpha",))
    api.env_lock(project.root)  # in-process where the output does not matter: faster
    assert "changed after" not in ok(project.cli("status")).stderr

    write_yaml(project, "python_env.yaml", {"dependencies": ["alpha", "gamma"]})
    status = ok(project.cli("status"))
    assert "changed after" in status.stderr
    assert "env lock" in status.stderr
    assert "python_env.yaml" in status.stderr
    assert [e.lock for e in api.env_list(project.root)] == ["stale"]
    project.repro()  # still built from the old lock: no gamma
    assert "gamma" not in _package_names(project, "a")

    ok(project.cli("env", "lock"))
    assert "changed after" not in ok(project.cli("status")).stderr
    project.repro()
    assert "gamma" in _package_names(project, "a")


def test_env_lock_that_changes_no_version_reruns_nothing(project: Project) -> None:
    venv_project(project, deps=("alpha",))
    repro_ok(project)
    project.clear_executions()
    lock = project.root / "pylock.python_env.toml"

    ok(project.cli("env", "lock"))  # pins the versions the env was built with
    first = lock.read_bytes()
    assert "Everything is up to date" in ok(project.cli("status")).stdout
    ok(project.cli("env", "lock"))
    assert lock.read_bytes() == first
    # A spec edit that changes no version (a comment), locked again: the lock's header
    # changes, its packages do not, and nothing reruns.
    spec = project.root / "python_env.yaml"
    spec.write_text("# alpha brings beta along\n" + spec.read_text())
    ok(project.cli("env", "lock"))
    assert lock.read_bytes() != first
    status = ok(project.cli("status"))
    assert "Everything is up to date" in status.stdout, status.stdout
    assert "changed after" not in status.stderr
    ok(project.cli("repro"))
    assert project.executions() == []

    # A lock whose versions differ from the env's is a new env: its stages rerun.
    text = lock.read_text().replace('version = "1.0"', 'version = "1.1"', 1)
    lock.write_text(text)
    assert "env default changed" in ok(project.cli("status")).stdout


def _package_names(project: Project, stage: str) -> list[str]:
    report = api.env_show(project.root, stage)
    assert report is not None
    assert report.built is not None
    return [row[0] for row in report.built.packages]


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
    assert "up to date" in ok(project.cli("status")).stdout  # the lock pins what it ran with
    done = ok(project.cli("repro", "--force"))
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


# -- a lock belongs to its spec; a prune leaves a lock being made alone ------------------------


def test_a_lock_does_not_depend_on_the_env_name(project: Project) -> None:
    write_yaml(project, "envs/shared.yaml", {"dependencies": ["alpha"]})
    project.manifest(
        {
            "environments": {
                "one": {"python_env": "envs/shared.yaml"},
                "two": {"python_env": "envs/shared.yaml"},
            },
            "stages": {"a": {"cmd": "true", "env": "one"}, "b": {"cmd": "true", "env": "two"}},
        }
    )
    (lock,) = api.env_lock(project.root, ("one",))
    first = lock.read_bytes()
    api.env_lock(project.root, ("two",))
    assert lock.read_bytes() == first


def test_prune_during_a_conda_lock_leaves_the_lock_alone(
    project: Project, channel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.env import conda

    write_yaml(
        project,
        "environment.yml",
        {"channels": [channel.as_uri()], "dependencies": ["hello", "python", {"pip": ["alpha"]}]},
    )
    project.manifest({"conda_env": "environment.yml", "stages": {"a": {"cmd": "true"}}})
    real_install = conda.install
    pruned: list[tuple[Path, Pruned, bool]] = []

    def install_then_prune(records: Any, prefix: Path, cache: Path) -> None:
        real_install(records, prefix, cache)
        # Another terminal, at the wrong moment: the lock's scratch prefix is fully installed.
        done = api.env_prune(project.root, days=30)
        pruned.append((prefix, done, (prefix / "bin" / "python").exists()))

    monkeypatch.setattr(conda, "install", install_then_prune)
    (lock,) = api.env_lock(project.root)

    assert len(pruned) == 1, pruned  # the prune ran, while the lock's prefix existed
    ((prefix, done, python_kept),) = pruned
    assert done.removed == (), done
    assert python_kept, f"the prune deleted the lock's scratch prefix {prefix}"
    assert "manager: pip" in lock.read_text()
