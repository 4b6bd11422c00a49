"""Runs whose objects are gone from the cache are marked (`runs`, `runs show`, `compare`), by
one `stat` per object: an output, a kept params file or lock, or a log deleted by hand.
"""

from __future__ import annotations

from pipeline import api
from pipeline.runs.model import RunObjects
from pipeline.runs.needs import mark_missing
from pipeline.runs.runstore import RunStore
from tests.conftest import Project
from tests.experiments.support import point, run
from tests.runs.support import _row
from tests.store.support import store_of


def test_a_run_whose_output_object_is_gone_is_marked_everywhere(three: Project) -> None:
    experiment = run(three, sweeps=("train.lr=0.2,0.3",), jobs=2)
    victim, other = point(experiment, "train.lr=0.2"), point(experiment, "train.lr=0.3")
    assert not any(r.missing_objects for r in api.runs(three.root))
    model = next(
        o.hash
        for s in api.run_detail(three.root, victim).stages
        for o in s.outs
        if o.path == "model.txt"
    )
    store_of(three).path(model).unlink()

    marked = {r.id for r in api.runs(three.root) if r.missing_objects}
    assert marked == {victim, experiment.parent_id}  # a sweep is marked when a point is
    rows = api.compare(three.root, (str(experiment.parent_id),)).to_json()
    assert {r["id"]: r["missing_objects"] for r in rows} == {victim: True, other: False}
    sweep = api.run_detail(three.root, str(experiment.parent_id))
    assert sweep.run.missing_objects
    assert {c.id: c.missing_objects for c in sweep.children} == {victim: True, other: False}
    assert not api.run_detail(three.root, other).run.missing_objects


def test_each_distinct_object_is_asked_about_once(store: RunStore) -> None:
    store.start(_row("a", 1.0), {})
    store.start(_row("b", 2.0), {})
    asked: list[str] = []

    def present(digest: str) -> bool:
        asked.append(digest)
        return digest != "gone"

    needs = {
        "a": RunObjects("a", logs=("x", "gone")),
        "b": RunObjects("b", logs=("x", "y")),
    }
    store.objects_of = lambda ids=None: {i: needs[i] for i in ids or needs}  # type: ignore[method-assign]
    rows = mark_missing(store, store.runs(), present)
    assert {r.id: r.missing_objects for r in rows} == {"a": True, "b": False}
    assert sorted(asked) == sorted(set(asked))
