"""Isolated workspaces: `run` leaves the workspace byte-identical, uses uncommitted edits, and
copes with git-ignored data, other repositories, symlinks and a manifest given by file.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
import yaml

from pipeline import api
from pipeline.api import ReproOptions
from pipeline.experiments.run import RunOptions
from tests.conftest import Project, ran
from tests.experiments.support import (
    PARAMS_TEXT,
    leftovers,
    log,
    run,
    setup,
    snapshot,
    three_stages,
)

# -- acceptance: the workspace is byte-identical before and after `run` ----------------------


def test_run_and_sweep_leave_the_workspace_byte_identical(three: Project) -> None:
    three.write("notes.txt", "untracked, not ignored\n")
    before = snapshot(three.root)
    assert {"params.yaml", "pipeline.lock", ".gitignore", "model.txt", "metrics.json"} <= set(
        before
    )
    status = three.git("status", "--porcelain")

    run(three, params=("train.lr=0.9",))
    run(three, sweeps=("train.lr=0.2,0.3",), jobs=2)

    assert snapshot(three.root) == before
    assert three.git("status", "--porcelain") == status
    assert sorted(three.executions()) == ["evaluate"] * 3 + ["train"] * 3
    assert leftovers(three) == []


def test_run_uses_uncommitted_source_edits_without_touching_them(three: Project) -> None:
    three.write("raw.txt", "edited but not committed\n")
    before = snapshot(three.root)
    experiment = run(three, params=("train.lr=0.5",))
    assert experiment.points[0].succeeded
    assert three.executions() == ["prepare", "train", "evaluate"]
    assert snapshot(three.root) == before
    detail = api.run_detail(three.root, experiment.points[0].run_id)
    assert detail.run.git_dirty is True


def test_run_finds_git_ignored_raw_data_that_repro_reads(project: Project) -> None:
    project.write(".gitignore", "raw.txt\n")
    setup(project)
    assert "raw.txt" not in project.git("ls-files")
    [only] = run(project, params=("train.lr=0.2",)).points
    failed = only.result.failed if only.result is not None else None
    assert failed is None, failed.error
    assert only.succeeded


# -- what a workspace holds: a manifest by file, ignored files, repositories, symlinks ---------


def test_run_with_a_manifest_given_by_file_runs_that_manifest(project: Project) -> None:
    outer = project.root.parent
    marker = outer / "outer-ran"
    (outer / "MLproject").write_text(f"name: outer\nstages:\n  outer:\n    cmd: touch {marker}\n")
    project.params(PARAMS_TEXT)
    project.write("raw.txt", "raw data\n")
    project.write("exp.yaml", yaml.safe_dump(three_stages(project), sort_keys=False))
    project.commit(message="custom manifest name")
    api.repro(ReproOptions(root=project.root / "exp.yaml"))
    project.clear_executions()

    experiment = api.run(
        RunOptions(root=project.root / "exp.yaml", params=("train.lr=0.2",), jobs=1)
    )

    assert not marker.exists()
    [only] = experiment.points
    assert only.succeeded, only.error
    assert project.executions() == ["train", "evaluate"]


def test_run_in_a_git_ignored_project_never_runs_in_place(make_project: Any) -> None:
    top = make_project("top")
    top.write(".gitignore", "scratch/\n")
    top.commit(message="ignore scratch")
    project = Project(top.root / "scratch" / "exp")
    project.root.mkdir(parents=True)
    project.write("raw.txt", "raw data\n")
    project.params(PARAMS_TEXT)
    project.manifest(three_stages(project), commit=False)
    assert ran(project.repro()) == ["prepare", "train", "evaluate"]
    project.write("raw.txt", "new raw data\n")  # every stage is stale
    project.clear_executions()
    before = snapshot(project.root)

    [only] = run(project).points  # in a workspace of its own, though git ignores the project

    assert only.succeeded, only.error
    assert project.executions() == ["prepare", "train", "evaluate"]
    assert snapshot(project.root) == before
    assert leftovers(project) == []


def _nested_repository(project: Project) -> None:
    nested = project.root / "vendor"
    nested.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=nested, check=True)
    (nested / "x.txt").write_text("x\n")


def _submodule(project: Project) -> None:
    tree = project.git("write-tree").strip()
    commit = project.git("commit-tree", "-m", "sub", tree).strip()
    project.git("update-index", "--add", "--cacheinfo", f"160000,{commit},sub")
    project.git("commit", "-q", "-m", "a submodule")
    (project.root / "sub").mkdir()
    (project.root / "sub" / "a.txt").write_text("a\n")


@pytest.mark.parametrize("make", [_nested_repository, _submodule], ids=["nested-repo", "submodule"])
def test_run_in_a_project_holding_another_repository(three: Project, make: Any) -> None:
    make(three)
    [only] = run(three, params=("train.lr=0.2",)).points
    assert only.succeeded, only.error
    assert leftovers(three) == []


def _one_stage(project: Project, dep: str, cmd: str) -> None:
    project.params(PARAMS_TEXT)
    stage = {
        "cmd": f"{cmd} && {log(project, 's')}",
        "deps": [dep],
        "params": ["train.lr"],
        "outs": ["out.txt"],
    }
    project.manifest({"name": "one", "stages": {"s": stage}}, commit=False)
    project.commit(message="one stage")
    assert ran(project.repro()) == ["s"]
    project.commit(message="results")
    project.clear_executions()


def test_run_with_a_dep_directory_that_git_partly_ignores(project: Project) -> None:
    project.write(".gitignore", "data/*.csv\n")
    project.write("data/README.md", "what the data is\n")
    project.write("data/a.csv", "1,2\n")
    _one_stage(project, "data", "cat data/a.csv > out.txt")
    [only] = run(project, params=("train.lr=0.2",)).points
    assert only.succeeded


def test_run_with_a_symlink_to_data_outside_the_project(project: Project) -> None:
    shared = project.root.parent / "shared"
    shared.mkdir()
    (shared / "raw.txt").write_text("raw\n")
    os.symlink("../shared/raw.txt", project.root / "raw.txt")
    _one_stage(project, "raw.txt", "cat raw.txt > out.txt")
    [only] = run(project, params=("train.lr=0.2",)).points
    assert only.succeeded
    assert project.executions() == ["s"]


def test_run_never_writes_through_a_symlinked_params_file(project: Project) -> None:
    project.write("conf/params.yaml", PARAMS_TEXT)
    os.symlink(project.root / "conf" / "params.yaml", project.root / "params.yaml")
    project.write("raw.txt", "raw data\n")
    project.manifest(three_stages(project), commit=False)
    project.commit(message="linked params")
    project.repro()
    project.commit(message="results")

    run(project, params=("train.lr=0.5",))

    assert project.read("conf/params.yaml") == PARAMS_TEXT
