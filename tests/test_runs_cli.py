"""Runs and experiments as users see them: `python -m pipeline -C DIR ...` in a subprocess.

`runs`, `runs show`, `compare`, `metrics show|diff`, `params diff`, `lineage`, `run`
(--param, --sweep, MLflow entry points), `checkout RUN`, and what a killed run leaves in the
record. Exit codes (DESIGN §9): 0 ok, 1 a stage failed, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GIT_ENV, Project, alive, cli_env, wait_gone
from test_runs_experiments import (
    PARAMS_TEXT,
    leftovers,
    setup,
    snapshot,
    three_stages,
)

from pipeline import api


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(_ok(done).stdout)


def _error(done: subprocess.CompletedProcess[str], code: int) -> list[str]:
    """The error lines of a failed command (its stderr), after checking the exit code."""
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    return done.stderr.splitlines()


@pytest.fixture
def three(project: Project) -> Project:
    return setup(project)


def _sweep(project: Project) -> tuple[Project, dict[str, Any]]:
    """`pipeline run --sweep train.lr=0.3,0.2,0.4 -j 3` in the three-stage project."""
    done = _ok(project.cli("run", "--sweep", "train.lr=0.3,0.2,0.4", "-j", "3"))
    runs = _json(project.cli("runs", "--json"))
    sweep = next(r for r in runs if r["kind"] == "sweep")
    points = {r["name"]: r for r in runs if r["parent_id"] == sweep["id"]}
    assert sorted(points) == ["train.lr=0.2", "train.lr=0.3", "train.lr=0.4"]
    return project, {"sweep": sweep, "points": points, "stdout": done.stdout}


@pytest.fixture
def swept(three: Project) -> tuple[Project, dict[str, Any]]:
    """The three-stage project after a sweep, for tests that change it."""
    return _sweep(three)


@pytest.fixture(scope="module")
def swept_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Project, dict[str, Any]]]:
    """The same, shared by the tests that only read it (each CLI call costs ~0.25 s)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in GIT_ENV.items():
            mp.setenv(key, value)
        root = tmp_path_factory.mktemp("swept") / "proj"
        root.mkdir()
        project = Project(root.resolve())
        project.git("init", "-q")
        yield _sweep(setup(project))


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "train.lrr=0.2"], "error: unknown param train.lrr (not in params.yaml)"),
        (["--param", "train.lr=abc"], "error: --param train.lr: expected a number, got 'abc'"),
        (["--sweep", "train.epochs=1,2.5"], "error: --param train.epochs: expected an integer"),
    ],
    ids=["unknown-key", "wrong-type", "wrong-type-in-sweep"],
)
def test_a_bad_param_exits_2_before_anything_runs(
    three: Project, args: list[str], message: str
) -> None:
    three.write("raw.txt", "changed: every stage would run\n")
    before = snapshot(three.root)
    runs_before = api.runs(three.root)
    errors = _error(three.cli("run", *args), 2)
    assert errors[0].startswith(message)
    if "lrr" in args[-1]:
        assert errors[1] == "hint: did you mean 'train.lr'?"
    assert three.executions() == []
    assert api.runs(three.root) == runs_before
    assert snapshot(three.root) == before
    assert not (three.root / ".pipeline" / "tmp").exists() or leftovers(three) == []


# -- runs and runs show -----------------------------------------------------------------------


def test_runs_lists_newest_first_and_json_has_every_field(
    swept_once: tuple[Project, dict[str, Any]],
) -> None:
    project, found = swept_once
    runs = _json(project.cli("runs", "--json"))
    assert len(runs) == 5  # the setup's repro, the sweep, its three points
    assert [r["started_at"] for r in runs] == sorted((r["started_at"] for r in runs), reverse=True)
    assert runs[-1]["kind"] == "repro"
    assert set(runs[0]) >= {
        "id", "kind", "name", "parent_id", "command", "started_at", "ended_at", "status",
        "user", "host", "pid", "git_commit", "git_branch", "git_dirty",
    }  # fmt: skip
    head = project.git("rev-parse", "HEAD").strip()
    assert {r["git_commit"] for r in runs[:-1]} == {head}
    assert runs[-1]["git_commit"] == project.git("rev-parse", "HEAD~1").strip()  # before the lock
    assert {r["status"] for r in runs} == {"succeeded"}
    command = found["sweep"]["command"]
    assert command.startswith("pipeline ")
    assert command.endswith(" run --sweep train.lr=0.3,0.2,0.4 -j 3")

    assert len(_json(project.cli("runs", "--json", "-n", "2"))) == 2
    assert len(_json(project.cli("runs", "--json", "--all"))) == 5

    text = _ok(project.cli("runs")).stdout.splitlines()
    assert text[0].split() == ["run", "started", "status", "time", "kind", "commit", "name", "/",
                               "command"]  # fmt: skip
    assert len(text) == 6
    sweep_line = next(line for line in text if line.startswith(found["sweep"]["id"]))
    assert "sweep" in sweep_line and head[:8] in sweep_line and "succeeded" in sweep_line


