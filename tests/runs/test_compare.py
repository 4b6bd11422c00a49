"""`compare` over stored runs: only the params that differ, every metric, sorting, rendering."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pipeline import api
from pipeline.cli.tables import render
from pipeline.errors import UsageError
from pipeline.runs.compare import compare
from pipeline.runs.runstore import RunRow, RunStore
from tests.conftest import Project
from tests.experiments.support import point, run, setup, three_stages
from tests.runs.support import _row

# -- compare over stored runs -----------------------------------------------------------------


def test_compare_keeps_only_differing_params_but_every_metric(store: RunStore) -> None:
    from pipeline.cli.tables import render
    from pipeline.runs.compare import compare

    store.start(_row("a", 1.0, name="first"), {"lr": 0.1, "seed": 1, "tag": "x"})
    store.finish("a", "succeeded", 2.0, {"m.json:acc": 0.8, "m.json:loss": 0.5})
    store.start(_row("b", 3.0), {"lr": 0.2, "seed": 1, "tag": "x"})
    store.finish("b", "succeeded", 4.0, {"m.json:acc": 0.9, "m.json:loss": 0.5})
    store.start(_row("c", 5.0), {"lr": 0.3, "seed": 1})  # no metrics, no tag
    store.finish("c", "failed", 6.0, {})

    table = compare(store)
    assert [r.id for r in table.runs] == ["c", "b", "a"]
    assert table.params == ("lr", "tag")  # seed is the same everywhere; tag is missing in c
    assert table.metrics == ("acc", "loss")  # one metrics file: its name is dropped
    every = compare(store, all_columns=True)
    assert every.params == ("lr", "seed", "tag")

    by_acc = compare(store, sort_by="acc")
    assert [r.id for r in by_acc.runs] == ["b", "a", "c"]  # runs without the metric go last
    assert [r.id for r in compare(store, sort_by="acc", descending=False).runs] == ["a", "b", "c"]
    assert render(table, "text").splitlines()[0].split() == [
        "run", "name", "status", "lr", "tag", "acc", "loss",
    ]  # fmt: skip
    assert render(table, "csv").splitlines()[1] == "c,,failed,0.3,-,-,-"
    with pytest.raises(UsageError, match="no param or metric 'nope'"):
        compare(store, sort_by="nope")


def test_compare_keeps_file_prefixes_with_several_metrics_files(store: RunStore) -> None:
    from pipeline.runs.compare import compare

    store.start(_row("a", 1.0), {})
    store.finish("a", "succeeded", 2.0, {"train.json:loss": 0.5, "eval.json:acc": 0.8})
    assert compare(store).metrics == ("eval.json:acc", "train.json:loss")
    assert [r.id for r in compare(store, sort_by="acc").runs] == ["a"]  # a suffix is enough


def _add_run(
    store: RunStore, run_id: str, started: float, params: dict[str, Any], metrics: dict[str, Any]
) -> None:
    row = RunRow(id=run_id, kind="run", command="c", started_at=started, status="running")
    store.start(row, params)
    store.finish(run_id, "succeeded", started + 1, metrics)


# -- NaN and infinite metrics, string params, shared names, pipes ------------------------------


def test_compare_json_is_valid_with_nan_and_infinite_metrics(store: RunStore) -> None:
    _add_run(store, "r1", 1.0, {"lr": 0.1}, {"m.json:loss": float("nan")})
    _add_run(store, "r2", 2.0, {"lr": 0.2}, {"m.json:loss": float("inf")})
    text = render(compare(store), "json")
    rows = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    # JSON has no NaN or infinity: they are written as the strings "nan" and "inf"
    assert [(r["id"], r["params"], r["metrics"]) for r in rows] == [
        ("r2", {"lr": 0.2}, {"loss": "inf"}),
        ("r1", {"lr": 0.1}, {"loss": "nan"}),
    ]


def test_compare_sort_by_a_string_param(store: RunStore) -> None:
    for i, opt in enumerate(["adam", "sgd", None, "rmsprop"]):
        _add_run(store, f"r{i}", float(i), {"opt": opt} if opt else {}, {"m.json:loss": i})
    down = compare(store, sort_by="opt", descending=True)
    up = compare(store, sort_by="opt", descending=False)
    assert [down.values[r.id].get("opt") for r in down.runs] == ["sgd", "rmsprop", "adam", None]
    assert [up.values[r.id].get("opt") for r in up.runs] == ["adam", "rmsprop", "sgd", None]


def test_compare_keeps_a_param_and_a_metric_of_the_same_name_apart(store: RunStore) -> None:
    _add_run(store, "r1", 1.0, {"epochs": 50}, {"m.json:epochs": 12})
    _add_run(store, "r2", 2.0, {"epochs": 80}, {"m.json:epochs": 30})
    rows = {row["id"]: row for row in compare(store).to_json()}
    assert rows["r1"]["params"]["epochs"] == 50
    assert 12 in rows["r1"]["metrics"].values()


def test_compare_markdown_escapes_pipes(store: RunStore) -> None:
    _add_run(store, "r1", 1.0, {"tag": "a|b"}, {"m.json:score": 1})
    _add_run(store, "r2", 2.0, {"tag": "c"}, {"m.json:score": 2})
    header, _, *rows = render(compare(store), "md").splitlines()
    assert len(rows) == 2
    width = len(re.split(r"(?<!\\)\|", header))
    assert [len(re.split(r"(?<!\\)\|", row)) for row in rows] == [width, width]
    assert rows[1].startswith("| r1 |")
    assert " a\\|b " in rows[1]


# -- a failed sweep point ----------------------------------------------------------------------


def test_a_failed_point_shows_no_metrics_in_compare(project: Project) -> None:
    manifest = three_stages(project)
    manifest["stages"]["train"]["cmd"] = (
        'test "${train.lr}" != 0.5 && ' + manifest["stages"]["train"]["cmd"]
    )
    setup(project, manifest)
    experiment = run(project, sweeps=("train.lr=0.2,0.5",))
    table = api.compare(project.root, (experiment.parent_id,))
    succeeded, failed = point(experiment, "train.lr=0.2"), point(experiment, "train.lr=0.5")
    assert table.metrics == ("score",)
    assert table.values[succeeded] == {"train.lr": 0.2, "score": 0.2}
    assert table.values[failed] == {"train.lr": 0.5}  # no score: its metrics were never made
