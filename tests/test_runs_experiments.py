"""`pipeline run`: experiments in isolated workspaces, sweeps, `checkout RUN` and `lineage`.

Through the Python API (`api.run`, `api.checkout`, `api.lineage`). Stage commands append their
name to `executions.txt` next to the project, by absolute path: in an isolated workspace
`$PIPELINE_ROOT` is the workspace under `.pipeline/tmp/runs/<id>/`, so the conftest `record()`
snippet would write inside the project's state directory.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, ran

from pipeline import api
from pipeline.errors import UsageError
from pipeline.experiments.run import Experiment, RunOptions
from pipeline.plan.decisions import Action
from pipeline.plan.session import open_session

PARAMS_TEXT = """\
# Hyper-parameters (comments must survive --param)
train:
  lr: 0.1        # learning rate
  epochs: 3      # unused by any stage
tag: base
"""


def log(project: Project, name: str) -> str:
    """Append `name` to the execution log outside the project, wherever the stage runs."""
    return f"echo {name} >> {shlex.quote(str(project.execution_log))}"


def three_stages(project: Project, *, train_prefix: str = "") -> dict[str, Any]:
    """prepare (raw.txt → prepared.txt) → train (uses train.lr) → evaluate (metrics.json).

    The model's bytes and the score depend on train.lr.
    """
    return {
        "name": "three",
        "stages": {
            "prepare": {
                "cmd": "tr a-z A-Z < raw.txt > prepared.txt && " + log(project, "prepare"),
                "deps": ["raw.txt"],
                "outs": ["prepared.txt"],
            },
            "train": {
                "cmd": train_prefix
                + "{ cat prepared.txt; echo lr=${train.lr}; } > model.txt && "
                + log(project, "train"),
                "deps": ["prepared.txt"],
                "params": ["train.lr"],
                "outs": ["model.txt"],
            },
            "evaluate": {
                "cmd": "printf '{\"score\": %s}' \"$(sed -n 's/^lr=//p' model.txt)\""
                " > metrics.json && " + log(project, "evaluate"),
                "deps": ["model.txt"],
                "metrics": ["metrics.json"],
            },
        },
    }


def setup(project: Project, manifest: dict[str, Any] | None = None) -> Project:
    """The three-stage project, committed, reproduced once (lock, cache, runs.db) and committed
    again with its lock, with the execution log cleared."""
    project.write("raw.txt", "raw data\n")
    project.params(PARAMS_TEXT)
    project.manifest(manifest or three_stages(project), commit=False)
    project.commit(message="three stages")
    result = project.repro()
    assert ran(result) == ["prepare", "train", "evaluate"]
    project.commit(message="first results")
    project.clear_executions()
    return project


@pytest.fixture
def three(project: Project) -> Project:
    return setup(project)


def run(project: Project, **options: Any) -> Experiment:
    defaults: dict[str, Any] = {"root": project.root, "jobs": 1}
    return api.run(RunOptions(**{**defaults, **options}))


def leftovers(project: Project) -> list[str]:
    runs = project.root / ".pipeline" / "tmp" / "runs"
    return sorted(os.listdir(runs)) if runs.exists() else []


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file outside .pipeline/ and .git/: content hash, mode and mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".pipeline", ".git")]
        for name in filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[path.relative_to(root).as_posix()] = (digest, st.st_mode, st.st_mtime_ns)
    return found


def object_text(project: Project, digest: str) -> str:
    with open_session(project.root) as session:
        return session.store.path(digest).read_text(encoding="utf-8")


def point(experiment: Experiment, name: str) -> str:
    return next(p.run_id for p in experiment.points if p.point.name == name)


# -- acceptance: a sweep runs a shared stage once, its points in parallel ---------------------


def test_sweep_of_three_points_runs_the_shared_first_stage_once_in_parallel(
    project: Project, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    b = shlex.quote(str(barrier))
    # each train waits (≤ 10 s) until all three trains have started: only a parallel sweep passes
    wait_for_all = (
        f"touch {b}/${{train.lr}} && i=0 && "
        f'while [ "$(ls {b} | wc -l)" -lt 3 ]; do i=$((i+1)); '
        "if [ $i -gt 200 ]; then exit 9; fi; sleep 0.05; done && "
    )
    for name in ("x", "y", "z"):  # the first repro's single train passes the barrier
        (barrier / name).touch()
    setup(project, three_stages(project, train_prefix=wait_for_all))
    project.write("raw.txt", "new raw data\n")  # prepare is stale: every point needs it
    for stale in barrier.iterdir():
        stale.unlink()

    experiment = run(project, sweeps=("train.lr=0.2,0.3,0.4",), jobs=3)

    assert all(p.succeeded for p in experiment.points), [p.error for p in experiment.points]
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


def _run_files(project: Project, run_id: str) -> list[Any]:
    from pipeline.runs.runstore import RunStore

    store = RunStore.for_project(project.root / ".pipeline")
    try:
        return store.run_files(run_id)
    finally:
        store.close()


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


# -- acceptance: `checkout RUN` brings that run's model and params ----------------------------


def test_checkout_run_brings_its_params_and_model_without_running_anything(
    three: Project,
) -> None:
    experiment = run(three, sweeps=("train.lr=0.2,0.3",), jobs=2)
    three.clear_executions()
    chosen = point(experiment, "train.lr=0.3")

    api.checkout(three.root, run=chosen)

    assert three.read("model.txt") == "RAW DATA\nlr=0.3\n"
    assert three.read("metrics.json") == '{"score": 0.3}'
    assert three.read("params.yaml") == PARAMS_TEXT.replace("lr: 0.1 ", "lr: 0.3 ")
    assert three.executions() == []
    plan = three.plan()
    assert {d.action for d in plan.decisions.values()} == {Action.UP_TO_DATE}
    result = three.repro()
    assert ran(result) == []

    # params.yaml now differs from HEAD, but exactly as a run left it: no --force needed
    other = point(experiment, "train.lr=0.2")
    api.checkout(three.root, run=other)
    assert three.read("model.txt") == "RAW DATA\nlr=0.2\n"
    assert three.executions() == []


def test_checkout_run_refuses_uncommitted_params_edits_unless_forced(three: Project) -> None:
    experiment = run(three, params=("train.lr=0.3",))
    edited = PARAMS_TEXT.replace("tag: base", "tag: mine")
    three.params(edited)
    model = three.read("model.txt")
    lock = three.read("pipeline.lock")

    with pytest.raises(UsageError, match=r"params\.yaml has uncommitted edits"):
        api.checkout(three.root, run=experiment.points[0].run_id)
    assert three.read("params.yaml") == edited
    assert three.read("model.txt") == model
    assert three.read("pipeline.lock") == lock

    api.checkout(three.root, run=experiment.points[0].run_id, force=True)
    assert three.read("model.txt") == "RAW DATA\nlr=0.3\n"
    assert "lr: 0.3" in three.read("params.yaml")
    assert "tag: base" in three.read("params.yaml")


def test_checkout_of_a_repro_run_is_refused(three: Project) -> None:
    [repro] = api.runs(three.root)
    with pytest.raises(UsageError, match="kept no params or lock"):
        api.checkout(three.root, run=repro.id)


# -- `--param` values: comments kept, validated before anything runs --------------------------


def test_the_stored_params_file_keeps_comments_and_layout(three: Project) -> None:
    experiment = run(three, params=("train.lr=0.25", "tag=two words"))
    files = {a.path: a for a in _run_files(three, experiment.points[0].run_id)}
    stored = object_text(three, files["params.yaml"].hash)
    assert stored == PARAMS_TEXT.replace("lr: 0.1", "lr: 0.25").replace(
        "tag: base", "tag: two words"
    )
    assert three.read("params.yaml") == PARAMS_TEXT
    lock_text = object_text(three, files["pipeline.lock"].hash)
    assert "0.25" in lock_text


def test_a_param_in_another_params_file(three: Project) -> None:
    stages = three_stages(three)["stages"]
    stages["train"]["params"] = [{"conf/extra.yaml": ["scale"]}]
    stages["train"]["cmd"] = stages["train"]["cmd"].replace(
        "${train.lr}", "$(awk '/^scale:/ {print $2}' conf/extra.yaml)"
    )
    three.write("conf/extra.yaml", "scale: 2  # a factor\n")
    three.manifest({"name": "three", "stages": stages}, commit=False)
    three.commit(message="extra")
    three.repro()
    three.clear_executions()
    experiment = run(three, params=("conf/extra.yaml:scale=5",))
    detail = api.run_detail(three.root, experiment.points[0].run_id)
    assert detail.params == {"conf/extra.yaml:scale": 5}
    assert detail.metrics == {"metrics.json:score": 5}
    files = {a.path: a for a in _run_files(three, experiment.points[0].run_id)}
    assert object_text(three, files["conf/extra.yaml"].hash) == "scale: 5  # a factor\n"


BAD_PARAMS = {
    "unknown-key": (("train.lrr=0.2",), (), "unknown param train.lrr", "did you mean 'train.lr'?"),
    "wrong-type-int": (("train.epochs=1.5",), (), "expected an integer", None),
    "wrong-type-float": (("train.lr=fast",), (), "expected a number", None),
    "a-mapping": (("train=3",), (), "expected structure", None),
    "not-key-value": (("train.lr",), (), "is not KEY=VALUE", None),
    "bad-sweep-value": ((), ("train.lr=0.2,oops",), "expected a number", None),
    "unknown-sweep-key": ((), ("train.lrate=0.2,0.3",), "unknown param train.lrate", None),
    "empty-sweep": ((), ("train.lr=",), "needs values", None),
    "missing-file": (("nope.yaml:x=1",), (), "nope.yaml does not exist", None),
}


@pytest.mark.parametrize(
    ("params", "sweeps", "message", "hint"), BAD_PARAMS.values(), ids=list(BAD_PARAMS)
)
def test_a_bad_param_is_refused_before_anything_runs(
    three: Project,
    params: tuple[str, ...],
    sweeps: tuple[str, ...],
    message: str,
    hint: str | None,
) -> None:
    three.write("raw.txt", "changed: every stage would run\n")
    before = api.runs(three.root)
    with pytest.raises(UsageError) as error:
        run(three, params=params, sweeps=sweeps)
    assert message in error.value.message
    if hint is not None:
        assert error.value.hint == hint
    assert error.value.exit_code == 2
    assert three.executions() == []
    assert api.runs(three.root) == before
    assert not (three.root / ".pipeline" / "tmp").exists() or leftovers(three) == []


DECLARED = {
    "train.lr": {"type": "float", "min": 0, "max": 1},
    "tag": {"type": "string", "choices": ["base", "wide"]},
}


def test_declared_parameter_types_bounds_and_choices(three: Project) -> None:
    three.manifest({**three_stages(three), "parameters": DECLARED})
    with pytest.raises(UsageError, match=r"train.lr=2.0 is outside \[0.0, 1.0\]"):
        run(three, params=("train.lr=2",))
    with pytest.raises(UsageError, match="is not one of"):
        run(three, params=("tag=narrow",))
    with pytest.raises(UsageError, match="expected a number"):
        run(three, sweeps=("train.lr=0.5,high",))
    assert three.executions() == []
    experiment = run(three, params=("train.lr=1", "tag=wide"))  # an int is a fine float
    detail = api.run_detail(three.root, experiment.points[0].run_id)
    assert detail.params == {"train.lr": 1.0}
    assert isinstance(detail.params["train.lr"], float)


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


def test_a_failed_point_shows_no_metrics_in_compare(project: Project) -> None:
    manifest = three_stages(project)
    manifest["stages"]["train"]["cmd"] = (
        'test "${train.lr}" != 0.5 && ' + manifest["stages"]["train"]["cmd"]
    )
    setup(project, manifest)
    experiment = run(project, sweeps=("train.lr=0.2,0.5",))
    table = api.compare(project.root, (experiment.parent_id,))
    failed = point(experiment, "train.lr=0.5")
    assert table.values[failed].get("score") is None


def test_run_in_a_project_that_never_ran(project: Project) -> None:
    project.write("raw.txt", "raw data\n")
    project.params(PARAMS_TEXT)
    project.manifest(three_stages(project), commit=False)
    project.commit(message="three stages")
    api.runs(project.root)  # an existing runs.db: keep the store-opening race out of it
    experiment = run(project, sweeps=("train.lr=0.2,0.3",), jobs=2)
    assert all(p.succeeded for p in experiment.points)
    assert project.executions().count("prepare") == 1


def test_run_finds_git_ignored_raw_data_that_repro_reads(project: Project) -> None:
    project.write(".gitignore", "raw.txt\n")
    setup(project)
    assert "raw.txt" not in project.git("ls-files")
    [only] = run(project, params=("train.lr=0.2",)).points
    failed = only.result.failed if only.result is not None else None
    assert failed is None, failed.error
    assert only.succeeded


# -- acceptance: lineage walks back to the raw data's hash ------------------------------------


@pytest.fixture
def tracked(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """raw.txt is tracked data (`pipeline add`), not in git; prepare → train read it.

    Paths given to `add` and `lineage` are relative to the working directory, as on the CLI.
    """
    monkeypatch.chdir(project.root)
    project.write("raw.txt", "raw data\n")
    project.params(PARAMS_TEXT)
    project.manifest(three_stages(project), commit=False)
    api.add(project.root, ["raw.txt"])
    project.commit(message="tracked raw data")
    assert "raw.txt" not in project.git("ls-files")
    return project


def _hash(project: Project, path: str) -> str:
    with open_session(project.root) as session:
        info = session.hasher.hash(path)
    assert info is not None
    return info.hash


def test_lineage_walks_from_an_output_back_to_the_raw_data_hash(tracked: Project) -> None:
    result = tracked.repro()
    raw = _hash(tracked, "raw.txt")

    node = api.lineage(tracked.root, "metrics.json")

    assert (node.path, node.stage.stage, node.run.id) == ("metrics.json", "evaluate", result.run_id)
    assert node.hash == _hash(tracked, "metrics.json")
    [model] = node.inputs
    assert (model.path, model.stage.stage, model.run.id) == ("model.txt", "train", result.run_id)
    assert model.stage.params == {"train.lr": 0.1}
    assert model.run.git_commit == tracked.git("rev-parse", "HEAD").strip()
    [prepared] = model.inputs
    assert (prepared.path, prepared.stage.stage) == ("prepared.txt", "prepare")
    [leaf] = prepared.inputs
    assert (leaf.path, leaf.hash, leaf.run, leaf.stage, leaf.inputs) == (
        "raw.txt",
        raw,
        None,
        None,
        (),
    )
    data = node.to_json()
    assert data["inputs"][0]["inputs"][0]["inputs"][0] == {
        "path": "raw.txt",
        "hash": raw,
        "inputs": [],
    }
    assert data["inputs"][0]["params"] == {"train.lr": 0.1}
    assert data["inputs"][0]["run"] == result.run_id


def test_lineage_of_a_checked_out_model_names_the_sweep_point_that_made_it(
    tracked: Project,
) -> None:
    first = tracked.repro()
    experiment = run(tracked, sweeps=("train.lr=0.2,0.3",), jobs=2)
    chosen = point(experiment, "train.lr=0.3")
    api.checkout(tracked.root, run=chosen)

    node = api.lineage(tracked.root, "model.txt")
    assert (node.stage.stage, node.run.id, node.stage.outcome) == ("train", chosen, "ran")
    assert node.stage.params == {"train.lr": 0.3}
    assert node.run.parent_id == experiment.parent_id
    [prepared] = node.inputs
    assert (prepared.stage.stage, prepared.run.id) == ("prepare", first.run_id)
    assert prepared.inputs[0].hash == _hash(tracked, "raw.txt")
    assert prepared.inputs[0].run is None


def test_lineage_of_raw_data_or_a_hand_edited_output_is_an_error(tracked: Project) -> None:
    tracked.repro()
    with pytest.raises(UsageError, match=r"no recorded run produced raw\.txt"):
        api.lineage(tracked.root, "raw.txt")
    (tracked.root / "model.txt").unlink()
    tracked.write("model.txt", "by hand\n")
    with pytest.raises(UsageError, match=r"no recorded run produced model\.txt"):
        api.lineage(tracked.root, "model.txt")
    with pytest.raises(UsageError, match="does not exist"):
        api.lineage(tracked.root, "nothing.txt")
