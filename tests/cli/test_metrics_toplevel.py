"""Top-level `metrics:`, `params:`, `plots:` and `artifacts:` of a dvc.yaml, through the CLI.

Laid out as iterative/example-get-started is: `evaluate` writes the directory `eval`, and the
metrics file inside it is declared only at the top level (`metrics: [eval/metrics.json]`).
"""

from __future__ import annotations

from typing import Any

from tests.cli.support import _error, _json, _ok
from tests.conftest import Project, dvc_yaml

EVALUATE = """\
import json, os, yaml
seed = yaml.safe_load(open("params.yaml"))["train"]["seed"]
os.makedirs("eval/plots", exist_ok=True)
json.dump({"avg_prec": {"test": seed / 10}, "roc_auc": 0.5}, open("eval/metrics.json", "w"))
json.dump([{"fpr": 0, "tpr": 0}, {"fpr": 1, "tpr": 1}], open("eval/plots/roc.json", "w"))
open("eval/model.pkl", "w").write(str(seed))
"""

MANIFEST = """\
stages:
  evaluate:
    cmd: python src/evaluate.py
    deps: [src/evaluate.py]
    params: [train.seed]
    outs: [eval]
params:
  - report.yaml
metrics:
  - eval/metrics.json
plots:
  - ROC:
      template: simple
      x: fpr
      y:
        eval/plots/roc.json: tpr
  - eval/plots/roc.json:
      x: fpr
      y: [tpr]
  - eval/importance.png
artifacts:
  model:
    path: eval/model.pkl
    type: model
    desc: the evaluated model
    labels: [demo]
"""


def _get_started(dvc: Project) -> Project:
    dvc_yaml(dvc, MANIFEST)
    dvc.write("src/evaluate.py", EVALUATE)
    dvc.params({"train": {"seed": 1}})
    dvc.write("report.yaml", "report:\n  title: first\n")
    _ok(dvc.cli("repro"))
    dvc.commit()
    return dvc


def test_metrics_show_lists_a_file_declared_only_at_the_top_level(dvc: Project) -> None:
    project = _get_started(dvc)
    expected = {"eval/metrics.json:avg_prec.test": 0.1, "eval/metrics.json:roc_auc": 0.5}
    assert _json(project.cli("metrics", "show", "--json")) == expected
    # the file is inside the cached `eval` out, so HEAD's value comes from the cache
    assert not project.git("ls-files", "eval")
    assert _json(project.cli("metrics", "show", "HEAD", "--json")) == expected
    text = _ok(project.cli("metrics", "show")).stdout
    assert "eval/metrics.json:avg_prec.test = 0.1" in text


def test_metrics_diff_between_two_commits_shows_the_change(dvc: Project) -> None:
    project = _get_started(dvc)
    project.params({"train": {"seed": 5}})
    _ok(project.cli("repro"))
    project.commit()
    diff = _json(project.cli("metrics", "diff", "HEAD~1", "HEAD", "--json"))
    assert diff["changes"] == {
        "eval/metrics.json:avg_prec.test": {"old": 0.1, "new": 0.5, "change": 0.4},
    }
    text = _ok(project.cli("metrics", "diff", "HEAD~1", "HEAD")).stdout
    assert "eval/metrics.json:avg_prec.test" in text


def test_compare_shows_top_level_metrics_of_each_run(dvc: Project) -> None:
    project = _get_started(dvc)
    project.params({"train": {"seed": 3}})
    _ok(project.cli("repro"))
    table = _json(project.cli("compare", "--json", "--all-columns"))
    found = sorted(_metric(row, "avg_prec.test") for row in table)
    assert found == [0.1, 0.3]


GATED = """\
stages:
  gate:
    cmd: python gate.py
    deps: [gate.py, gate.txt]
    outs: [gate.ok]
  score:
    cmd: python score.py
    deps: [score.py, gate.ok]
    outs: [out]
metrics: [out/m.json]
"""
GATE = "import sys\nopen('gate.ok', 'w')\nsys.exit(open('gate.txt').read() != 'open')\n"
SCORE = (
    "import os\nos.makedirs('out', exist_ok=True)\nopen('out/m.json', 'w').write('{\"s\": 1}')\n"
)


def test_a_run_whose_stage_was_skipped_is_not_credited_with_its_old_metrics(
    dvc: Project,
) -> None:
    dvc_yaml(dvc, GATED)
    dvc.write("gate.py", GATE)
    dvc.write("score.py", SCORE)
    dvc.write("gate.txt", "open")
    _ok(dvc.cli("repro"))
    dvc.write("gate.txt", "shut")
    assert dvc.cli("repro").returncode != 0  # gate fails, score is skipped
    assert dvc.exists("out/m.json")  # the last good run's file is still there
    assert _json(dvc.cli("metrics", "show", "--json")) == {"out/m.json:s": 1}
    latest = _json(dvc.cli("compare", "--json", "--all-columns", "-n", "2"))
    assert sorted((row["status"], row["metrics"]) for row in latest) == [
        ("failed", {"s": None}),
        ("succeeded", {"s": 1}),
    ]


def _metric(row: dict[str, Any], name: str) -> Any:
    return next(v for k, v in row["metrics"].items() if k.endswith(name))


def test_params_diff_includes_the_top_level_params_files(dvc: Project) -> None:
    project = _get_started(dvc)
    project.write("report.yaml", "report:\n  title: second\n")
    diff = _json(project.cli("params", "diff", "--json"))
    assert diff["changes"] == {
        "report.yaml:report.title": {"old": "first", "new": "second", "change": None},
    }
    shown = _json(project.cli("params", "diff", "--all", "--json"))["changes"]
    assert shown["train.seed"] == {"old": 1, "new": 1, "change": 0.0}


def test_a_top_level_metrics_file_no_stage_writes_is_shown_too(dvc: Project) -> None:
    dvc_yaml(dvc, "stages:\n  s:\n    cmd: echo hi\nmetrics: [./scores/../manual.json]\n")
    dvc.write("manual.json", '{"accuracy": 0.75}')
    assert _json(dvc.cli("metrics", "show", "--json")) == {"manual.json:accuracy": 0.75}


def test_a_bad_artifacts_entry_names_its_file_and_line(dvc: Project) -> None:
    dvc_yaml(
        dvc, "stages:\n  s:\n    cmd: echo\nartifacts:\n  model:\n    path: m.pkl\n    typ: x\n"
    )
    lines = _error(dvc.cli("status"), 2)
    assert lines[0] == "error: dvc.yaml:7:5: artifacts.model.typ: unknown key 'typ'"
    assert lines[1] == "hint: did you mean 'type'?"


def test_artifacts_and_every_dvc_plot_form_are_accepted(dvc: Project) -> None:
    project = _get_started(dvc)
    _ok(project.cli("status"))
    from pipeline import api

    declared = api.load_project(project.root).declared
    assert [p.id for p in declared.plots] == ["ROC", "eval/plots/roc.json", "eval/importance.png"]
    assert declared.plots[0].props["y"] == {"eval/plots/roc.json": "tpr"}
    (model,) = declared.artifacts
    assert (model.name, model.path, model.type, model.labels) == (
        "model",
        "eval/model.pkl",
        "model",
        ("demo",),
    )
