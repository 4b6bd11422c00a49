"""`pipeline env ...` and environments declared in the manifest, as users run them (CLI).

Exit codes (DESIGN §9): 2 for usage and manifest errors (an unknown env, an unknown name given
to `env build`), 3 when an environment cannot be set up. Every test has its own env cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from conftest import Project
from test_env_common import (
    SHOW_PY,
    EnvCache,
    builds_in,
    ok,
    output,
    repro_ok,
    show_stage,
    shown,
    write_yaml,
)

from pipeline import api

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


def json_of(done: Any) -> Any:
    return json.loads(ok(done).stdout)


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
    time.sleep(0.05)  # both were last used strictly before `now - 0 days`

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


# -- 10. dvc.yaml ------------------------------------------------------------------------------


def test_dvc_yaml_stages_use_environments_declared_in_it(project: Project, cache: EnvCache) -> None:
    project.write("show.py", SHOW_PY)
    write_yaml(project, "envs/train.yaml", {"dependencies": ["alpha"]})
    project.write("envs/eval.txt", "gamma\n")
    dvc = {
        "environments": {
            "train": {"python_env": "envs/train.yaml"},
            "eval": {"requirements": "envs/eval.txt"},
        },
        "stages": {
            "train": show_stage("train", "alpha", env="train"),
            "evaluate": show_stage("evaluate", "gamma", env="eval"),
            "report": show_stage("report", env="system"),
        },
    }
    project.write("dvc.yaml", yaml.safe_dump(dvc, sort_keys=False))
    project.commit()

    repro_ok(project)

    train, evaluate, report = (shown(project, s) for s in ("train", "evaluate", "report"))
    assert train["modules"] == {"alpha": "1.0"}
    assert evaluate["modules"] == {"gamma": "1.0"}
    assert cache.contains(train["prefix"])
    assert cache.contains(evaluate["prefix"])
    assert train["prefix"] != evaluate["prefix"]
    assert not cache.contains(report["prefix"])
    assert report["environ"]["VIRTUAL_ENV"] is None
    listed = {e["name"]: e for e in json_of(project.cli("env", "list", "--json"))}
    assert listed["train"]["stages"] == ["train"]
    assert listed["eval"]["stages"] == ["evaluate"]

    write_yaml(project, "envs/train.yaml", {"dependencies": ["alpha", "gamma"]})
    status = json_of(project.cli("status", "--json"))
    stale = {s["stage"] for s in status["stages"] if s["action"] == "run"}
    assert stale == {"train"}


def test_dvc_yaml_unknown_env_exits_2(project: Project) -> None:
    project.write(
        "dvc.yaml",
        yaml.safe_dump(
            {
                "environments": {"train": {"requirements": "r.txt"}},
                "stages": {"a": {"cmd": "true", "env": "trainn"}},
            }
        ),
    )
    done = project.cli("status")
    assert done.returncode == 2, output(done)
    assert "did you mean 'train'?" in done.stderr


# -- 13. manifest errors -------------------------------------------------------------------------


def test_unknown_env_in_a_stage_exits_2_with_did_you_mean(project: Project) -> None:
    project.write("envs/train.txt", "alpha\n")
    project.manifest(
        "environments:\n"
        "  training:\n"
        "    requirements: envs/train.txt\n"
        "stages:\n"
        "  a:\n"
        "    cmd: echo hi > a.txt\n"
        "    outs: [a.txt]\n"
        "    env: trainig\n"
    )
    for command in (("status",), ("repro",)):
        done = project.cli(*command)
        assert done.returncode == 2, output(done)
        assert "unknown environment 'trainig'" in done.stderr
        assert "did you mean 'training'?" in done.stderr
        assert "MLproject:8:" in done.stderr
        assert "Traceback" not in output(done)
    assert not project.exists("a.txt")


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            {"environments": {"system": {"requirements": "r.txt"}}, "stages": {}},
            "reserved",
        ),
        (
            {"environments": {"x": {"requirements": "r.txt", "python_env": "p.yaml"}}},
            "exactly one of",
        ),
        (
            {"python_env": "p.yaml", "conda_env": "e.yml", "stages": {}},
            "not both",
        ),
    ],
    ids=["reserved-name", "two-kinds", "python-and-conda"],
)
def test_invalid_environment_declarations_exit_2(
    project: Project, manifest: dict[str, Any], message: str
) -> None:
    project.manifest({"stages": {"a": {"cmd": "true"}}, **manifest})
    done = project.cli("status")
    assert done.returncode == 2, output(done)
    assert message in done.stderr
    assert "Traceback" not in output(done)


def test_stage_gaining_an_env_reruns_with_reason_env_changed(
    project: Project, cache: EnvCache
) -> None:
    """A stage that gains an env (same command) reruns for that reason alone."""
    project.write("show.py", SHOW_PY)
    project.manifest({"stages": {"a": show_stage("a")}})
    repro_ok(project)
    assert "env" not in project.lock()["stages"]["a"]
    write_yaml(project, "python_env.yaml", {"dependencies": ["beta"]})
    project.manifest({"python_env": "python_env.yaml", "stages": {"a": show_stage("a")}})
    status = json_of(project.cli("status", "--json"))
    assert status["stages"][0]["reasons"] == [
        {"kind": "env changed", "text": "env default changed", "subject": "default"}
    ]
    ok(project.cli("repro"))
    assert cache.contains(shown(project, "a")["prefix"])
    assert project.lock()["stages"]["a"]["env"].startswith("xxh3_128:")
