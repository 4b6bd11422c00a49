"""`repro` end to end through the Python API: what runs, what is skipped, and why.

Every test checks both the RunResult outcomes and the execution log the stage commands write
outside the project, so "did not run" is proven by the command itself, not only by the report.
"""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from pipeline import api
from pipeline.api import ReproOptions
from pipeline.errors import DataError
from pipeline.execute.scheduler import Outcome
from pipeline.plan.decisions import Action
from tests.conftest import CHAIN_ORDER, CHAIN_PARAMS, Project, outcomes, ran, record


def _params_with(**changes: object) -> dict[str, object]:
    """CHAIN_PARAMS with dotted keys replaced: _params_with(**{"train.lr": 0.01})."""
    data = copy.deepcopy(CHAIN_PARAMS)
    for key, value in changes.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return data


# -- the core contract: run what changed, and only that ----------------------------------------


def test_first_repro_runs_every_stage_and_second_runs_none(chain: Project) -> None:
    first = chain.repro()
    assert ran(first) == CHAIN_ORDER
    log = chain.executions()
    assert sorted(log) == sorted(CHAIN_ORDER)  # `other` is independent: it may run in parallel
    assert log.index("prepare") < log.index("train") < log.index("evaluate")
    assert chain.read("data/prepared.txt") == "raw 1\nsplit=0.2\n"
    assert chain.read("score.txt").strip() == "3"

    chain.clear_executions()
    second = chain.repro()
    assert ran(second) == []
    assert outcomes(second) == dict.fromkeys(CHAIN_ORDER, Outcome.UP_TO_DATE)
    assert chain.executions() == []


def test_editing_a_dep_reruns_that_stage_and_its_dependents_only(chain_done: Project) -> None:
    chain_done.write("raw.txt", "raw 2\n")
    result = chain_done.repro()
    assert ran(result) == ["prepare", "train", "evaluate"]
    assert outcomes(result)["other"] is Outcome.UP_TO_DATE
    assert chain_done.executions() == ["prepare", "train", "evaluate"]
    assert chain_done.read("model.txt").startswith("raw 2\n")


def test_editing_an_independent_dep_reruns_only_that_stage(chain_done: Project) -> None:
    chain_done.write("other.txt", "other 2\n")
    result = chain_done.repro()
    assert ran(result) == ["other"]
    assert chain_done.executions() == ["other"]


def test_changing_a_param_listed_in_params_reruns_only_stages_using_it(
    chain_done: Project,
) -> None:
    chain_done.params(_params_with(**{"train.lr": 0.01}))
    result = chain_done.repro()
    # train tracks train.lr; evaluate runs because train's output (which holds lr) changed.
    assert ran(result) == ["train", "evaluate"]
    assert outcomes(result)["prepare"] is Outcome.UP_TO_DATE
    assert outcomes(result)["other"] is Outcome.UP_TO_DATE
    assert chain_done.executions() == ["train", "evaluate"]
    assert "lr: 0.01" in chain_done.read("model.txt")


def test_changing_a_param_templated_into_cmd_reruns_only_stages_using_it(
    chain_done: Project,
) -> None:
    chain_done.params(_params_with(tag="b"))
    result = chain_done.repro()
    assert ran(result) == ["other"]
    assert chain_done.executions() == ["other"]
    assert chain_done.read("other.out") == "other 1\nb\n"


def test_changing_a_templated_param_upstream_reruns_its_dependents(chain_done: Project) -> None:
    chain_done.params(_params_with(**{"prepare.split": 0.3}))
    result = chain_done.repro()
    assert ran(result) == ["prepare", "train", "evaluate"]
    assert chain_done.read("data/prepared.txt") == "raw 1\nsplit=0.3\n"


def test_changing_an_untracked_param_reruns_nothing(chain_done: Project) -> None:
    # train tracks only train.lr, not its sibling train.epochs
    chain_done.params(_params_with(**{"train.epochs": 99}))
    result = chain_done.repro()
    assert ran(result) == []
    assert chain_done.executions() == []


def test_changing_a_cmd_reruns_that_stage(chain_done: Project) -> None:
    manifest = chain_done.read("MLproject")
    chain_done.manifest(manifest.replace("cat other.txt;", "cat other.txt; echo more;"))
    assert [str(r) for r in chain_done.plan().decisions["other"].reasons] == ["cmd changed"]
    result = chain_done.repro()
    assert ran(result) == ["other"]
    assert chain_done.executions() == ["other"]
    assert chain_done.read("other.out") == "other 1\nmore\na\n"


