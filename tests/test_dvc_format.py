"""dvc.yaml read unchanged: every stage field, vars, params files, foreach/matrix, templating.

The fixtures are written from DVC's documented dvc.yaml format, as a DVC user would write them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import pytest
import yaml

from pipeline.api import ReproOptions, plan, repro
from pipeline.errors import ManifestError
from pipeline.load.project import load_project
from tests.conftest import Project, ran, reasons, record


@pytest.fixture
def dvc(make_project: Callable[..., Project]) -> Project:
    return make_project("dvc")


def dvc_yaml(project: Project, text: str) -> None:
    project.write("dvc.yaml", text)


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


def test_params_from_json_toml_and_python_files(dvc: Project) -> None:
    dvc.write("conf.json", json.dumps({"a": {"b": 1}, "c": 2}))
    dvc.write("conf.toml", "seed = 7\n[opt]\nmomentum = 0.9\n")
    dvc.write(
        "conf.py",
        "BATCH = 32\nSKIPPED = len('x')\nclass Cfg:\n    depth = 4\n"
        "    def __init__(self):\n        self.lr = 0.5\n",
    )
    dvc_yaml(
        dvc,
        """\
stages:
  s:
    cmd: echo > out.txt
    params:
      - conf.json: [a.b]
      - conf.toml: [opt.momentum, seed]
      - conf.py: [BATCH, Cfg.depth, Cfg.lr]
    outs: [out.txt]
""",
    )
    stage = load_project(dvc.root).stages["s"]
    assert stage.params == {
        "conf.json": {"a.b": 1},
        "conf.py": {"BATCH": 32, "Cfg.depth": 4, "Cfg.lr": 0.5},
        "conf.toml": {"opt.momentum": 0.9, "seed": 7},
    }
    repro(ReproOptions(root=dvc.root))
    dvc.write("conf.toml", "seed = 8\n[opt]\nmomentum = 0.9\n")
    assert reasons(plan(ReproOptions(root=dvc.root)), "s") == ["param conf.toml:seed 7→8"]


def test_python_params_file_is_never_executed(dvc: Project) -> None:
    marker = dvc.root.parent / "executed"
    dvc.write("conf.py", f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nX = 1\n")
    dvc_yaml(dvc, "stages:\n  s:\n    cmd: echo\n    params:\n      - conf.py: [X]\n")
    assert load_project(dvc.root).stages["s"].params == {"conf.py": {"X": 1}}
    assert not marker.exists()


def test_whole_file_params_track_every_leaf(dvc: Project) -> None:
    dvc.write("all.json", json.dumps({"x": 1, "y": {"z": [1, 2]}}))
    dvc_yaml(
        dvc, "stages:\n  s:\n    cmd: echo > o\n    outs: [o]\n    params:\n      - all.json:\n"
    )
    assert load_project(dvc.root).stages["s"].params == {"all.json": {"x": 1, "y.z": [1, 2]}}
    repro(ReproOptions(root=dvc.root))
    dvc.write("all.json", json.dumps({"x": 1, "y": {"z": [1, 2]}, "new": True}))
    assert reasons(plan(ReproOptions(root=dvc.root)), "s") == ["param all.json:new added"]


def test_foreach_over_a_list_names_members_by_value(dvc: Project) -> None:
    dvc.params({"models": ["cnn", "xgb"]})
    dvc_yaml(
        dvc,
        """\
stages:
  build:
    foreach: ${models}
    do:
      cmd: echo ${item} > ${item}.txt
      outs: ["${item}.txt"]
""",
    )
    assert list(load_project(dvc.root).stages) == ["build@cnn", "build@xgb"]
    repro(ReproOptions(root=dvc.root))
    assert dvc.read("xgb.txt") == "xgb\n"


def test_foreach_over_a_mapping_sets_key_and_item(dvc: Project) -> None:
    dvc_yaml(
        dvc,
        """\
stages:
  region:
    foreach:
      uk: {epochs: 3}
      us: {epochs: 10}
    do:
      cmd: echo ${key} ${item.epochs} > ${key}.txt
      outs: ["${key}.txt"]
""",
    )
    stages = load_project(dvc.root).stages
    assert list(stages) == ["region@uk", "region@us"]
    assert stages["region@us"].cmd == ("echo us 10 > us.txt",)


def test_foreach_over_a_list_of_mappings_names_members_by_index(dvc: Project) -> None:
    dvc_yaml(
        dvc,
        """\
stages:
  train:
    foreach:
      - {lr: 0.1, name: a}
      - {lr: 0.2, name: b}
    do:
      cmd: echo ${item.lr} > ${item.name}.txt
      outs: ["${item.name}.txt"]
""",
    )
    stages = load_project(dvc.root).stages
    assert list(stages) == ["train@0", "train@1"]
    assert stages["train@1"].cmd == ("echo 0.2 > b.txt",)


def test_matrix_names_follow_key_order_and_index_non_scalars(dvc: Project) -> None:
    dvc_yaml(
        dvc,
        """\
stages:
  train:
    matrix:
      model: [cnn, xgb]
      cfg: [{depth: 1}, {depth: 2}]
    cmd: echo ${item.model} ${item.cfg.depth} ${key} > ${key}.txt
    outs: ["${key}.txt"]
