"""`foreach`/`do` and `matrix` (dvc.yaml): one entry becomes many stages, named by DVC's rules;
two members with one name are never silently merged.
"""

from __future__ import annotations

import pytest

from pipeline.api import ReproOptions, repro
from pipeline.errors import ManifestError
from pipeline.load.project import load_project
from tests.conftest import Project, dvc_yaml


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


def test_matrix_name_collision_is_not_silent(p: Project) -> None:
    p.manifest(
        "stages:\n"
        "  m:\n"
        "    matrix:\n"
        "      a: [x-y, x]\n"
        "      b: [z, y-z]\n"
        '    cmd: echo ${item.a} ${item.b} > "o_${item.a}_${item.b}.txt"\n'
        '    outs: ["o_${item.a}_${item.b}.txt"]\n'
    )
    # 4 combinations; (x-y, z) and (x, y-z) are both named m@x-y-z.
    with pytest.raises(ManifestError, match=r"stages\.m: two stages are named 'm@x-y-z'") as info:
        p.plan()
    assert info.value.hint == "make foreach keys or matrix values distinct"