def test_a_deleted_output_reruns_its_stage_without_the_run_cache(chain_done: Project) -> None:
    (chain_done.root / "model.txt").unlink()
    plan = chain_done.plan()
    assert [str(r) for r in plan.decisions["train"].reasons] == ["out model.txt missing"]
    result = api.repro(ReproOptions(root=chain_done.root, run_cache=False))
    # train writes the same bytes again, so evaluate is not rerun
    assert ran(result) == ["train"]
    assert chain_done.executions() == ["train"]
    assert chain_done.exists("model.txt")


def test_a_deleted_output_is_restored_not_rerun(chain_done: Project) -> None:
    before = chain_done.read("model.txt")
    (chain_done.root / "model.txt").unlink()
    assert chain_done.plan().decisions["train"].action is Action.RESTORE
    result = chain_done.repro()
    assert outcomes(result)["train"] is Outcome.RESTORED
    assert chain_done.executions() == []
    assert chain_done.read("model.txt") == before


def test_identical_upstream_bytes_stop_propagation(project: Project) -> None:
    project.manifest(
        {
            "stages": {
                "up": {"cmd": "printf 'same\\n' > up.txt && " + record("up"), "outs": ["up.txt"]},
                "down": {
                    "cmd": "cat up.txt > down.txt && " + record("down"),
                    "deps": ["up.txt"],
                    "outs": ["down.txt"],
                },
            }
        }
    )
    assert ran(project.repro()) == ["up", "down"]
    project.clear_executions()

    # a different command that writes the very same bytes
    project.manifest(project.read("MLproject").replace("printf 'same\\n'", "echo same"))
    plan = project.plan()
    assert plan.decisions["up"].action.value == "run"
    assert plan.decisions["down"].action.value == "after upstream"
    assert [str(r) for r in plan.decisions["down"].reasons] == ["upstream up will run"]

    result = project.repro()
    assert ran(result) == ["up"]
    down = next(r for r in result.results if r.stage == "down")
    assert down.outcome is Outcome.UP_TO_DATE
    assert [str(r) for r in down.decision.reasons] == ["upstream outputs unchanged"]
    assert project.executions() == ["up"]
    assert project.repro().count(Outcome.RAN) == 0


def test_changed_upstream_bytes_do_propagate(project: Project) -> None:
    project.manifest(
        {
            "stages": {
                "up": {"cmd": "echo one > up.txt && " + record("up"), "outs": ["up.txt"]},
                "down": {
                    "cmd": "cat up.txt > down.txt && " + record("down"),
                    "deps": ["up.txt"],
                    "outs": ["down.txt"],
                },
            }
        }
    )
    project.repro()
    project.clear_executions()
    project.manifest(project.read("MLproject").replace("echo one", "echo two"))
    assert ran(project.repro()) == ["up", "down"]
    assert project.executions() == ["up", "down"]
    assert project.read("down.txt") == "two\n"


# -- params are data, never code --------------------------------------------------------------


def test_param_value_is_passed_as_one_argument_and_never_executed(project: Project) -> None:
    project.params({"p": "x; touch pwned", "q": "$(touch pwned2) `touch pwned3` 'a' \"b\""})
    project.manifest(
        {
            "stages": {
                "show": {
                    "cmd": "python -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "
                    "${p} ${q} > argv.json && printf '%s\\n' ${p} > out.txt",
                    "outs": ["argv.json", "out.txt"],
                }
            }
        }
    )
    result = project.repro()
    assert ran(result) == ["show"]
    assert json.loads(project.read("argv.json")) == [
        "x; touch pwned",
        "$(touch pwned2) `touch pwned3` 'a' \"b\"",
    ]
    assert project.read("out.txt") == "x; touch pwned\n"
    for name in ("pwned", "pwned2", "pwned3"):
        assert not (project.root / name).exists()
        assert not (project.root.parent / name).exists()


PAYLOAD = "x; touch pwned 'a' \"b\" $(touch pwned2) `touch pwned3` \\ $HOME"


@pytest.mark.parametrize(
    "template",
    [
        "printf '%s\\n' ${p} > out.txt",
        'printf "%s\\n" "${p}" > out.txt',
        "printf '%s\\n' '${p}' > out.txt",
        "printf '%s\\n' \"pre ${p} post\" | sed 's/^pre //; s/ post$//' > out.txt",
    ],
    ids=["bare", "double-quoted", "single-quoted", "inside-a-longer-double-quoted-word"],
)
def test_param_value_is_data_in_every_quoting_context(project: Project, template: str) -> None:
    project.params({"p": PAYLOAD})
    project.manifest({"stages": {"show": {"cmd": template, "outs": ["out.txt"]}}})
    assert ran(project.repro()) == ["show"]
    assert project.read("out.txt") == PAYLOAD + "\n"
    for name in ("pwned", "pwned2", "pwned3"):
        assert not (project.root / name).exists()


