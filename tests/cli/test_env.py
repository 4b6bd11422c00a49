"""`pipeline env list | build | prune | show` as users run them (CLI).

Exit code 2 for usage errors (an unknown stage or env name). Every test has its own env cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from pipeline import api
from tests.conftest import Project
from tests.env.support import (
    SHOW_PY,
    EnvCache,
    builds_in,
    json_of,
    ok,
    output,
    repro_ok,
    show_stage,
    shown,
    write_yaml,
)

# Every test here gets its own env cache and offline pip settings (conftest's `cache`).
pytestmark = pytest.mark.usefixtures("cache")


def two_env_project(project: Project) -> Project:
    """Envs `train` (used by stage a), `spare` (used by nobody); stage s runs on the system."""
    project.write("show.py", SHOW_PY)
    write_yaml(project, "envs/train.yaml", {"dependencies": ["alpha"]})
    project.write("envs/spare.txt", "gamma\n")
    project.manifest(
        {
            "environments": {
                "train": {"python_env": "envs/train.yaml"},
                "spare": {"requirements": "envs/spare.txt"},
            },
            "stages": {
                "a": show_stage("a", "alpha", env="train"),
                "s": show_stage("s", env="system"),
            },
        }
    )
    return project


# -- 11. env list / show / build / prune / --help ----------------------------------------------


def test_env_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "env", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    ok(done)
    for command in ("list", "build", "lock", "prune", "show"):
        assert command in done.stdout


def test_env_list_json_before_and_after_building(project: Project, cache: EnvCache) -> None:
    two_env_project(project)

    before = {e["name"]: e for e in json_of(project.cli("env", "list", "--json"))}

    assert set(before) == {"train", "spare"}  # `system` is no env to list
    train = before["train"]
    assert train["kind"] == "python_env"
    assert train["spec"] == "envs/train.yaml"
    assert train["stages"] == ["a"]
    assert train["lock"] == "none"
    assert train["built"] is False
    assert train["prefix"] is None
    assert train["digest"].startswith("xxh3_128:")
    assert before["spare"]["kind"] == "requirements"
    assert before["spare"]["stages"] == []
    assert before["train"]["digest"] != before["spare"]["digest"]
    assert cache.published() == {}  # listing builds nothing
    ok(project.cli("repro", "--dry"))
    assert cache.published() == {}  # neither does a dry run

    repro_ok(project)
    after = {e["name"]: e for e in json_of(project.cli("env", "list", "--json"))}
    assert after["train"]["built"] is True
    assert cache.contains(after["train"]["prefix"])
    assert after["train"]["digest"] == train["digest"]
    assert after["spare"]["built"] is False


def test_env_show_json_lists_packages_once_built(project: Project, cache: EnvCache) -> None:
    two_env_project(project)

    before = json_of(project.cli("env", "show", "a", "--json"))
    assert before["name"] == "train"
    assert before["built"] is False
    assert "packages" not in before

    repro_ok(project)
    after = json_of(project.cli("env", "show", "a", "--json"))
    assert after["built"] is True
    assert ["alpha", "1.0"] in after["packages"]
    assert ["beta", "1.0"] in after["packages"]
    assert after["python"]["version"]
    assert after["prefix"] == shown(project, "a")["prefix"]

    assert json_of(project.cli("env", "show", "s", "--json")) is None  # system: no env
    text = ok(project.cli("env", "show", "a")).stdout
    assert "alpha" in text


def test_env_list_reports_an_env_that_cannot_be_resolved(project: Project) -> None:
    two_env_project(project)
    write_yaml(project, "envs/train.yaml", {"python": "3.99", "dependencies": ["alpha"]})
    listed = {e["name"]: e for e in json_of(project.cli("env", "list", "--json"))}
    assert "3.99" in listed["train"]["error"]
    assert listed["train"]["built"] is False
    assert "error" not in listed["spare"]
    text = ok(project.cli("env", "list")).stdout
    assert "error:" in text
    assert "3.99" in text


def test_env_show_of_an_unknown_stage_exits_2(project: Project) -> None:
    two_env_project(project)
    done = project.cli("env", "show", "b")
    assert done.returncode == 2, output(done)
    assert "no stage named 'b'" in done.stderr


def test_env_build_builds_used_envs_and_all_with_all(project: Project, cache: EnvCache) -> None:
    two_env_project(project)

    done = ok(project.cli("env", "build"))
    assert builds_in(output(done), "train") == 1
    assert builds_in(output(done), "spare") == 0
    assert len(cache.published()) == 1

    done = ok(project.cli("env", "build", "--all"))
    assert builds_in(output(done)) == 1
    assert builds_in(output(done), "spare") == 1
    assert len(cache.published()) == 2
    assert "env 'train'" in done.stdout
    assert "env 'spare'" in done.stdout

    # A built env is then simply used: repro builds nothing.
    repro = ok(project.cli("repro"))
    assert builds_in(output(repro)) == 0
    assert shown(project, "a")["modules"] == {"alpha": "1.0"}


def test_env_build_force_rebuilds(project: Project, cache: EnvCache) -> None:
    two_env_project(project)
    api.env_build(project.root, ("train",))
    first = cache.published()

    done = ok(project.cli("env", "build", "--force", "train"))

    assert builds_in(output(done), "train") == 1
    second = cache.published()
    assert first.keys() == second.keys()
    assert first != second  # a new build directory
    assert cache.store_dirs() == sorted(second.values())  # the old one is gone


@pytest.mark.parametrize(
    ("name", "expected"),
    [("trian", "did you mean 'train'?"), ("zzz", "declared: train, spare")],
)
def test_env_build_unknown_name_exits_2_with_a_suggestion(
    project: Project, cache: EnvCache, name: str, expected: str
) -> None:
    two_env_project(project)
    done = project.cli("env", "build", name)
    assert done.returncode == 2, output(done)
    assert f"no environment named {name!r}" in done.stderr
    assert expected in done.stderr
    assert "Traceback" not in output(done)
    assert cache.published() == {}


def test_env_prune_removes_unused_envs_and_keeps_the_projects(
    make_project: Callable[..., Project], cache: EnvCache
) -> None:
    mine = make_project("mine")
    mine.write("show.py", SHOW_PY)
    write_yaml(mine, "python_env.yaml", {"dependencies": ["alpha"]})
    mine.manifest({"python_env": "python_env.yaml", "stages": {"a": show_stage("a", "alpha")}})
    other = make_project("other")
    write_yaml(other, "python_env.yaml", {"dependencies": ["gamma"]})
    other.manifest({"python_env": "python_env.yaml", "stages": {"b": {"cmd": "true"}}})
    (foreign_env,) = api.env_build(other.root)  # in-process: faster; the CLI is tested below
    (own_env,) = api.env_build(mine.root)
    foreign = foreign_env[1].prefix.name.split(".")[0]
    own = own_env[1].prefix.name.split(".")[0]
    assert set(cache.published()) == {own, foreign}
    an_hour_ago = time.time_ns() - 3600 * 10**9
    for name in (own, foreign):  # both were last used (the link's mtime) an hour ago
        os.utime(cache.root / name, ns=(an_hour_ago, an_hour_ago), follow_symlinks=False)

    kept = ok(mine.cli("env", "prune"))  # default: keep what anyone used within 30 days
    assert "removed" not in kept.stdout
    assert "kept 2 envs" in kept.stdout
    assert set(cache.published()) == {own, foreign}

    dry = ok(mine.cli("env", "prune", "--days", "0", "--dry"))
    assert "would remove" in dry.stdout
    assert foreign[:12] in dry.stdout
    assert own[:12] not in dry.stdout  # the project's own env is never pruned
    assert set(cache.published()) == {own, foreign}  # --dry removes nothing
    assert len(cache.store_dirs()) == 2

    done = ok(mine.cli("env", "prune", "--days", "0"))
    assert foreign[:12] in done.stdout
    assert set(cache.published()) == {own}
    assert [d.name.split(".")[0] for d in cache.store_dirs()] == [own]
    repro = ok(mine.cli("repro"))
    assert builds_in(output(repro)) == 0
    assert shown(mine, "a")["modules"] == {"alpha": "1.0"}


def test_env_prune_removes_an_unfinished_build(project: Project, cache: EnvCache) -> None:
    two_env_project(project)
    api.env_build(project.root, ("train",))
    crashed = cache.root / ".store" / "0123456789abcdef0123456789abcdef.deadbeef"
    crashed.mkdir()
    (crashed / "bin").mkdir()
    done = ok(project.cli("env", "prune"))
    assert "unfinished build" in done.stdout
    assert not crashed.exists()
    assert len(cache.published()) == 1
