"""Loading a project from dvc.yaml, read unchanged: every documented field loads and runs, no
`.dvc/` folder is needed, and an `MLproject` next to it wins (`-f` picks one).

The fixtures are written from DVC's documented dvc.yaml format, as a DVC user would write them.
"""

from __future__ import annotations

import json

import yaml

from pipeline.api import ReproOptions, plan, repro
from pipeline.load.project import load_project
from tests.conftest import Project, dvc_yaml, ran, record

EVERY_FIELD = """\
vars:
  - config.json:thresh
  - inline: {greeting: hello}
params:
  - params.yaml
metrics:
  - eval/metrics.json
plots:
  - eval/roc.csv
  - confusion:
      template: confusion
      x: actual
      y: {eval/confusion.csv: predicted}
artifacts:
  model:
    path: models/model.pkl
    type: model
    desc: the classifier
    labels: [tabular]
datasets:
  - name: raw
    type: url
    url: https://example.com/raw.csv
stages:
  prepare:
    desc: split the data
    meta: {owner: data-team, tags: [a, b]}
    wdir: .
    vars:
      - local: {split: 0.2}
    cmd:
      - mkdir -p data
      - echo ${local.split} ${thresh} > data/prepared.txt
    deps: [raw.txt]
    params:
      - prepare.seed
      - config.json: [thresh]
    outs:
      - data/prepared.txt:
          cache: true
          persist: false
          push: true
          remote: myremote
          desc: prepared data
          type: dataset
          labels: [x]
          meta: {rows: 3}
  train:
    cmd: >-
      python -c "import sys; open('models/model.pkl', 'w').write(' '.join(sys.argv[1:]))"
      ${train}
    deps: [data/prepared.txt]
    params: [train]
    outs: [models/model.pkl]
    frozen: false
    always_changed: false
  evaluate:
    cmd: >-
      mkdir -p eval &&
      echo '{"acc": 0.9}' > eval/metrics.json &&
      printf 'fpr,tpr\\n0,0\\n1,1\\n' > eval/roc.csv &&
      printf 'actual,predicted\\n1,1\\n' > eval/confusion.csv
    deps: [models/model.pkl]
    metrics:
      - eval/metrics.json:
          cache: false
    plots:
      - eval/roc.csv:
          cache: false
          x: fpr
          y: tpr
          x_label: False positive rate
          y_label: True positive rate
          title: ROC
          template: linear
          header: true
      - eval/confusion.csv:
          cache: false
"""


def write_every_field(project: Project) -> None:
    dvc_yaml(project, EVERY_FIELD)
    project.params(
        {
            "prepare": {"seed": 1},
            "train": {
                "lr": 0.1,
                "epochs": 3,
                "aug": {"flip": True},
                "dbg": False,
                "layers": [64, 32],
                "name": "my run",
            },
        }
    )
    project.write("config.json", json.dumps({"thresh": 0.5, "other": 1}))
    project.write("raw.txt", "raw\n")


def test_every_documented_field_loads_and_runs(dvc: Project) -> None:
    write_every_field(dvc)
    result = repro(ReproOptions(root=dvc.root))
    assert ran(result) == ["prepare", "train", "evaluate"]
    assert dvc.read("data/prepared.txt") == "0.2 0.5\n"
    assert dvc.read("models/model.pkl") == (
        "--lr 0.1 --epochs 3 --aug.flip --layers 64 32 --name my run"
    )
    project = load_project(dvc.root)
    assert project.metrics_files == ("eval/metrics.json",)
    assert project.params_files == ("params.yaml",)
    kinds = {o.path: o.kind for o in project.stages["evaluate"].outs}
    assert kinds == {
        "eval/metrics.json": "metrics",
        "eval/roc.csv": "plots",
        "eval/confusion.csv": "plots",
    }
    out = project.stages["prepare"].outs[0]
    assert (out.remote, out.push, out.cache) == ("myremote", True, True)


def test_runs_without_a_dvc_folder_and_leaves_dvc_files_alone(dvc: Project) -> None:
    write_every_field(dvc)
    dvc.write("dvc.lock", "schema: '2.0'\nstages: {}\n")
    before = dvc.read("dvc.lock")
    repro(ReproOptions(root=dvc.root))
    assert not dvc.exists(".dvc")
    assert dvc.read("dvc.lock") == before
    assert set(yaml.safe_load(dvc.read("pipeline.lock"))["stages"]) == {
        "prepare",
        "train",
        "evaluate",
    }
    assert plan(ReproOptions(root=dvc.root)).stale == []


def test_mlproject_wins_over_dvc_yaml_and_dash_f_picks_one(dvc: Project) -> None:
    dvc_yaml(dvc, f"stages:\n  from_dvc:\n    cmd: {record('from_dvc')}\n")
    dvc.manifest(f"stages:\n  from_mlproject:\n    cmd: {record('from_mlproject')}\n")
    assert list(load_project(dvc.root).stages) == ["from_mlproject"]
    done = dvc.cli("-f", "dvc.yaml", "repro")
    assert done.returncode == 0, done.stderr
    assert dvc.executions() == ["from_dvc"]
