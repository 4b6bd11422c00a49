"""`pipeline run` through the Python API (`api.run`): sweeps run a shared stage once and their
points in parallel, one recorded run per point, targets, and failing points.

Stage commands append their name to `executions.txt` next to the project, by absolute path: in
an isolated workspace `$PIPELINE_ROOT` is the workspace under `.pipeline/tmp/runs/<id>/`, so the
conftest `record()` snippet would write inside the project's state directory.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from pipeline import api
from pipeline.errors import UsageError
from tests.conftest import Project
from tests.experiments.support import PARAMS_TEXT, _run_files, leftovers, run, setup, three_stages

# -- acceptance: a sweep runs a shared stage once, its points in parallel ---------------------


def test_sweep_of_three_points_runs_the_shared_first_stage_once_in_parallel(
    project: Project, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    b = shlex.quote(str(barrier))
    # each train waits (≤ 30 s) until all three trains have started: only a parallel sweep passes
    wait_for_all = (
        f"touch {b}/${{train.lr}} && i=0 && "
        f'while [ "$(ls {b} | wc -l)" -lt 3 ]; do i=$((i+1)); '
        "if [ $i -gt 600 ]; then exit 9; fi; sleep 0.05; done && "
    )
    for name in ("x", "y", "z"):  # the first repro's single train passes the barrier
        (barrier / name).touch()
    setup(project, three_stages(project, train_prefix=wait_for_all))
    project.write("raw.txt", "new raw data\n")  # prepare is stale: every point needs it
    for stale in barrier.iterdir():
        stale.unlink()

    experiment = run(project, sweeps=("train.lr=0.2,0.3,0.4",), jobs=3)

    assert [p.succeeded for p in experiment.points] == [True] * 3, [
        p.error for p in experiment.points
    ]
    log = project.executions()
    assert log.count("prepare") == 1
    assert log.count("train") == 3
    assert log.count("evaluate") == 3
    assert sorted(os.listdir(barrier)) == ["0.2", "0.3", "0.4"]
    # the records agree: one point ran prepare, the others restored it from the run-cache
    details = [api.run_detail(project.root, p.run_id) for p in experiment.points]
    prepares = sorted(s.outcome for d in details for s in d.stages if s.stage == "prepare")
    assert prepares == ["ran", "restored", "restored"]
    assert leftovers(project) == []


def test_a_sweep_is_a_parent_run_with_one_recorded_child_per_point(three: Project) -> None:
    experiment = run(three, sweeps=("train.lr=0.2,0.3",), jobs=2)
    assert experiment.parent_id is not None
    parent = api.run_detail(three.root, experiment.parent_id)
    assert (parent.run.kind, parent.run.status) == ("sweep", "succeeded")
    assert sorted(c.id for c in parent.children) == sorted(p.run_id for p in experiment.points)
    for child in parent.children:
        detail = api.run_detail(three.root, child.id)
        assert (detail.run.kind, detail.run.parent_id) == ("run", parent.run.id)
        assert detail.run.status == "succeeded"
        lr = detail.params["train.lr"]
        assert detail.run.name == f"train.lr={lr}"
        assert detail.metrics == {"metrics.json:score": lr}
        assert detail.run.git_commit == three.git("rev-parse", "HEAD").strip()
        paths = sorted(a.path for a in _run_files(three, child.id))
        assert paths == ["params.yaml", "pipeline.lock"]
    # prepare is shared and up to date: it never runs
    assert sorted(three.executions()) == ["evaluate", "evaluate", "train", "train"]


def test_two_sweeps_make_the_grid_product_and_a_name_prefixes_the_points(
    three: Project,
) -> None:
    three.manifest(
        {
            **three_stages(three),
            "stages": {
                **three_stages(three)["stages"],
                "train": {
                    **three_stages(three)["stages"]["train"],
                    "params": ["train.lr", "tag"],
                },
            },
        }
    )
    three.clear_executions()
    experiment = run(three, sweeps=("train.lr=0.2,0.3", "tag=x,y"), name="grid", jobs=4)
    names = sorted(api.run_detail(three.root, p.run_id).run.name for p in experiment.points)
    assert names == [
        "grid:train.lr=0.2,tag=x",
        "grid:train.lr=0.2,tag=y",
        "grid:train.lr=0.3,tag=x",
        "grid:train.lr=0.3,tag=y",
    ]
    assert api.run_detail(three.root, experiment.parent_id).run.name == "grid"
    params = sorted(
        (d.params["train.lr"], d.params["tag"])
        for d in (api.run_detail(three.root, p.run_id) for p in experiment.points)
    )
    assert params == [(0.2, "x"), (0.2, "y"), (0.3, "x"), (0.3, "y")]


def test_a_single_param_run_is_recorded_without_a_parent(three: Project) -> None:
    experiment = run(three, params=("train.lr=0.7",), name="try")
    assert experiment.parent_id is None
    [only] = experiment.points
    detail = api.run_detail(three.root, only.run_id)
    assert (detail.run.kind, detail.run.name, detail.run.parent_id) == ("run", "try", None)
    assert detail.params == {"train.lr": 0.7}
    assert detail.metrics == {"metrics.json:score": 0.7}
    assert api.run_detail(three.root, "try").run.id == only.run_id
    assert three.executions() == ["train", "evaluate"]


def test_unknown_target_is_refused_before_anything_runs(three: Project) -> None:
    with pytest.raises(UsageError, match="unknown stage"):
        run(three, targets=("trian",), params=("train.lr=0.2",))
    assert three.executions() == []
    assert leftovers(three) == []


def test_targets_limit_the_stages_a_run_executes(three: Project) -> None:
    experiment = run(three, targets=("train",), params=("train.lr=0.6",))
    detail = api.run_detail(three.root, experiment.points[0].run_id)
    assert sorted(s.stage for s in detail.stages) == ["prepare", "train"]
    assert three.executions() == ["train"]


# -- failures ---------------------------------------------------------------------------------


def test_a_failing_point_does_not_stop_the_others(project: Project) -> None:
    manifest = three_stages(project)
    manifest["stages"]["train"]["cmd"] = (
        'test "${train.lr}" != 0.5 && ' + manifest["stages"]["train"]["cmd"]
    )
    setup(project, manifest)
    experiment = run(project, sweeps=("train.lr=0.2,0.5,0.3",), jobs=1)
    by_name = {p.point.name: p for p in experiment.points}
    assert [n for n, p in by_name.items() if not p.succeeded] == ["train.lr=0.5"]
    assert sorted(project.executions()) == ["evaluate", "evaluate", "train", "train"]
    failed = api.run_detail(project.root, by_name["train.lr=0.5"].run_id)
    assert failed.run.status == "failed"
    assert {s.stage: s.outcome for s in failed.stages}["train"] == "failed"
    assert {s.stage: s.outcome for s in failed.stages}["evaluate"] == "skipped"
    assert api.run_detail(project.root, experiment.parent_id).run.status == "failed"
    assert leftovers(project) == []


def test_run_in_a_project_that_never_ran(project: Project) -> None:
    project.write("raw.txt", "raw data\n")
    project.params(PARAMS_TEXT)
    project.manifest(three_stages(project), commit=False)
    project.commit(message="three stages")
    api.runs(project.root)  # an existing runs.db: keep the store-opening race out of it
    experiment = run(project, sweeps=("train.lr=0.2,0.3",), jobs=2)
    assert [p.succeeded for p in experiment.points] == [True, True]
    assert sorted(project.executions()) == ["evaluate", "evaluate", "prepare", "train", "train"]