# Positions where the quoting once let a value run as code (found by this suite, now fixed).


def _injection_attempt(project: Project, cmd: str, value: str) -> None:
    project.params({"p": value})
    project.manifest({"stages": {"show": {"cmd": cmd, "outs": ["out.txt"]}}})
    project.repro()


def test_param_after_a_comment_with_an_apostrophe_is_not_executed(project: Project) -> None:
    cmd = "# don't print a banner\nprintf '%s\\n' ${p} > out.txt\n"
    _injection_attempt(project, cmd, "x; touch pwned")
    assert not (project.root / "pwned").exists()
    assert project.read("out.txt") == "x; touch pwned\n"


def test_param_in_a_heredoc_is_not_executed(project: Project) -> None:
    cmd = "cat > out.txt <<EOF\n${p}\nEOF\n"
    _injection_attempt(project, cmd, "$(touch pwned)")
    assert not (project.root / "pwned").exists()
    assert project.read("out.txt") == "$(touch pwned)\n"


def test_param_in_command_substitution_inside_double_quotes_is_not_executed(
    project: Project,
) -> None:
    cmd = "echo \"$(printf '%s' '${p}')\" > out.txt"
    _injection_attempt(project, cmd, "x'; touch pwned; echo '")
    assert not (project.root / "pwned").exists()
    assert project.read("out.txt") == "x'; touch pwned; echo '\n"


# -- failures ---------------------------------------------------------------------------------


def _three_stages(project: Project, middle_cmd: str) -> None:
    project.manifest(
        {
            "stages": {
                "a": {"cmd": "echo a > a.txt && " + record("a"), "outs": ["a.txt"]},
                "b": {
                    "cmd": record("b") + " && " + middle_cmd,
                    "deps": ["a.txt"],
                    "outs": ["b.txt"],
                },
                "c": {
                    "cmd": "cat b.txt > c.txt && " + record("c"),
                    "deps": ["b.txt"],
                    "outs": ["c.txt"],
                },
            }
        }
    )


def test_a_failing_command_stops_the_run_and_keeps_earlier_stages_in_the_lock(
    project: Project,
) -> None:
    _three_stages(project, "echo boom; exit 3")
    result = project.repro()
    assert outcomes(result) == {"a": Outcome.RAN, "b": Outcome.FAILED, "c": Outcome.SKIPPED}
    failed = result.failed
    assert failed is not None
    assert failed.stage == "b"
    assert failed.error is not None
    assert failed.error.message == "stage b failed with exit code 3"
    assert failed.error.exit_code == 1
    assert project.executions() == ["a", "b"]
    assert sorted(project.lock()["stages"]) == ["a"]
    assert (project.root / ".pipeline/logs/b.log").read_text() == "boom\n"

    # the next run resumes with the failed stage, not from scratch
    _three_stages(project, "echo b > b.txt")
    project.clear_executions()
    assert ran(project.repro()) == ["b", "c"]


def test_a_stage_that_does_not_create_a_declared_output_fails(project: Project) -> None:
    _three_stages(project, "echo not writing b.txt")
    result = project.repro()
    failed = result.failed
    assert failed is not None
    assert failed.stage == "b"
    assert failed.error is not None
    assert failed.error.message == "stage b did not create b.txt"
    assert outcomes(result)["c"] is Outcome.SKIPPED
    assert sorted(project.lock()["stages"]) == ["a"]


def test_a_missing_dep_with_no_producer_is_a_data_error(project: Project) -> None:
    project.manifest(
        {
            "stages": {
                "x": {
                    "cmd": "cat missing.txt > x.txt && " + record("x"),
                    "deps": ["missing.txt"],
                    "outs": ["x.txt"],
                }
            }
        }
    )
    result = project.repro()
    failed = result.failed
    assert failed is not None
    assert failed.stage == "x"
    assert isinstance(failed.error, DataError)
    assert failed.error.message == "stage x: dependency missing.txt does not exist"
    assert failed.error.exit_code == 4
    assert project.executions() == []
    assert not project.exists("pipeline.lock")


# -- how commands run -------------------------------------------------------------------------


def test_pipeline_root_and_stage_are_set_and_cwd_is_the_root(project: Project) -> None:
    project.manifest(
        {
            "stages": {
                "envstage": {
                    "cmd": 'printf \'%s\\n\' "$PIPELINE_ROOT" "$PIPELINE_STAGE" "$(pwd -P)"'
                    " > env.txt",
                    "outs": ["env.txt"],
                }
            }
        }
    )
    # run from elsewhere: the stage still runs in the project root
    sub = project.root / "sub"
    sub.mkdir()
    api.repro(ReproOptions(root=sub))
    root = str(project.root.resolve())
    assert project.read("env.txt").splitlines() == [root, "envstage", root]