def test_runs_with_no_runs_says_so(project: Project) -> None:
    project.manifest("stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n")
    out = _ok(project.cli("runs")).stdout
    assert "no runs recorded yet" in out
    assert _json(project.cli("runs", "--json")) == []


def test_runs_show_text_and_json(swept_once: tuple[Project, dict[str, Any]]) -> None:
    project, found = swept_once
    chosen = found["points"]["train.lr=0.4"]
    data = _json(project.cli("runs", "show", chosen["id"], "--json"))
    assert (data["id"], data["kind"], data["parent_id"]) == (
        chosen["id"],
        "run",
        found["sweep"]["id"],
    )
    assert data["params"] == {"train.lr": 0.4}
    assert data["metrics"] == {"metrics.json:score": 0.4}
    stages = {s["stage"]: s for s in data["stages"]}
    assert {k: s["outcome"] for k, s in stages.items()} == {
        "prepare": "up to date",
        "train": "ran",
        "evaluate": "ran",
    }
    train = stages["train"]
    assert train["params"] == {"train.lr": 0.4}
    assert train["exit_code"] == 0 and train["fingerprint"] and train["log_hash"]
    assert [d["path"] for d in train["deps"]] == ["prepared.txt"]
    assert [o["path"] for o in train["outs"]] == ["model.txt"]
    assert train["outs"][0]["hash"].startswith("xxh3_128:")
    assert data["children"] == []

    # by name, by unique prefix; the sweep lists its points
    by_name = _json(project.cli("runs", "show", "train.lr=0.4", "--json"))
    assert by_name["id"] == chosen["id"]
    sweep = _json(project.cli("runs", "show", found["sweep"]["id"], "--json"))
    assert sorted(sweep["children"]) == sorted(r["id"] for r in found["points"].values())

    text = _ok(project.cli("runs", "show", chosen["id"])).stdout
    assert f"run {chosen['id']} (train.lr=0.4)" in text
    assert "status   succeeded" in text
    assert f"sweep    {found['sweep']['id']}" in text
    assert "train.lr = 0.4" in text
    assert "metrics.json:score = 0.4" in text
    assert "stage train: ran" in text
    assert f"out      model.txt  {train['outs'][0]['hash']}" in text


def test_runs_show_unknown_or_ambiguous_exits_2(swept_once: tuple[Project, dict[str, Any]]) -> None:
    project, found = swept_once
    assert _error(project.cli("runs", "show", "nope"), 2) == [
        "error: no run 'nope'",
        "hint: see `pipeline runs` for run ids and names",
    ]
    prefix = found["sweep"]["id"][:4]  # every run today shares the date
    assert "is ambiguous" in _error(project.cli("runs", "show", prefix), 2)[0]


# -- compare ----------------------------------------------------------------------------------


