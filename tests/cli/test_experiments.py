"""`pipeline run` as users run it, in a subprocess: --param, --sweep and MLflow entry points
(-e, -P), their exit codes (1 a run failed, 2 a usage error, 130 interrupted), and the
workspace it never touches.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline import api
from tests.cli.support import _error, _json, _ok
from tests.conftest import Project, alive, cli_env, wait_gone
from tests.experiments.support import (
    held_at_train,
    kill_group,
    leftovers,
    setup,
    snapshot,
    start_sweep,
    three_stages,
)

# -- pipeline run: the sweep's report, exit codes, the untouched workspace --------------------


def test_sweep_prints_a_compare_table_of_its_points(
    swept_once: tuple[Project, dict[str, Any]],
) -> None:
    project, found = swept_once
    out = found["stdout"]
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("run "))
    assert header.split() == ["run", "name", "status", "train.lr", "score"]
    for name, run in found["points"].items():
        row = next(line for line in lines if line.startswith(run["id"]))
        lr = name.split("=")[1]
        assert row.split() == [run["id"], name, "succeeded", lr, lr]
    sweep = found["sweep"]["id"]
    assert f"sweep recorded as run {sweep}; `pipeline compare {sweep}` shows it again" in out
    assert sorted(project.executions()) == ["evaluate"] * 3 + ["train"] * 3
    assert leftovers(project) == []


def test_pipeline_run_leaves_the_workspace_byte_identical(three: Project) -> None:
    before = snapshot(three.root)
    for name in ("params.yaml", "pipeline.lock", ".gitignore", "model.txt", "metrics.json"):
        assert name in before
    status = three.git("status", "--porcelain")
    done = _ok(three.cli("run", "--param", "train.lr=0.9", "-n", "big"))
    assert "recorded as run " in done.stdout
    _ok(three.cli("run", "--sweep", "train.lr=0.2,0.3", "-j", "2"))
    assert snapshot(three.root) == before
    assert three.git("status", "--porcelain") == status
    assert leftovers(three) == []
    assert sorted(three.executions()) == ["evaluate"] * 3 + ["train"] * 3
    refused = three.cli("checkout", "latest")  # the sweep: its points are what checks out
    assert refused.returncode == 2
    assert "a sweep is checked out one point at a time" in refused.stderr


def test_a_failing_point_exits_1_after_running_the_others(project: Project) -> None:
    manifest = three_stages(project)
    manifest["stages"]["train"]["cmd"] = (
        'test "${train.lr}" != 0.5 && ' + manifest["stages"]["train"]["cmd"]
    )
    setup(project, manifest)
    done = project.cli("run", "--sweep", "train.lr=0.5,0.2,0.3", "-j", "1")
    assert _error(done, 1)[-1] == "error: 1 of 3 runs failed"
    assert sorted(project.executions()) == ["evaluate", "evaluate", "train", "train"]
    statuses = {r["name"]: r["status"] for r in _json(project.cli("runs", "--json"))}
    assert statuses["train.lr=0.5"] == "failed"
    assert statuses["train.lr=0.2"] == statuses["train.lr=0.3"] == "succeeded"
    assert "train.lr=0.5" in done.stdout and "failed" in done.stdout  # in the table
    assert leftovers(project) == []


def _loud_failure(project: Project) -> Project:
    """The three-stage project whose train stage, at train.lr=0.5, prints 30 numbered lines
    and an error on stderr, then fails."""
    manifest = three_stages(project)
    fail_loudly = (
        'if [ "${train.lr}" = 0.5 ]; then seq 1 30; echo "boom: lr too high" >&2; exit 3; fi && '
    )
    manifest["stages"]["train"]["cmd"] = fail_loudly + manifest["stages"]["train"]["cmd"]
    return setup(project, manifest)


def test_a_failed_point_explains_itself_at_the_end_and_runs_log_prints_it_all(
    project: Project,
) -> None:
    _loud_failure(project)
    done = project.cli("run", "--sweep", "train.lr=0.2,0.5", "-j", "2")
    assert _error(done, 1)[-1] == "error: 1 of 2 runs failed"
    runs = _json(project.cli("runs", "--json"))
    failed = next(r["id"] for r in runs if r["name"] == "train.lr=0.5")
    sweep = next(r["id"] for r in runs if r["kind"] == "sweep")
    tail = done.stdout[done.stdout.index("sweep recorded as run") :].splitlines()
    heading = f"✗ train.lr=0.5 (run {failed}): stage train failed with exit code 3"
    assert heading in tail, done.stdout
    shown = [line.removeprefix("    | ") for line in tail if line.startswith("    | ")]
    assert shown == [str(n) for n in range(12, 31)] + ["boom: lr too high"]  # the last 20
    assert f"`pipeline runs log {failed} train` prints it all" in done.stdout
    whole = _ok(project.cli("runs", "log", failed, "train")).stdout
    assert whole.splitlines() == [str(n) for n in range(1, 31)] + ["boom: lr too high"]
    every = _ok(project.cli("runs", "log", sweep)).stdout.splitlines()  # its points' logs
    assert "==> train.lr=0.5: stage train (failed) <==" in every
    assert "==> train.lr=0.2: stage train (ran) <==" in every
    show = _ok(project.cli("runs", "show", failed)).stdout
    assert "    | boom: lr too high" in show and "    | 11\n" not in show
    latest = _ok(project.cli("runs", "show", "latest")).stdout  # the sweep, with its failure
    assert latest.startswith(f"run {sweep}\n")
    assert heading in latest


def test_runs_log_says_which_stages_have_a_log_and_when_one_is_gone(project: Project) -> None:
    _loud_failure(project)
    _error(project.cli("run", "--param", "train.lr=0.5"), 1)
    run = _json(project.cli("runs", "show", "latest", "--json"))
    assert run["kind"] == "run" and run["params"]["train.lr"] == 0.5
    assert _error(project.cli("runs", "log", "latest", "trian"), 2) == [
        f"error: run {run['id']} has no stage 'trian'",
        "hint: did you mean 'train'?",
    ]
    assert _error(project.cli("runs", "log", "latest", "evaluate"), 2)[0] == (
        f"error: stage evaluate of run {run['id']} has no log: it did not run"
        " (up to date or skipped)"
    )
    log_hash = next(s["log_hash"] for s in run["stages"] if s["stage"] == "train")
    digest = log_hash.split(":")[1]
    (project.root / ".pipeline" / "cache" / "objects" / digest[:2] / digest[2:]).unlink()
    assert _error(project.cli("runs", "log", "latest", "train"), 4) == [
        f"error: the log of train of run {run['id']} is gone from the cache",
        "hint: `pipeline pull` brings logs back from a remote that has them; `gc` removes only"
        " what no kept run needs",
    ]
    assert "    its log is gone from the cache" in _ok(project.cli("runs", "show", "latest")).stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--param", "train.lrr=0.2"],
            [
                "error: unknown param train.lrr (not in params.yaml)",
                "hint: did you mean 'train.lr'?",
            ],
        ),
        (
            ["--param", "train.lr=abc"],
            ["error: --param train.lr: expected a number, got 'abc'"],  # no hint
        ),
        (
            ["--sweep", "train.epochs=1,2.5"],
            ["error: --param train.epochs: expected an integer, got 2.5"],  # no hint
        ),
    ],
    ids=["unknown-key", "wrong-type", "wrong-type-in-sweep"],
)
def test_a_bad_param_exits_2_before_anything_runs(
    three: Project, args: list[str], expected: list[str]
) -> None:
    three.write("raw.txt", "changed: every stage would run\n")
    before = snapshot(three.root)
    runs_before = api.runs(three.root)
    assert _error(three.cli("run", *args), 2) == expected
    assert three.executions() == []
    assert api.runs(three.root) == runs_before
    assert snapshot(three.root) == before
    assert not (three.root / ".pipeline" / "tmp").exists() or leftovers(three) == []


@pytest.mark.slow
def test_an_interrupted_sweep_records_no_point_as_succeeded(project: Project) -> None:
    started = project.root.parent / "started"
    started.mkdir()
    release = project.root.parent / "release"  # created only once the test is over
    s, r = shlex.quote(str(started)), shlex.quote(str(release))
    # each point's train stage records its shell's pid, then holds until `release` exists
    hold_points = (
        'if [ "${train.lr}" != 0.1 ]; then '
        f"echo $$ > {s}/${{train.lr}}.tmp && mv {s}/${{train.lr}}.tmp {s}/${{train.lr}} && "
        f"until [ -e {r} ]; do [ $SECONDS -lt 300 ] || exit 97; sleep 0.02; done; fi && "
    )
    setup(project, three_stages(project, train_prefix=hold_points))
    assert os.listdir(started) == []  # the setup's own run (train.lr=0.1) does not hold
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(project.root), "run", "--sweep",
         "train.lr=0.2,0.3", "-j", "2"],
        cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
    )  # fmt: skip
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while sorted(os.listdir(started)) != ["0.2", "0.3"]:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the points never started"
            time.sleep(0.02)
        pids = [int((started / point).read_text()) for point in ("0.2", "0.3")]
        assert all(alive(pid) for pid in pids)  # both points are running: now interrupt
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        release.touch()  # whatever survived may go now
    assert proc.returncode == 130, stderr
    for pid in pids:
        assert wait_gone(pid, 10), "a point's stage survived the interrupt"
    runs = _json(project.cli("runs", "--json"))
    statuses = {(r["kind"], r["name"]): r["status"] for r in runs if r["kind"] != "repro"}
    assert statuses == {
        ("sweep", None): "interrupted",
        ("run", "train.lr=0.2"): "interrupted",
        ("run", "train.lr=0.3"): "interrupted",
    }
    assert leftovers(project) == []


# -- MLflow entry points ------------------------------------------------------------------------

MLPROJECT = """\
name: plain-mlflow
python_env: python_env.yaml

