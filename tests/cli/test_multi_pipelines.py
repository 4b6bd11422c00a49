"""Two pipelines in subfolders of one repository, one reading the other's output through `../..`
paths (issue 14, item 1): `repro` from a subfolder, from the root and with `file:stage`
targets; `status` and `dag` list both; a path leaving the repository is refused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import EXECUTIONS, Project, cli_env, record

PREPARE = f"""\
stages:
  prepare:
    wdir: ../..
    cmd: {record("prepare")} && tr a-z A-Z < data/raw.txt > data/prepared.txt
    deps: [data/raw.txt]
    outs: [data/prepared.txt]
"""
TRAIN = f"""\
stages:
  train:
    cmd: {record("train")} && cat ../../data/prepared.txt > model.txt
    deps: [../../data/prepared.txt]
    outs: [model.txt]
"""
P = "pipelines/prepare/dvc.yaml:prepare"
T = "pipelines/train/dvc.yaml:train"


@pytest.fixture
def repo(dvc: Project) -> Project:
    """A DVC repository (`.dvc/` at its root) with no manifest at the root."""
    dvc.write(".dvc/config", "")
    dvc.write("data/raw.txt", "abc\n")
    dvc.write("pipelines/prepare/dvc.yaml", PREPARE)
    dvc.write("pipelines/train/dvc.yaml", TRAIN)
    dvc.commit()
    return dvc


def run(project: Project, where: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`pipeline ARGS` started in `where`, a folder of the project (no `-C`: as a user types it)."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=project.root / where,
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def ran(project: Project) -> list[str]:
    """The stages executed since the last call."""
    done = project.executions()
    project.clear_executions()
    return done


def test_repro_from_a_subfolder_runs_its_stages_and_their_upstream(repo: Project) -> None:
    assert run(repo, "pipelines/prepare", "repro").returncode == 0
    assert ran(repo) == ["prepare"]  # not train: it is not prepare's folder's
    done = run(repo, "pipelines/train", "repro")
    assert done.returncode == 0, done.stderr
    assert ran(repo) == ["train"]  # prepare is up to date
    assert repo.read("pipelines/train/model.txt") == "ABC\n"
    assert set(repo.lock()["stages"]) == {P, T}  # one lock, at the root
    assert not (repo.root / "pipelines" / "train" / ".pipeline").exists()
    repo.write("data/raw.txt", "xyz\n")
    assert run(repo, "pipelines/train", "repro").returncode == 0
    assert ran(repo) == ["prepare", "train"]
    assert repo.read("pipelines/train/model.txt") == "XYZ\n"


def test_repro_from_the_root_runs_both(repo: Project) -> None:
    done = run(repo, ".", "repro")
    assert done.returncode == 0, done.stderr
    assert ran(repo) == ["prepare", "train"]
    assert run(repo, ".", "repro").returncode == 0
    assert ran(repo) == []


def test_file_stage_targets_from_the_root_and_from_a_subfolder(repo: Project) -> None:
    assert run(repo, ".", "repro", "pipelines/prepare/dvc.yaml:prepare").returncode == 0
    assert ran(repo) == ["prepare"]
    repo.write("data/raw.txt", "new\n")
    done = run(repo, "pipelines/train", "repro", "dvc.yaml:train")  # relative to the folder
    assert done.returncode == 0, done.stderr
    assert ran(repo) == ["prepare", "train"]
    assert run(repo, "pipelines/train", "repro", "-f", "-s", T).returncode == 0
    assert ran(repo) == ["train"]
    wrong = run(repo, ".", "repro", "pipelines/nope/dvc.yaml:train")
    assert wrong.returncode == 2
    assert "this project's manifests are pipelines/prepare/dvc.yaml, pipelines/train" in (
        wrong.stderr
    )


def test_status_and_dag_list_both_pipelines(repo: Project) -> None:
    status = run(repo, ".", "status")
    assert P in status.stdout and T in status.stdout, status.stdout
    dag = run(repo, "pipelines/train", "dag")
    assert dag.returncode == 0, dag.stderr
    assert P in dag.stdout and T in dag.stdout, dag.stdout


def test_a_root_manifest_makes_the_root_without_dvc(dvc: Project) -> None:
    """No `.dvc/`: the topmost manifest is the root; its own stages keep their bare names."""
    dvc.write("dvc.yaml", f"stages:\n  report:\n    cmd: {record('report')}\n")
    dvc.write("data/raw.txt", "abc\n")
    dvc.write("pipelines/prepare/dvc.yaml", PREPARE)
    done = run(dvc, "pipelines/prepare", "repro")
    assert done.returncode == 0, done.stderr
    assert ran(dvc) == ["prepare"]
    assert set(dvc.lock()["stages"]) == {P}
    assert run(dvc, ".", "repro").returncode == 0
    assert ran(dvc) == ["report"]


def test_a_path_leaving_the_repository_is_refused(repo: Project) -> None:
    (repo.root.parent / "outside.txt").write_text("secret\n")
    repo.write(
        "pipelines/bad/dvc.yaml",
        "stages:\n  steal:\n    cmd: cat ../../../outside.txt\n    deps: [../../../outside.txt]\n",
    )
    done = run(repo, "pipelines/train", "repro")
    assert done.returncode != 0
    first = done.stderr.splitlines()[0]
    assert (
        first.startswith("error: ") and "pipelines/bad/dvc.yaml:4:12: stages.steal.deps.0" in first
    )
    assert first.endswith("path 'pipelines/bad/../../../outside.txt' is outside the project root")
    assert not (repo.root.parent / EXECUTIONS).exists()  # nothing ran


def test_a_param_of_a_subfolder_pipeline_is_pointed_to_by_its_file(repo: Project) -> None:
    repo.write("pipelines/train/params.yaml", "lr: 0.1\n")
    repo.write(
        "pipelines/train/dvc.yaml", TRAIN.replace("> model.txt", "> model.txt && echo ${lr}")
    )
    repo.commit()
    assert run(repo, "", "repro").returncode == 0
    repo.commit()
    done = run(repo, "pipelines/train", "run", "--param", "lr=0.5")
    assert done.returncode == 2
    assert "write --param pipelines/train/params.yaml:lr=VALUE" in done.stderr
    done = run(repo, "pipelines/train", "run", "--param", "pipelines/train/params.yaml:lr=0.5")
    assert done.returncode == 0, done.stderr