def test_compare_shows_the_swept_param_and_metrics_sorted_by_a_metric(
    swept_once: tuple[Project, dict[str, Any]],
) -> None:
    project, found = swept_once
    sweep = found["sweep"]["id"]
    table = _json(project.cli("compare", sweep, "--json", "--sort-by", "score"))
    assert [row["params"] for row in table] == [
        {"train.lr": 0.4},
        {"train.lr": 0.3},
        {"train.lr": 0.2},
    ]
    assert [row["metrics"] for row in table] == [{"score": 0.4}, {"score": 0.3}, {"score": 0.2}]
    assert [row["name"] for row in table] == ["train.lr=0.4", "train.lr=0.3", "train.lr=0.2"]

    up = _json(project.cli("compare", sweep, "--json", "--sort-by", "score", "--ascending"))
    assert [row["metrics"]["score"] for row in up] == [0.2, 0.3, 0.4]
    by_param = _json(project.cli("compare", sweep, "--json", "--sort-by", "lr", "--ascending"))
    assert [row["params"]["train.lr"] for row in by_param] == [0.2, 0.3, 0.4]

    lines = _ok(project.cli("compare", sweep, "--sort-by", "score")).stdout.splitlines()
    assert lines[0].split() == ["run", "name", "status", "train.lr", "score"]
    assert [line.split()[3] for line in lines[1:]] == ["0.4", "0.3", "0.2"]

    rows = list(csv.reader(io.StringIO(_ok(project.cli("compare", sweep, "--csv")).stdout)))
    assert rows[0] == ["run", "name", "status", "train.lr", "score"]
    assert sorted(r[3] for r in rows[1:]) == ["0.2", "0.3", "0.4"]
    assert all(r[3] == r[4] for r in rows[1:])

    md = _ok(project.cli("compare", sweep, "--md", "--sort-by", "score")).stdout.splitlines()
    assert md[0] == "| run | name | status | train.lr | score |"
    assert md[1] == "|---|---|---|---|---|"
    point = found["points"]["train.lr=0.4"]["id"]
    assert md[2] == f"| {point} | train.lr=0.4 | succeeded | 0.4 | 0.4 |"


def test_compare_without_runs_shows_the_latest_runs_but_no_sweep_row(
    swept_once: tuple[Project, dict[str, Any]],
) -> None:
    project, found = swept_once
    table = _json(project.cli("compare", "--json"))
    assert len(table) == 4  # three points and the repro, never the sweep's own row
    assert all(set(row["params"]) == {"train.lr"} for row in table)
    assert _json(project.cli("compare", "--json", "-n", "2")).__len__() == 2
    one = found["points"]["train.lr=0.2"]["id"]
    [row] = _json(project.cli("compare", one, "--json"))
    assert (row["id"], row["params"], row["metrics"]) == (one, {"train.lr": 0.2}, {"score": 0.2})


def test_compare_sort_by_an_unknown_key_exits_2(swept_once: tuple[Project, dict[str, Any]]) -> None:
    project, _ = swept_once
    errors = _error(project.cli("compare", "--sort-by", "accuracy"), 2)
    assert errors[0] == "error: no param or metric 'accuracy' to sort by"
    assert "score" in errors[1] and "train.lr" in errors[1]


def test_compare_sorts_by_a_metric_named_as_metrics_show_names_it(
    swept_once: tuple[Project, dict[str, Any]],
) -> None:
    project, _ = swept_once
    table = _json(project.cli("compare", "--json", "--sort-by", "metrics.json:score"))
    assert [row["metrics"]["score"] for row in table][:3] == [0.4, 0.3, 0.2]


# -- metrics show / diff, params diff: workspace, a run, a git revision -----------------------


def test_metrics_and_params_of_the_workspace_a_run_and_head(
    swept_once: tuple[Project, dict[str, Any]],
) -> None:
    project, found = swept_once
    point = found["points"]["train.lr=0.4"]["id"]
    assert _json(project.cli("metrics", "show", "--json")) == {"metrics.json:score": 0.1}
    assert _json(project.cli("metrics", "show", point, "--json")) == {"metrics.json:score": 0.4}
    assert _json(project.cli("metrics", "show", "HEAD", "--json")) == {"metrics.json:score": 0.1}
    assert _ok(project.cli("metrics", "show", point)).stdout == "metrics.json:score = 0.4\n"

    diff = _json(project.cli("metrics", "diff", "HEAD", point, "--json"))
    assert diff["old"] == "commit HEAD" and diff["new"] == f"run {point}"
    [(key, change)] = diff["changes"].items()
    assert key == "metrics.json:score"
    assert (change["old"], change["new"]) == (0.1, 0.4)
    assert change["change"] == pytest.approx(0.3)

    params = _json(project.cli("params", "diff", point, "workspace", "--json"))
    assert params["changes"] == {
        "train.lr": {"old": 0.4, "new": 0.1, "change": pytest.approx(-0.3)}
    }
    text = _ok(project.cli("params", "diff", "HEAD", point)).stdout.splitlines()
    assert text[0].split() == ["key", "commit", "HEAD", "run", point, "change"]
    assert text[1].split() == ["train.lr", "0.1", "0.4", "+0.3"]

    # nothing changed between HEAD and the workspace
    assert _ok(project.cli("metrics", "diff")).stdout == (
        "no differences between commit HEAD and workspace\n"
    )
    assert _json(project.cli("params", "diff", "--json"))["changes"] == {}
    every = _json(project.cli("params", "diff", "--all", "--json"))["changes"]
    assert every == {"train.lr": {"old": 0.1, "new": 0.1, "change": 0.0}}


