"""Runs as users see them, in a subprocess: `runs`, `runs show`, `compare`, `metrics show|diff`,
`params diff` and `lineage`. Exit code 2 for an unknown or ambiguous run.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from typing import Any

import pytest

from tests.cli.support import _error, _json, _ok, _sweep
from tests.conftest import Project, cli_env
from tests.experiments.support import PARAMS_TEXT, _run_files, three_stages
from tests.store.support import store_of

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


def test_no_op_repros_add_no_runs_and_latest_is_the_sweep(three: Project) -> None:
    before = _json(three.cli("runs", "--json"))
    for _ in range(3):
        assert "Everything is up to date" in _ok(three.cli("repro")).stdout
    assert _json(three.cli("runs", "--json")) == before
    assert len(_json(three.cli("compare", "--json"))) == len(before)
    _ok(three.cli("run", "--sweep", "train.lr=0.2,0.3", "-j", "2"))
    sweep = next(r["id"] for r in _json(three.cli("runs", "--json")) if r["kind"] == "sweep")
    for latest in ("latest", "@"):
        shown = _json(three.cli("runs", "show", latest, "--json"))
        assert (shown["id"], len(shown["children"])) == (sweep, 2)
    assert _ok(three.cli("runs", "show", "latest")).stdout.startswith(f"run {sweep}\n")
    assert len(_json(three.cli("compare", "latest", "--json"))) == 2  # the sweep's points


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


# -- lineage ----------------------------------------------------------------------------------


def test_lineage_cli_walks_back_to_the_tracked_raw_data(project: Project) -> None:
    project.write("raw.txt", "raw data\n")
    project.params(PARAMS_TEXT)
    project.manifest(three_stages(project), commit=False)
    _ok(project.cli("add", "raw.txt"))
    project.commit(message="tracked raw data")
    _ok(project.cli("repro"))
    [repro] = _json(project.cli("runs", "--json"))
    raw = project.lock()["data"]["raw.txt"]["hash"]  # `add` tracked it
    assert raw.startswith("xxh3_128:")

    data = _json(project.cli("lineage", "model.txt", "--json"))
    assert (data["path"], data["stage"], data["run"]) == ("model.txt", "train", repro["id"])
    assert data["params"] == {"train.lr": 0.1}
    assert data["commit"] == project.git("rev-parse", "HEAD").strip()
    [prepared] = data["inputs"]
    assert (prepared["path"], prepared["stage"]) == ("prepared.txt", "prepare")
    [leaf] = prepared["inputs"]
    assert leaf["path"] == "raw.txt" and "run" not in leaf and leaf["inputs"] == []
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


# -- runs whose objects are gone, and gc dropping runs ----------------------------------------


def test_runs_compare_and_show_mark_a_run_whose_objects_are_gone(three: Project) -> None:
    project, found = _sweep(three)
    victim, sweep = found["points"]["train.lr=0.2"]["id"], found["sweep"]["id"]
    kept = next(f for f in _run_files(project, victim) if f.path == "params.yaml")
    store_of(project).path(kept.hash).unlink()  # deleted by hand

    runs = _json(project.cli("runs", "--json"))
    assert {r["id"] for r in runs if r["missing_objects"]} == {victim, sweep}
    lines = _ok(project.cli("runs")).stdout.splitlines()
    marked = {line.split()[0] for line in lines if "(missing objects)" in line}
    assert marked == {victim, sweep}
    rows = _json(project.cli("compare", sweep, "--json"))
    assert {r["id"]: r["missing_objects"] for r in rows}[victim] is True
    assert sum(r["missing_objects"] for r in rows) == 1
    table = _ok(project.cli("compare", sweep)).stdout
    assert next(line for line in table.splitlines() if line.startswith(victim)).split()[2:4] == [
        "succeeded",
        "(missing",
    ]
    assert _json(project.cli("runs", "show", victim, "--json"))["missing_objects"] is True
    assert "status   succeeded (missing objects)" in _ok(project.cli("runs", "show", victim)).stdout


def test_gc_drops_runs_by_name_and_age_with_dry_first(three: Project) -> None:
    _ok(three.cli("run", "--param", "train.lr=0.9", "-n", "big"))
    before = _json(three.cli("runs", "--json"))
    big = next(r["id"] for r in before if r["name"] == "big")

    dry = _ok(three.cli("gc", "--drop-runs", "big", "--dry")).stdout
    assert "would drop 1 recorded run" in dry
    assert _json(three.cli("runs", "--json")) == before
    report = _json(three.cli("gc", "--drop-runs", "big", "--json"))
    assert report["runs_dropped"] == [big]
    assert big not in {r["id"] for r in _json(three.cli("runs", "--json"))}

    assert "dropped 0 recorded runs" in _ok(three.cli("gc", "--runs-older-than", "1d")).stdout
    assert "dropped 1 recorded run" in _ok(three.cli("gc", "--runs-older-than", "0h")).stdout
    assert _json(three.cli("runs", "--json")) == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--runs-older-than", "30"], "not an age"),
        (["--drop-runs"], "needs RUN arguments"),
        (["nope"], "need --drop-runs"),
        (["--drop-runs", "nope"], "no run 'nope'"),
    ],
)
def test_gc_run_options_misused_exit_2_with_one_line(
    three: Project, args: list[str], says: str
) -> None:
    lines = _error(three.cli("gc", *args), 2)
    assert says in lines[0]
