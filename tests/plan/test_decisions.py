"""Planning: every reason a stage is stale (deps, params, outs, cmd, env, definition, frozen,
always_changed), upstream waiting, forcing, and never running.
"""

from __future__ import annotations

import copy
from typing import Any

from pipeline.api import ReproOptions, plan, repro
from pipeline.plan.decisions import Action, Reason
from tests.conftest import CHAIN_ORDER, CHAIN_PARAMS, Project, chain_manifest, ran, reasons, record
from tests.env.support import (
    SHOW_PY,
    EnvCache,
    json_of,
    ok,
    repro_ok,
    show_stage,
    shown,
    write_yaml,
)


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


# -- frozen, always_changed, and a changed definition ------------------------------------------


def test_frozen_stage_never_runs_while_its_outputs_exist(p: Project) -> None:
    p.write("in.txt", "1\n")
    p.manifest(
        {
            "stages": {
                "f": {
                    "cmd": f"{record('f')}; cp in.txt out.txt",
                    "deps": ["in.txt"],
                    "outs": ["out.txt"],
                    "frozen": True,
                }
            }
        }
    )
    p.write("out.txt", "made by hand\n")
    assert ran(repro(ReproOptions(root=p.root, force=True))) == []
    p.write("in.txt", "2\n")
    assert plan(ReproOptions(root=p.root)).stale == []
    assert p.executions() == []


def test_always_changed_runs_every_time_but_downstream_only_on_new_bytes(p: Project) -> None:
    p.manifest(
        {
            "stages": {
                "always": {
                    "cmd": f"{record('always')}; echo same > a.txt",
                    "outs": ["a.txt"],
                    "always_changed": True,
                },
                "down": {
                    "cmd": f"{record('down')}; cp a.txt d.txt",
                    "deps": ["a.txt"],
                    "outs": ["d.txt"],
                },
            }
        }
    )
    repro(ReproOptions(root=p.root))
    p.clear_executions()
    assert reasons(plan(ReproOptions(root=p.root)), "always") == ["always changed"]
    result = repro(ReproOptions(root=p.root))
    assert ran(result) == ["always"]
    assert p.executions() == ["always"]


def test_definition_changes_rerun_a_stage(p: Project) -> None:
    p.write("x.txt", "x\n")
    p.write("y.txt", "y\n")
    p.params({"k": 1, "j": 2})

    def define(deps: list[str], params: list[str], out: str) -> None:
        stage = {"cmd": "cat x.txt > o.txt", "deps": deps, "params": params, "outs": [out]}
        p.manifest({"stages": {"s": stage}})

    define(["x.txt", "y.txt"], ["k", "j"], "o.txt")
    repro(ReproOptions(root=p.root))
    define(["x.txt"], ["k"], "o.txt")
    assert reasons(plan(ReproOptions(root=p.root)), "s") == ["param j removed", "dep y.txt removed"]
    repro(ReproOptions(root=p.root))
    define(["x.txt"], ["k"], "o2.txt")
    assert reasons(plan(ReproOptions(root=p.root)), "s") == [
        "out o2.txt added",
        "out o.txt removed",
    ]


# -- environments ------------------------------------------------------------------------------


def test_stage_gaining_an_env_reruns_with_reason_env_changed(
    project: Project, cache: EnvCache
) -> None:
    """A stage that gains an env (same command) reruns for that reason alone."""
    project.write("show.py", SHOW_PY)
    project.manifest({"stages": {"a": show_stage("a")}})
    repro_ok(project)
    assert "env" not in project.lock()["stages"]["a"]
    write_yaml(project, "python_env.yaml", {"dependencies": ["beta"]})
    project.manifest({"python_env": "python_env.yaml", "stages": {"a": show_stage("a")}})
    status = json_of(project.cli("status", "--json"))
    assert status["stages"][0]["reasons"] == [
        {"kind": "env changed", "text": "env default changed", "subject": "default"}
    ]
    ok(project.cli("repro"))
    assert cache.contains(shown(project, "a")["prefix"])
    assert project.lock()["stages"]["a"]["env"].startswith("xxh3_128:")
