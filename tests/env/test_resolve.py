"""A declared env and the digest that names it: what the digest covers (spec, includes, lock),
which stages rerun when it changes, and `--env-manager local`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.env.resolve import LOCK_MARK, lock_path, resolve_env
from pipeline.load.environments import EnvDecl
from tests.conftest import Project, reasons
from tests.env.support import (
    SHOW_PY,
    EnvCache,
    builds_in,
    ok,
    output,
    show_stage,
    shown,
    venv_project,
    write_yaml,
)

# Tests marked `usefixtures("cache")` get their own env cache and offline pip settings.

# --- digests ------------------------------------------------------------------------------


def _decl(file: str, kind: str = "python_env") -> EnvDecl:
    return EnvDecl("e", kind, file)


def test_digest_ignores_where_the_spec_lives(tmp_path: Path) -> None:
    for project in ("p1", "p2/deeper"):
        (tmp_path / project).mkdir(parents=True)
        (tmp_path / project / "env.yaml").write_text("dependencies: [six]\n")
    one = resolve_env(tmp_path / "p1", _decl("env.yaml"))
    two = resolve_env(tmp_path / "p2" / "deeper", _decl("env.yaml"))
    assert one.digest == two.digest


def test_digest_follows_spec_includes_and_lock(tmp_path: Path) -> None:
    (tmp_path / "env.yaml").write_text("dependencies: [-r reqs.txt]\n")
    (tmp_path / "reqs.txt").write_text("six\n")
    first = resolve_env(tmp_path, _decl("env.yaml"))
    (tmp_path / "reqs.txt").write_text("six==1.16.0\n")
    second = resolve_env(tmp_path, _decl("env.yaml"))
    assert first.digest != second.digest and second.lock is None
    lock = lock_path("python_env", tmp_path / "env.yaml")
    assert lock.name == "pylock.env.toml"
    lock.write_text(f"{LOCK_MARK}{second.spec_digest}\nlock-version = '1.0'\n")
    locked = resolve_env(tmp_path, _decl("env.yaml"))
    assert locked.lock == lock and not locked.lock_stale and locked.digest != second.digest
    (tmp_path / "reqs.txt").write_text("six==1.17.0\n")  # the spec moves on; the lock does not
    stale = resolve_env(tmp_path, _decl("env.yaml"))
    assert stale.lock_stale and stale.digest == locked.digest


def test_lock_names() -> None:
    assert lock_path("requirements", Path("e/requirements.txt")).name == "pylock.requirements.toml"
    assert lock_path("conda_env", Path("e/viz.yaml")).name == "viz.conda-lock.yml"
    assert lock_path("conda_lock", Path("e/x.conda-lock.yml")) == Path("e/x.conda-lock.yml")


# -- 8. a changed requirement reruns exactly the stages using that env -------------------------


@pytest.mark.usefixtures("cache")
def test_changing_a_requirement_reruns_exactly_the_stages_using_that_env(
    project: Project,
) -> None:
    project.write("show.py", SHOW_PY)
    write_yaml(project, "envs/one.yaml", {"dependencies": ["alpha"]})
    project.write("envs/two.txt", "-r base.txt\n")
    project.write("envs/base.txt", "beta\n")
    project.manifest(
        {
            "environments": {
                "one": {"python_env": "envs/one.yaml"},
                "two": {"requirements": "envs/two.txt"},
            },
            "stages": {
                "a": show_stage("a", "alpha", env="one"),
                "b": show_stage("b", "beta", env="one"),
                "c": show_stage("c", "beta", env="two"),
                "d": show_stage("d", env="system"),
                "e": show_stage("e"),
            },
        }
    )
    project.repro()
    assert sorted(project.executions()) == ["a", "b", "c", "d", "e"]
    project.clear_executions()

    write_yaml(project, "envs/one.yaml", {"dependencies": ["alpha", "gamma"]})
    status = json.loads(ok(project.cli("status", "--json")).stdout)
    by_stage = {s["stage"]: s for s in status["stages"]}
    for name in ("a", "b"):
        assert by_stage[name]["action"] == "run"
        assert {"kind": "env changed", "text": "env one changed", "subject": "one"} in by_stage[
            name
        ]["reasons"]
    for name in ("c", "d", "e"):
        assert by_stage[name]["action"] != "run", by_stage[name]
        assert not any(r["kind"] == "env changed" for r in by_stage[name]["reasons"])
    text = ok(project.cli("status")).stdout
    assert text.count("env one changed") == 2
    assert "env two changed" not in text

    project.repro()
    assert sorted(project.executions()) == ["a", "b"]
    assert shown(project, "b")["prefix"] != shown(project, "c")["prefix"]
    project.clear_executions()

    # A file the spec includes (`-r base.txt`) is part of the env too.
    project.write("envs/base.txt", "beta\ngamma\n")
    plan = project.plan()
    assert reasons(plan, "c") == ["env two changed"]
    for name in ("a", "b", "d", "e"):
        assert reasons(plan, name) == [], name
    project.repro()
    assert project.executions() == ["c"]


# -- 9. --env-manager local ---------------------------------------------------------------------


def test_env_manager_local_uses_the_current_interpreter_and_builds_nothing(
    project: Project, cache: EnvCache
) -> None:
    venv_project(project, deps=("alpha",), stages={"a": show_stage("a")})

    done = ok(project.cli("repro", "--env-manager", "local"))

    assert builds_in(output(done)) == 0
    info = shown(project, "a")
    assert not cache.contains(info["prefix"])
    assert info["environ"]["VIRTUAL_ENV"] is None
    assert cache.published() == {}
    assert cache.store_dirs() == []
    assert "env" not in project.lock()["stages"]["a"]
    local = json.loads(ok(project.cli("status", "--env-manager", "local", "--json")).stdout)
    assert local["up_to_date"] is True
    declared = json.loads(ok(project.cli("status", "--json")).stdout)
    assert declared["stages"][0]["reasons"][0]["kind"] == "env changed"
    assert cache.published() == {}  # status never builds


# -- locks ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("cache")
def test_two_specs_with_one_stem_do_not_share_a_lock(tmp_path: Path) -> None:
    (tmp_path / "requirements.cpu.txt").write_text("alpha\n")
    (tmp_path / "requirements.gpu.txt").write_text("gamma\n")
    cpu = EnvDecl("cpu", "requirements", "requirements.cpu.txt")
    gpu = EnvDecl("gpu", "requirements", "requirements.gpu.txt")
    lock = resolve_env(tmp_path, cpu)
    assert lock.lock is None
    from pipeline.env.resolve import lock_path

    lock_path("requirements", lock.spec).write_text("# the cpu env's lock\n")
    assert resolve_env(tmp_path, gpu).lock is None


def test_an_env_that_cannot_resolve_names_the_manifest_line_declaring_it(project: Project) -> None:
    project.write("python_env.yaml", 'python: "3.99"\ndependencies: []\n')
    project.manifest("name: p\n\npython_env: python_env.yaml\nstages:\n  s:\n    cmd: echo hi\n")
    done = project.cli("status")
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("error: MLproject:3:13: env "), done.stderr
