"""`checkout RUN` through the API: a run's params and outputs brought into the workspace, never
overwriting uncommitted edits and never writing outside the project.
"""

from __future__ import annotations

import pytest

from pipeline import api
from pipeline.core.hashing import digest_bytes
from pipeline.errors import DataError, OutsideProject, UsageError
from pipeline.plan.decisions import Action
from pipeline.plan.session import open_session
from pipeline.runs.runstore import Artifact, RunStore
from tests.conftest import Project, ran
from tests.experiments.support import PARAMS_TEXT, _run_files, point, run, snapshot

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


# -- never writing outside the project, nor half a run -----------------------------------------


def test_checkout_run_never_writes_outside_the_project(three: Project) -> None:
    experiment = run(three, params=("train.lr=0.3",))
    run_id = experiment.points[0].run_id
    data = b"written by checkout\n"
    digest = digest_bytes(data)
    with open_session(three.root) as session:
        session.store.put_bytes(data, digest)
    store = RunStore.for_project(three.root / ".pipeline")
    try:
        store.record_files(run_id, [Artifact("../escaped.txt", digest, len(data), 1)])
    finally:
        store.close()

    before = snapshot(three.root)

    with pytest.raises(OutsideProject, match=r"\.\./escaped\.txt: outside the project"):
        api.checkout(three.root, run=run_id, force=True)

    assert not (three.root.parent / "escaped.txt").exists()
    assert snapshot(three.root) == before  # refused before writing anything


def test_checkout_run_writes_nothing_when_an_object_is_missing(three: Project) -> None:
    experiment = run(three, params=("train.lr=0.3",))
    run_id = experiment.points[0].run_id
    files = {a.path: a for a in _run_files(three, run_id)}
    with open_session(three.root) as session:
        session.store.path(files["pipeline.lock"].hash).unlink()
    before = snapshot(three.root)

    with pytest.raises(DataError, match=r"the cache no longer holds pipeline\.lock of this run"):
        api.checkout(three.root, run=run_id)

    assert snapshot(three.root) == before