def test_metrics_diff_against_an_older_commit_reads_the_cache(three: Project) -> None:
    """metrics.json is a cached output, not in git: HEAD~1's comes from its lock and the cache."""
    first = three.git("rev-parse", "HEAD").strip()
    three.params(PARAMS_TEXT.replace("lr: 0.1", "lr: 0.7"))
    _ok(three.cli("repro"))
    three.commit(message="lr 0.7")
    assert "metrics.json" not in three.git("ls-files")

    diff = _json(three.cli("metrics", "diff", first, "HEAD", "--json"))
    assert diff["changes"]["metrics.json:score"]["old"] == 0.1
    assert diff["changes"]["metrics.json:score"]["new"] == 0.7
    assert _json(three.cli("params", "diff", "HEAD~1", "--json"))["changes"] == {
        "train.lr": {"old": 0.1, "new": 0.7, "change": pytest.approx(0.6)}
    }
    # an uncommitted edit shows against HEAD
    three.params(PARAMS_TEXT.replace("lr: 0.1", "lr: 0.75"))
    assert _json(three.cli("params", "diff", "--json"))["changes"]["train.lr"]["new"] == 0.75


def test_a_ref_that_is_neither_a_run_nor_a_revision_exits_2(three: Project) -> None:
    errors = _error(three.cli("metrics", "show", "no-such-thing"), 2)
    assert errors[0] == "error: 'no-such-thing' is neither a run nor a git revision"


# -- checkout RUN ------------------------------------------------------------------------------


def test_checkout_run_brings_the_model_and_refuses_uncommitted_params_edits(
    swept: tuple[Project, dict[str, Any]],
) -> None:
    project, found = swept
    project.clear_executions()
    chosen = found["points"]["train.lr=0.4"]["id"]
    done = _ok(project.cli("checkout", chosen))
    assert f"applied run {chosen}: its params and lock" in done.stdout
    assert project.read("model.txt") == "RAW DATA\nlr=0.4\n"
    assert project.read("params.yaml") == PARAMS_TEXT.replace("lr: 0.1", "lr: 0.4")
    assert _ok(project.cli("status")).stdout.startswith("Everything is up to date")

    project.commit(message="take lr 0.4")
    edited = project.read("params.yaml").replace("tag: base", "tag: mine")
    project.params(edited)
    other = found["points"]["train.lr=0.2"]["id"]
    assert _error(project.cli("checkout", other), 2) == [
        "error: params.yaml has uncommitted edits that checking out the run would overwrite",
        "hint: commit or stash them first, or pass --force",
    ]
    assert project.read("params.yaml") == edited
    assert project.read("model.txt") == "RAW DATA\nlr=0.4\n"

    _ok(project.cli("checkout", other, "--force"))
    assert project.read("model.txt") == "RAW DATA\nlr=0.2\n"
    assert project.read("params.yaml") == PARAMS_TEXT.replace("lr: 0.1", "lr: 0.2")
    assert project.executions() == []


def test_checkout_by_run_name(swept: tuple[Project, dict[str, Any]]) -> None:
    project, _ = swept
    _ok(project.cli("checkout", "train.lr=0.3"))
    assert project.read("model.txt") == "RAW DATA\nlr=0.3\n"


def test_checkout_of_an_ambiguous_run_name_says_it_is_ambiguous(
    swept: tuple[Project, dict[str, Any]],
) -> None:
    project, _ = swept
    _ok(project.cli("run", "--param", "train.lr=0.3", "-n", "train.lr=0.3"))
    errors = _error(project.cli("checkout", "train.lr=0.3"), 2)
    assert "ambiguous" in errors[0]