def test_cmd_list_runs_each_item_in_order(project: Project) -> None:
    project.manifest(
        {
            "stages": {
                "steps": {
                    "cmd": ["echo one >> steps.txt", "echo two >> steps.txt"],
                    "outs": ["steps.txt"],
                }
            }
        }
    )
    assert ran(project.repro()) == ["steps"]
    assert project.read("steps.txt") == "one\ntwo\n"


def test_cmd_list_stops_at_the_first_failing_item(project: Project) -> None:
    project.manifest(
        {
            "stages": {
                "steps": {
                    "cmd": ["echo one >> steps.txt", "exit 7", "echo three >> steps.txt"],
                    "outs": ["steps.txt"],
                }
            }
        }
    )
    result = project.repro()
    assert result.failed is not None
    assert result.failed.error is not None
    assert result.failed.error.message == "stage steps failed with exit code 7"
    assert project.read("steps.txt") == "one\n"


def test_multi_line_cmd_runs_as_one_script(project: Project) -> None:
    project.manifest(
        "stages:\n"
        "  script:\n"
        "    cmd: |\n"
        "      greeting=hello\n"
        "      cd sub\n"
        '      echo "$greeting from $(basename "$PWD")" > ../script.txt\n'
        "    outs: [script.txt]\n"
    )
    (project.root / "sub").mkdir()
    assert ran(project.repro()) == ["script"]
    assert project.read("script.txt") == "hello from sub\n"


def test_outputs_are_deleted_before_the_run_but_persist_outputs_are_kept(
    project: Project,
) -> None:
    project.manifest(
        {
            "stages": {
                "hist": {
                    "cmd": "echo run >> kept.txt && echo run >> fresh.txt",
                    "outs": [{"kept.txt": {"persist": True}}, "fresh.txt"],
                }
            }
        }
    )
    project.repro()
    project.repro(force=True)
    project.repro(force=True)
    assert project.read("kept.txt") == "run\nrun\nrun\n"
    assert project.read("fresh.txt") == "run\n"


def test_parent_directories_of_outputs_are_created(project: Project) -> None:
    project.manifest(
        {"stages": {"deep": {"cmd": "echo x > a/b/c/out.txt", "outs": ["a/b/c/out.txt"]}}}
    )
    assert ran(project.repro()) == ["deep"]
    assert project.read("a/b/c/out.txt") == "x\n"


def test_directory_outputs_and_deps(project: Project) -> None:
    project.manifest(
        {
            "stages": {
                "gen": {
                    "cmd": "mkdir -p shards && for i in 1 2 3; do echo $i > shards/$i.txt; done && "
                    + record("gen"),
                    "outs": ["shards"],
                },
                "use": {
                    "cmd": "cat shards/2.txt > two.txt && " + record("use"),
                    "deps": ["shards/2.txt"],
                    "outs": ["two.txt"],
                },
            }
        }
    )
    assert ran(project.repro()) == ["gen", "use"]
    entry = project.lock()["stages"]["gen"]["outs"][0]
    assert (entry["path"], entry["nfiles"], entry["isdir"]) == ("shards", 3, True)
    assert ran(project.repro()) == []

    # a file added by hand inside the output directory makes the producer stale
    project.write("shards/extra.txt", "x\n")
    assert [str(r) for r in project.plan().decisions["gen"].reasons] == ["out shards modified"]


# -- force and targets ------------------------------------------------------------------------


def test_force_reruns_up_to_date_stages(chain_done: Project) -> None:
    result = chain_done.repro(force=True)
    assert ran(result) == CHAIN_ORDER
    assert {str(r) for d in result.results for r in d.decision.reasons} == {"forced"}
    assert sorted(chain_done.executions()) == sorted(CHAIN_ORDER)


def test_removing_the_state_dir_keeps_everything_up_to_date(chain_done: Project) -> None:
    # the lock alone carries what ran: deleting .pipeline/ (memo, logs) reruns nothing
    shutil.rmtree(chain_done.root / ".pipeline")
    assert ran(chain_done.repro()) == []
    assert chain_done.executions() == []


def test_repro_from_a_subdirectory_finds_the_project(chain: Project) -> None:
    sub = chain.root / "data"
    sub.mkdir(exist_ok=True)
    result = api.repro(ReproOptions(root=sub))
    assert ran(result) == CHAIN_ORDER