entry_points:
  main:
    parameters:
      alpha: {{type: float, default: 1}}
      n: int
      label: {{type: string, default: "a b"}}
      eps: {{type: float, default: 1e-1}}
    command: "echo alpha={{alpha}} n={{n}} label={{label}} eps={{eps}} >> {log}"
  score:
    parameters:
      data: path
      code: {{type: int, default: 0}}
    command: "echo data={{data}} >> {log} && exit {{code}}"
"""


PYTHON_ENV = "python: '3.11'\ndependencies:\n  - definitely-not-installed-package==0.0.1\n"


@pytest.fixture
def mlflow_project(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    log_file = shlex.quote(str(project.execution_log))
    project.write("python_env.yaml", PYTHON_ENV)
    project.manifest(MLPROJECT.format(log=log_file), commit=False)
    project.commit(message="an MLflow project")
    return project


def _cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(XDG_CACHE_HOME=os.environ["XDG_CACHE_HOME"])
    return project.cli(*args, "--env-manager", "local", env=env)


def test_a_plain_mlflow_project_runs_main_with_p(mlflow_project: Project, tmp_path: Path) -> None:
    project = mlflow_project
    done = _ok(_cli(project, "run", "-P", "n=3"))
    # Defaults reach the command as written (YAML would print them 1.0 and 0.1), as in MLflow
    assert project.execution_log.read_text() == "alpha=1 n=3 label=a b eps=1e-1\n"
    [run] = _json(project.cli("runs", "--json"))
    assert f"entry point main exited 0; recorded as run {run['id']}" in done.stdout
    assert (run["kind"], run["name"], run["status"]) == ("entry", "main", "succeeded")
    assert run["git_commit"] == project.git("rev-parse", "HEAD").strip()
    detail = _json(project.cli("runs", "show", run["id"], "--json"))
    assert detail["params"] == {
        "main.alpha": 1.0,
        "main.n": 3,
        "main.label": "a b",
        "main.eps": 0.1,
    }
    assert detail["note"] == "echo alpha=1 n=3 label='a b' eps=1e-1 >> " + shlex.quote(
        str(project.execution_log)
    )
    [stage] = detail["stages"]
    assert (stage["stage"], stage["outcome"], stage["exit_code"]) == ("entry:main", "ran", 0)
    assert not (tmp_path / "xdg-cache" / "pipeline").exists()  # --env-manager local: no env


def test_entry_point_by_name_with_typed_params_and_shell_quoting(mlflow_project: Project) -> None:
    project = mlflow_project
    _ok(_cli(project, "run", "-e", "main", "-P", "n=04", "-P", "alpha=1e-1", "-P", "eps=.5",
             "-P", "label=x'y; echo injected"))  # fmt: skip
    # values as typed: MLflow's types only validate (they printed 0.1, 4 and 0.5 before)
    assert project.execution_log.read_text() == "alpha=1e-1 n=04 label=x'y; echo injected eps=.5\n"
    project.clear_executions()
    project.write("data/in.csv", "x\n")
    _ok(_cli(project, "run", "-e", "score", "-P", "data=data/in.csv"))
    assert project.execution_log.read_text() == f"data={project.root / 'data/in.csv'}\n"
    runs = _json(project.cli("runs", "--json"))
    assert [(r["name"], r["status"]) for r in runs] == [
        ("score", "succeeded"),
        ("main", "succeeded"),
    ]
    detail = _json(project.cli("runs", "show", runs[1]["id"], "--json"))
    assert detail["params"] == {
        "main.alpha": 0.1,
        "main.n": 4,
        "main.label": "x'y; echo injected",
        "main.eps": 0.5,
    }


def test_a_failing_entry_point_exits_1_and_is_recorded_failed(mlflow_project: Project) -> None:
    project = mlflow_project
    project.write("x", "")
    errors = _error(_cli(project, "run", "-e", "score", "-P", "data=x", "-P", "code=3"), 1)
    assert errors == ["error: entry point score failed with exit code 3"]
    [run] = _json(project.cli("runs", "--json"))
    assert run["status"] == "failed"
    [stage] = _json(project.cli("runs", "show", run["id"], "--json"))["stages"]
    assert (stage["outcome"], stage["exit_code"]) == ("failed", 3)


ENTRY_ERRORS = {
    "wrong-type-int": (["-P", "n=abc"], ["error: -P n=abc: expected an integer"]),
    "wrong-type-float": (
        ["-P", "n=1", "-P", "alpha=high"],
        ["error: -P alpha=high: expected a number"],
    ),
    "unknown": (
        ["-P", "nn=3"],
        ["error: entry point 'main' has no parameter 'nn'", "hint: did you mean 'n'?"],
    ),
    "missing": ([], ["error: entry point 'main' needs parameter 'n'", "hint: pass -P n=VALUE"]),
    "unknown-entry": (
        ["-e", "scor"],
        ["error: no entry point named 'scor'", "hint: did you mean 'score'?"],
    ),
    "missing-path": (
        ["-e", "score", "-P", "data=data/nope.csv"],
        [
            "error: entry point 'score': path parameter 'data' is 'data/nope.csv', which does"
            " not exist",
            "hint: pass -P data=PATH naming an existing file or directory (relative to the"
            " project)",
        ],
    ),
    "uri-for-path": (
        ["-e", "score", "-P", "data=s3://bucket/in.csv"],
        [
            "error: entry point 'score': path parameter 'data' is a URI (s3://bucket/in.csv)",
            "hint: pass a local path, or declare data `type: uri` to pass the URI on as written",
        ],
    ),
    "not-key-value": (
        ["-P", "n"],
        ["error: -P 'n' is not KEY=VALUE", "hint: e.g. -P train.lr=0.1"],
    ),
}


@pytest.mark.parametrize(("args", "errors"), ENTRY_ERRORS.values(), ids=list(ENTRY_ERRORS))
def test_a_bad_entry_point_param_exits_2_before_running(
    mlflow_project: Project, args: list[str], errors: list[str]
) -> None:
    project = mlflow_project
    assert _error(_cli(project, "run", *args), 2) == errors
    assert project.executions() == []
    assert api.runs(project.root) == []


def test_a_missing_python_env_file_is_an_error_even_with_env_manager_local(
    mlflow_project: Project,
) -> None:
    project = mlflow_project
    (project.root / "python_env.yaml").unlink()
    errors = _error(_cli(project, "run", "-P", "n=3"), 2)
    assert errors == [
        "error: MLproject:2:13: python_env: python_env.yaml does not exist",
        "hint: create python_env.yaml, or remove `python_env` to run in the current environment",
    ]
    assert project.executions() == []
    assert api.runs(project.root) == []


def test_entry_points_and_stage_flags_do_not_mix(mlflow_project: Project) -> None:
    errors = _error(_cli(mlflow_project, "run", "-e", "main", "--param", "n=3"), 2)
    assert "give no stages, --param or --sweep" in errors[-1]
    assert mlflow_project.executions() == []


# -- a killed sweep's workspaces ---------------------------------------------------------------


@pytest.mark.slow
def test_gc_says_it_removes_the_workspaces_a_killed_sweep_left(
    project: Project, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    held_at_train(project, barrier)
    kill_group(start_sweep(project, barrier, "0.2,0.3"))
    left = leftovers(project)
    assert len([n for n in left if not n.endswith(".lock")]) == 2

    dry = _ok(project.cli("gc", "--dry")).stdout
    assert "would remove 2 workspaces of killed experiments" in dry
    assert leftovers(project) == left
    done = _ok(project.cli("gc")).stdout
    assert "removed 2 workspaces of killed experiments" in done
    assert leftovers(project) == []