# -- lineage ----------------------------------------------------------------------------------


def test_lineage_cli_walks_back_to_the_tracked_raw_data(project: Project) -> None:
    project.write("raw.txt", "raw data\n")
    project.params(PARAMS_TEXT)
    project.manifest(three_stages(project), commit=False)
    _ok(project.cli("add", "raw.txt"))
    project.commit(message="tracked raw data")
    _ok(project.cli("repro"))
    [repro] = _json(project.cli("runs", "--json"))
    raw = project.lock()["data"]["raw.txt"]["hash"] if "data" in project.lock() else None

    data = _json(project.cli("lineage", "model.txt", "--json"))
    assert (data["path"], data["stage"], data["run"]) == ("model.txt", "train", repro["id"])
    assert data["params"] == {"train.lr": 0.1}
    assert data["commit"] == project.git("rev-parse", "HEAD").strip()
    [prepared] = data["inputs"]
    assert (prepared["path"], prepared["stage"]) == ("prepared.txt", "prepare")
    [leaf] = prepared["inputs"]
    assert leaf["path"] == "raw.txt" and "run" not in leaf and leaf["inputs"] == []
    if raw is not None:
        assert leaf["hash"] == raw

    text = _ok(project.cli("lineage", "model.txt")).stdout
    assert f"made by stage train (ran) in run {repro['id']}" in text
    assert "params train.lr=0.1" in text
    assert "raw data (no recorded stage produced it)" in text
    sub = project.root / "sub"
    sub.mkdir()
    from_sub = subprocess.run(
        [sys.executable, "-m", "pipeline", "lineage", "../model.txt", "--json"],
        cwd=sub, capture_output=True, text=True, env=cli_env(), check=False,
    )  # fmt: skip
    assert _json(from_sub)["run"] == repro["id"]


# -- a killed run is never recorded as a success ----------------------------------------------


def _slow_project(project: Project) -> Path:
    """first → slow, where slow writes its pid next to the project and sleeps 30 s."""
    pid_file = project.root.parent / "slow.pid"
    project.manifest(
        {
            "stages": {
                "first": {"cmd": "echo one > one.txt", "outs": ["one.txt"]},
                "slow": {
                    "cmd": f"echo $$ > {shlex.quote(str(pid_file))}.tmp && "
                    f"mv {shlex.quote(str(pid_file))}.tmp {shlex.quote(str(pid_file))} && "
                    "exec sleep 30",
                    "deps": ["one.txt"],
                    "outs": ["two.txt"],
                },
            }
        }
    )
    return pid_file


def _stored_status(project: Project) -> list[tuple[str, float | None]]:
    """The status column as written, without the reader's dead-process rule."""
    with contextlib.closing(sqlite3.connect(project.root / ".pipeline" / "runs.db")) as conn:
        return conn.execute("SELECT status, ended_at FROM runs").fetchall()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["SIGKILL", "SIGTERM", "SIGINT"])  # fmt: skip
