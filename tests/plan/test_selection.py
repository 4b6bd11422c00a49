"""Which stages a command acts on: targets bring their upstream along (not through a frozen
stage), `foreach` groups, `file:stage`, `-s`/`--single-item`, `--downstream`, and `--force`
with targets.
"""

from __future__ import annotations

import pytest

from pipeline.api import ReproOptions, plan, repro
from pipeline.errors import UsageError
from tests.conftest import Project, dvc_yaml, ran, record
from tests.plan.support import CHAIN


def test_targets_select_the_stage_and_its_upstream(chain: Project) -> None:
    assert chain.plan("evaluate").order == ("prepare", "train", "evaluate")
    assert chain.plan("other").order == ("other",)
    assert chain.plan("other", "train").order == ("prepare", "other", "train")


@pytest.mark.parametrize(
    ("target", "hint"),
    [("trian", "did you mean 'train'?"), ("zzz", "`pipeline dag` lists the stages")],
)
def test_unknown_target(chain: Project, target: str, hint: str) -> None:
    with pytest.raises(UsageError) as exc:
        chain.plan(target)
    assert exc.value.message == f"unknown stage {target!r}"
    assert exc.value.hint == hint
    assert exc.value.exit_code == 2


def test_frozen_stage_does_not_bring_its_upstream_along(p: Project) -> None:
    p.manifest(
        {
            "stages": {
                "up": {"cmd": f"{record('up')}; echo > up.txt", "outs": ["up.txt"]},
                "f": {"cmd": "echo", "deps": ["up.txt"], "outs": ["f.txt"], "frozen": True},
            }
        }
    )
    p.write("f.txt", "kept\n")
    assert list(plan(ReproOptions(root=p.root, targets=("f",))).order) == ["f"]


def test_single_item_runs_only_the_target(p: Project) -> None:
    p.manifest(CHAIN)
    repro(ReproOptions(root=p.root))
    p.clear_executions()
    p.write("a.txt", "changed\n")  # a is stale now, but -s b does not look upstream
    result = repro(ReproOptions(root=p.root, targets=("b",), single_item=True, force=True))
    assert ran(result) == ["b"]
    assert p.read("b.txt") == "changed\n"


def test_downstream_runs_the_target_and_what_depends_on_it(p: Project) -> None:
    p.manifest(CHAIN)
    repro(ReproOptions(root=p.root))
    assert plan(ReproOptions(root=p.root, targets=("b",), downstream=True)).order == ("b", "c")


def test_force_forces_upstream_too_unless_single_item(p: Project) -> None:
    p.manifest(CHAIN)
    repro(ReproOptions(root=p.root))
    p.clear_executions()
    repro(ReproOptions(root=p.root, targets=("b",), force=True))
    assert p.executions() == ["a", "b"]


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


def test_force_with_a_target_forces_it_and_the_upstream_it_brings(chain_done: Project) -> None:
    # as in DVC: -f forces every selected stage, the target and its upstream
    result = chain_done.repro("train", force=True)
    assert [r.stage for r in result.results] == ["prepare", "train"]
    assert ran(result) == ["prepare", "train"]
    assert chain_done.executions() == ["prepare", "train"]


def test_a_target_runs_only_that_stage_and_its_upstream(chain: Project) -> None:
    result = chain.repro("train")
    assert [r.stage for r in result.results] == ["prepare", "train"]
    assert ran(result) == ["prepare", "train"]
    assert chain.executions() == ["prepare", "train"]
    assert not chain.exists("score.txt")
    assert not chain.exists("other.out")
    assert sorted(chain.lock()["stages"]) == ["prepare", "train"]