""",
    )
    stages = load_project(dvc.root).stages
    assert list(stages) == ["train@cnn-cfg0", "train@cnn-cfg1", "train@xgb-cfg0", "train@xgb-cfg1"]
    assert stages["train@xgb-cfg1"].cmd == ("echo xgb 2 xgb-cfg1 > xgb-cfg1.txt",)


def test_a_group_name_targets_all_its_members(dvc: Project) -> None:
    dvc_yaml(
        dvc,
        f"""\
stages:
  build:
    foreach: [a, b]
    do:
      cmd: {record("${item}")}
  other:
    cmd: {record("other")}
""",
    )
    result = repro(ReproOptions(root=dvc.root, targets=("build",)))
    assert sorted(ran(result)) == ["build@a", "build@b"]
    assert sorted(dvc.executions()) == ["a", "b"]


def test_file_colon_stage_targets(dvc: Project) -> None:
    dvc_yaml(dvc, f"stages:\n  a:\n    cmd: {record('a')}\n  b:\n    cmd: {record('b')}\n")
    done = dvc.cli("repro", "dvc.yaml:b")
    assert done.returncode == 0, done.stderr
    assert dvc.executions() == ["b"]
    wrong = dvc.cli("repro", "other.yaml:b")
    assert wrong.returncode == 2
    assert "this project's manifest is dvc.yaml" in wrong.stderr


def test_vars_from_a_file_with_selected_keys_and_their_tracking(dvc: Project) -> None:
    dvc.write("conf.yaml", "thresh: 0.5\nunused: 1\n")
    dvc_yaml(
        dvc,
        """\
vars:
  - conf.yaml:thresh
  - {label: inline}
stages:
  s:
    cmd: echo ${thresh} ${label} > o.txt
    outs: [o.txt]
""",
    )
    stage = load_project(dvc.root).stages["s"]
    assert stage.cmd == ("echo 0.5 inline > o.txt",)
    assert stage.params == {"conf.yaml": {"thresh": 0.5}}  # inline vars are definition


def test_redefining_a_value_from_two_sources_is_an_error(dvc: Project) -> None:
    dvc.params({"lr": 0.1})
    dvc_yaml(dvc, "vars:\n  - {lr: 0.2}\nstages:\n  s:\n    cmd: echo ${lr}\n")
    with pytest.raises(ManifestError, match=r"dvc.yaml:2:5: vars.0: cannot redefine 'lr'"):
        load_project(dvc.root)


def test_wdir_is_where_the_command_runs_and_what_paths_are_relative_to(dvc: Project) -> None:
    dvc.write("sub/input.txt", "in\n")
    dvc.write("sub/local.yaml", "word: here\n")
    dvc_yaml(
        dvc,
        """\
stages:
  s:
    wdir: sub
    vars: [local.yaml]
    cmd: cat input.txt > output.txt && echo ${word} >> output.txt
    deps: [input.txt]
    outs: [output.txt]
""",
    )
    stage = load_project(dvc.root).stages["s"]
    assert (stage.deps, stage.out_paths) == (("sub/input.txt",), ("sub/output.txt",))
    repro(ReproOptions(root=dvc.root))
    assert dvc.read("sub/output.txt") == "in\nhere\n"


def test_dict_unpacking_quotes_values_and_follows_dvc_rules(dvc: Project) -> None:
    dvc.params(
        {
            "t": {
                "name": "my run; touch pwned",
                "on": True,
                "off": False,
                "n": None,
                "xs": [1, "a b"],
                "sub": {"k": 2},
            }
        }
    )
    argv = dvc.root / "argv.json"
    dvc_yaml(
        dvc,
        f"""\
stages:
  s:
    cmd: >-
      {sys.executable} -c "import json, sys; json.dump(sys.argv[1:], open('argv.json', 'w'))"
      ${{t}}
""",
    )
    repro(ReproOptions(root=dvc.root))
    assert json.loads(argv.read_text()) == [
        "--name",
        "my run; touch pwned",
        "--on",
        "--n",
        "None",
        "--xs",
        "1",
        "a b",
        "--sub.k",
        "2",
    ]
    assert not dvc.exists("pwned")


def test_a_whole_string_placeholder_keeps_the_value_type(dvc: Project) -> None:
    dvc.params({"flags": {"frozen": True, "retries": 2}})
    dvc_yaml(
        dvc,
        """\
stages:
  s:
    cmd: echo
    frozen: ${flags.frozen}
    retries: ${flags.retries}
""",
    )
    stage = load_project(dvc.root).stages["s"]
    assert (stage.frozen, stage.retries) == (True, 2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    foreach: 5\n    do: {cmd: echo}\n", "expected a list or a mapping, got int"),
        ("    foreach: [a]\n", "foreach without `do`"),
        ("    matrix: {m: x}\n    cmd: echo\n", "expected a list, got str"),
        ("    cmd: echo ${nope}\n", "unknown parameter 'nope'"),
        ("    cmd: echo\n    timeout: soon\n", "expected a positive duration"),
        ("    cmd: echo\n    retries: -1\n", "greater than or equal to 0"),
        ("    cmd: echo\n    resources: {gpus: 1}\n", "unknown key 'gpus'"),
        ("    cmd: echo\n    plots: [{p.csv: {xx: 1}}]\n", "unknown key 'xx'"),
        ("    cmd: echo\n    params: [{conf.json: 5}]\n", "expected a params key"),
    ],
)
def test_generator_and_field_errors_name_the_line(dvc: Project, body: str, message: str) -> None:
    dvc_yaml(dvc, "stages:\n  s:\n" + body)
    done = dvc.cli("status")
    assert done.returncode == 2
    assert done.stderr.startswith("error: dvc.yaml:"), done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