def test_a_killed_repro_is_recorded_interrupted(project: Project, sig: signal.Signals) -> None:
    pid_file = _slow_project(project)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(project.root), "repro", "-j", "1"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    stage_pid = None
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow stage never started"
            time.sleep(0.02)
        stage_pid = int(pid_file.read_text())
        while not (runs := api.runs(project.root)) or len(api.run_detail(
            project.root, runs[0].id).stages) < 1:  # fmt: skip
            assert time.monotonic() < deadline, "the run and its first stage were never recorded"
            time.sleep(0.02)
        assert [r.status for r in runs] == ["running"]

        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if stage_pid is not None and sig is signal.SIGKILL and alive(stage_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(stage_pid, signal.SIGKILL)  # a SIGKILLed parent cannot stop its stage

    if sig is not signal.SIGKILL:
        assert proc.returncode == 130, stderr
        assert wait_gone(stage_pid, 2), "the stage survived the interrupt"
        [(status, ended)] = _stored_status(project)
        assert status == "interrupted" and ended is not None
    else:
        assert proc.returncode == -signal.SIGKILL
        assert _stored_status(project) == [("running", None)]  # as the kill left it

    [run] = _json(project.cli("runs", "--json"))
    assert run["status"] == "interrupted"
    detail = _json(project.cli("runs", "show", run["id"], "--json"))
    assert {s["stage"]: s["outcome"] for s in detail["stages"]}["first"] == "ran"
    assert "succeeded" not in _ok(project.cli("runs")).stdout


@pytest.mark.slow
def test_an_interrupted_sweep_records_no_point_as_succeeded(project: Project) -> None:
    started = project.root.parent / "started"
    started.mkdir()
    s = shlex.quote(str(started))
    only_points_sleep = 'if [ "${train.lr}" != 0.1 ]; then sleep 4; fi && '
    setup(
        project,
        three_stages(project, train_prefix=f"touch {s}/${{train.lr}} && " + only_points_sleep),
    )
    for stale in started.iterdir():
        stale.unlink()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(project.root), "run", "--sweep",
         "train.lr=0.2,0.3", "-j", "2"],
        cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while len(os.listdir(started)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the points never started"
            time.sleep(0.02)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    runs = _json(project.cli("runs", "--json"))
    statuses = {(r["kind"], r["name"]): r["status"] for r in runs if r["kind"] != "repro"}
    assert "succeeded" not in statuses.values(), statuses
    assert elapsed < 2
    assert leftovers(project) == []


# -- MLflow entry points ------------------------------------------------------------------------

MLPROJECT = """\
name: plain-mlflow
python_env: python_env.yaml

entry_points:
  main:
    parameters:
      alpha: {{type: float, default: 0.5}}
      n: int
      label: {{type: string, default: "a b"}}
    command: "echo alpha={{alpha}} n={{n}} label={{label}} >> {log}"
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
    assert project.execution_log.read_text() == "alpha=0.5 n=3 label=a b\n"
    [run] = _json(project.cli("runs", "--json"))
    assert f"entry point main exited 0; recorded as run {run['id']}" in done.stdout
    assert (run["kind"], run["name"], run["status"]) == ("entry", "main", "succeeded")
    assert run["git_commit"] == project.git("rev-parse", "HEAD").strip()
    detail = _json(project.cli("runs", "show", run["id"], "--json"))
    assert detail["params"] == {"main.alpha": 0.5, "main.n": 3, "main.label": "a b"}
    assert detail["note"] == "echo alpha=0.5 n=3 label='a b' >> " + shlex.quote(
        str(project.execution_log)
    )
    [stage] = detail["stages"]
    assert (stage["stage"], stage["outcome"], stage["exit_code"]) == ("entry:main", "ran", 0)
    assert not (tmp_path / "xdg-cache" / "pipeline").exists()  # --env-manager local: no env


def test_entry_point_by_name_with_typed_params_and_shell_quoting(mlflow_project: Project) -> None:
    project = mlflow_project
    _ok(_cli(project, "run", "-e", "main", "-P", "n=4", "-P", "alpha=1e-3",
             "-P", "label=x'y; echo injected"))  # fmt: skip
    assert project.execution_log.read_text() == "alpha=0.001 n=4 label=x'y; echo injected\n"
    project.clear_executions()
    _ok(_cli(project, "run", "-e", "score", "-P", "data=data/in.csv"))
    assert project.execution_log.read_text() == f"data={project.root / 'data/in.csv'}\n"
    runs = _json(project.cli("runs", "--json"))
    assert [(r["name"], r["status"]) for r in runs] == [
        ("score", "succeeded"),
        ("main", "succeeded"),
    ]
    detail = _json(project.cli("runs", "show", runs[1]["id"], "--json"))
    assert detail["params"] == {
        "main.alpha": 0.001,
        "main.n": 4,
        "main.label": "x'y; echo injected",
    }


def test_a_failing_entry_point_exits_1_and_is_recorded_failed(mlflow_project: Project) -> None:
    project = mlflow_project
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


def test_entry_points_and_stage_flags_do_not_mix(mlflow_project: Project) -> None:
    errors = _error(_cli(mlflow_project, "run", "-e", "main", "--param", "n=3"), 2)
    assert "give no stages, --param or --sweep" in errors[-1]
    assert mlflow_project.executions() == []
