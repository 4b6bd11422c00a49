"""Environment declarations in the manifest (`python_env`, `conda_env`, `environments`, a
stage's `env`), in MLproject and dvc.yaml, and the errors that point at them (exit code 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.errors import ManifestError
from pipeline.load.environments import EnvDecl
from pipeline.load.project import load_project
from tests.conftest import Project
from tests.env.support import (
    SHOW_PY,
    EnvCache,
    json_of,
    output,
    repro_ok,
    show_stage,
    shown,
    write_yaml,
)

# Tests marked `usefixtures("cache")` get their own env cache and offline pip settings.


def _project(tmp_path: Path, manifest: str) -> Path:
    (tmp_path / "MLproject").write_text(manifest)
    return tmp_path


# --- declarations -------------------------------------------------------------------------


def test_default_and_named_envs_are_declared(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        "python_env: envs/a.yaml\n"
        "environments:\n"
        "  viz: {conda_env: ../shared/viz.yml}\n"
        "  reqs: {python_env: envs/requirements.txt, python: '3.12'}\n"
        "  locked: {conda_env: envs/x.conda-lock.yml}\n"
        "  host: system\n"
        "stages:\n"
        "  a: {cmd: 'true'}\n"
        "  b: {cmd: 'true', env: viz}\n"
        "  c: {cmd: 'true', env: system}\n"
        "  d: {cmd: 'true', env: host}\n",
    )
    project = load_project(root)
    envs = project.environments
    assert envs["default"] == EnvDecl("default", "python_env", "envs/a.yaml", loc=("python_env",))
    assert envs["viz"].kind == "conda_env" and envs["viz"].file == "../shared/viz.yml"
    assert envs["reqs"].kind == "requirements" and envs["reqs"].python == "3.12"
    assert envs["locked"].kind == "conda_lock"
    assert not envs["host"].isolated
    stages = project.stages
    assert [stages[n].env for n in "abcd"] == ["default", "viz", None, "host"]


def test_declarations_survive_the_project_memo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.load.project
    from pipeline.core.statmemo import StatMemo
    from tests.core.support import _age

    root = _project(
        tmp_path, "environments: {v: {requirements: r.txt}}\nstages:\n  a: {cmd: x, env: v}\n"
    )
    _age(root / "MLproject")  # old enough to trust: the memo may serve the second load
    (root / ".pipeline").mkdir()
    resolved: list[Path] = []
    real = pipeline.load.project._read_project

    def counting(top: Path, manifests: tuple[str, ...], memo: object) -> object:
        resolved.append(top / manifests[0])
        return real(top, manifests, memo)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline.load.project, "_read_project", counting)
    for _ in range(2):  # the second load is recalled from the memo
        db = StatMemo(root / ".pipeline" / "state.db")
        try:
            project = load_project(root, memo=db)
        finally:
            db.close()
        assert project.environments["v"].file == "r.txt"
        assert project.stages["a"].env == "v"
    assert resolved == [root / "MLproject"]  # resolved once; the second load was recalled


@pytest.mark.parametrize(
    ("manifest", "message", "hint"),
    [
        (
            "stages:\n  a: {cmd: x, env: vis}\nenvironments: {viz: system}\n",
            "unknown environment 'vis'",
            "did you mean 'viz'?",
        ),
        (
            "environments: {system: {requirements: r.txt}}\nstages: {}\n",
            "reserved",
            "pick another name",
        ),
        ("python_env: a.yaml\nconda_env: b.yaml\nstages: {}\n", "not both", None),
        (
            "environments: {x: {requirements: r.txt, conda_env: e.yml}}\nstages: {}\n",
            "exactly one",
            None,
        ),
        (
            "environments: {x: {pyton_env: r.yaml}}\nstages: {}\n",
            "unknown key 'pyton_env'",
            "did you mean 'python_env'?",
        ),
        (
            "environments: {x: {requirements: r.txt, python: 3.10}}\nstages: {}\n",
            "as a string",
            None,
        ),
        ("environments: {x: envs/r.txt}\nstages: {}\n", "expected `system` or a mapping", None),
    ],
)
def test_bad_declarations_point_at_the_manifest(
    tmp_path: Path, manifest: str, message: str, hint: str | None
) -> None:
    root = _project(tmp_path, manifest)
    with pytest.raises(ManifestError) as info:
        load_project(root)
    assert "MLproject:" in info.value.message
    assert message in info.value.message
    assert info.value.hint == hint


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


@pytest.mark.usefixtures("cache")
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


@pytest.mark.usefixtures("cache")
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


@pytest.mark.usefixtures("cache")
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
