"""Planning: every reason a stage is stale, upstream waiting, targets, and never running."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import CHAIN_ORDER, CHAIN_PARAMS, Project, chain_manifest, reasons, record

from pipeline.errors import UsageError
from pipeline.plan.decisions import Action, Reason


def _edit_stage(project: Project, stage: str, **fields: Any) -> None:
    manifest = chain_manifest()
    manifest["stages"][stage].update(fields)
    project.manifest(manifest)


def test_plan_of_a_new_project(chain: Project) -> None:
    plan = chain.plan()
    assert plan.order == tuple(CHAIN_ORDER)
    assert {name: reasons(plan, name) for name in CHAIN_ORDER} == {
        name: ["new stage"] for name in CHAIN_ORDER
    }
    assert [d.action for d in plan.stale] == [Action.RUN] * 4
    assert chain.executions() == []
    assert not chain.exists("pipeline.lock")
    assert not chain.exists("data/prepared.txt")


def test_plan_after_a_run_is_up_to_date(chain_done: Project) -> None:
    plan = chain_done.plan()
    assert plan.stale == []
    assert all(d.action is Action.UP_TO_DATE and d.reasons == () for d in plan.decisions.values())


def test_dep_modified(chain_done: Project) -> None:
    chain_done.write("raw.txt", "raw 2\n")
    plan = chain_done.plan()
    assert reasons(plan, "prepare") == ["dep raw.txt modified"]
    assert plan.decisions["train"].action is Action.AFTER_UPSTREAM
    assert reasons(plan, "train") == ["upstream prepare will run"]
    assert plan.decisions["evaluate"].action is Action.AFTER_UPSTREAM
    assert reasons(plan, "evaluate") == ["upstream train will run"]
    assert plan.decisions["other"].action is Action.UP_TO_DATE
    assert chain_done.executions() == []


def test_dep_added(chain_done: Project) -> None:
    chain_done.write("extra.txt", "extra\n")
    _edit_stage(chain_done, "other", deps=["other.txt", "extra.txt"])
    assert reasons(chain_done.plan(), "other") == ["dep extra.txt added"]


def test_dep_removed(chain_done: Project) -> None:
    _edit_stage(chain_done, "other", deps=[])
    assert reasons(chain_done.plan(), "other") == ["dep other.txt removed"]


def test_dep_missing(chain_done: Project) -> None:
    (chain_done.root / "other.txt").unlink()
    assert reasons(chain_done.plan(), "other") == ["dep other.txt missing"]


def test_param_changed_shows_old_and_new_values(chain_done: Project) -> None:
    params = copy.deepcopy(CHAIN_PARAMS)
    params["train"]["lr"] = 0.01
    params["tag"] = "b"
    chain_done.params(params)
    plan = chain_done.plan()
    assert reasons(plan, "train") == ["param train.lr 0.1→0.01"]
    assert plan.decisions["train"].reasons[0] == Reason("param changed", "train.lr", 0.1, 0.01)
    assert "param tag 'a'→'b'" in reasons(plan, "other")
    assert plan.decisions["prepare"].action is Action.UP_TO_DATE


def test_param_type_change_is_a_change(chain_done: Project) -> None:
    params = copy.deepcopy(CHAIN_PARAMS)
    params["train"]["lr"] = "0.1"  # same text, now a string
    chain_done.params(params)
    assert reasons(chain_done.plan(), "train") == ["param train.lr 0.1→'0.1'"]


def test_param_added_and_removed(project: Project) -> None:
    project.params({"train": {"lr": 0.1, "momentum": 0.9}})
    project.manifest(
        {"stages": {"t": {"cmd": "echo t > t.txt", "params": ["train"], "outs": ["t.txt"]}}}
    )
    project.repro()
    project.params({"train": {"lr": 0.1, "dropout": 0.5}})
    assert reasons(project.plan(), "t") == [
        "param train.dropout added",
        "param train.momentum removed",
    ]


def test_out_modified(chain_done: Project) -> None:
    chain_done.write("model.txt", "tampered\n")
    plan = chain_done.plan()
    assert reasons(plan, "train") == ["out model.txt modified"]
    assert plan.decisions["evaluate"].action is Action.AFTER_UPSTREAM


def test_out_missing(chain_done: Project) -> None:
    (chain_done.root / "score.txt").unlink()
    assert reasons(chain_done.plan(), "evaluate") == ["out score.txt missing"]


def test_out_added_and_removed(chain_done: Project) -> None:
    _edit_stage(chain_done, "other", outs=[], metrics=["other.out"])
    assert chain_done.plan().stale == []  # an out moved to metrics is still the same out
    _edit_stage(chain_done, "other", outs=["other.out", "more.out"])
    assert reasons(chain_done.plan(), "other") == ["out more.out added"]
    _edit_stage(chain_done, "other", outs=[])
    assert reasons(chain_done.plan(), "other") == ["out other.out removed"]


def test_cmd_changed(chain_done: Project) -> None:
    _edit_stage(
        chain_done, "other", cmd="{ echo ${tag}; cat other.txt; } > other.out && " + record("other")
    )
    plan = chain_done.plan()
    assert reasons(plan, "other") == ["cmd changed"]
    assert [d.stage for d in plan.stale] == ["other"]


def test_tampered_fingerprint_is_a_definition_change(chain_done: Project) -> None:
    text = chain_done.read("pipeline.lock")
    lock = chain_done.lock()
    fingerprint = lock["stages"]["other"]["fingerprint"]
    chain_done.write("pipeline.lock", text.replace(fingerprint, "xxh3_128:" + "0" * 32))
    assert reasons(chain_done.plan(), "other") == ["definition changed"]


def test_new_stage_in_an_existing_project(chain_done: Project) -> None:
    manifest = chain_manifest()
    manifest["stages"]["extra"] = {"cmd": "echo e > e.txt", "outs": ["e.txt"]}
    chain_done.manifest(manifest)
    plan = chain_done.plan()
    assert [d.stage for d in plan.stale] == ["extra"]
    assert reasons(plan, "extra") == ["new stage"]


def test_force_marks_the_selected_stages_forced(chain_done: Project) -> None:
    plan = chain_done.plan("train", force=True)
    assert plan.order == ("prepare", "train")
    assert plan.forced == frozenset({"prepare", "train"})
    assert reasons(plan, "prepare") == reasons(plan, "train") == ["forced"]
    assert chain_done.plan("train").stale == []


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


def test_reason_rendering_and_json() -> None:
    assert str(Reason("param changed", "lr", "a", 2)) == "param lr 'a'→2"
    assert Reason("param changed", "lr", 0.1, 0.2).to_json() == {
        "kind": "param changed",
        "text": "param lr 0.1→0.2",
        "subject": "lr",
        "old": 0.1,
        "new": 0.2,
    }
    assert str(Reason("dep modified", "a.csv")) == "dep a.csv modified"
    assert str(Reason("out missing", "m.pkl")) == "out m.pkl missing"
    assert str(Reason("upstream", "prepare")) == "upstream prepare will run"
    assert Reason("forced").to_json() == {"kind": "forced", "text": "forced"}


def test_nan_param_is_up_to_date_after_a_run(project: Project) -> None:
    project.params("v: .nan\n")
    project.manifest({"stages": {"s": {"cmd": "echo ${v} > s.txt", "outs": ["s.txt"]}}})
    project.repro()
    assert project.read("s.txt") == "nan\n"
    plan = project.plan()
    assert reasons(plan, "s") == []
