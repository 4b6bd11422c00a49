"""`pipeline status`, `repro` and `dag` in a subprocess: text and JSON output, dry runs, targets,
the keep-going summary, parallel output, and what a killed repro leaves in the record.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import api
from tests.cli.support import _json, _ok
from tests.conftest import CHAIN_ORDER, Project, alive, cli_env, record, wait_gone
from tests.execute.support import CHAIN_WITH_FAILURE

# -- status ------------------------------------------------------------------------------------


def test_status_json_structure(chain_done: Project) -> None:
    chain_done.write("raw.txt", "raw 2\n")
    done = chain_done.cli("status", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "up_to_date": False,
        "stages": [
            {
                "stage": "prepare",
                "action": "run",
                "reasons": [
                    {"kind": "dep modified", "text": "dep raw.txt modified", "subject": "raw.txt"}
                ],
            },
            {"stage": "other", "action": "up to date", "reasons": []},
            {
                "stage": "train",
                "action": "after upstream",
                "reasons": [
                    {"kind": "upstream", "text": "upstream prepare will run", "subject": "prepare"}
                ],
            },
            {
                "stage": "evaluate",
                "action": "after upstream",
                "reasons": [
                    {"kind": "upstream", "text": "upstream train will run", "subject": "train"}
                ],
            },
        ],
        "data": [],
    }
    assert chain_done.executions() == []


def test_status_json_when_up_to_date_and_param_changes(chain_done: Project) -> None:
    up = json.loads(chain_done.cli("status", "--json").stdout)
    assert up["up_to_date"] is True
    assert [(s["stage"], s["action"], s["reasons"]) for s in up["stages"]] == [
        (name, "up to date", []) for name in CHAIN_ORDER
    ]

    chain_done.params(chain_done.read("params.yaml").replace("lr: 0.1", "lr: 0.01"))
    data = json.loads(chain_done.cli("status", "--json", "train").stdout)
    assert data["up_to_date"] is False
    assert [s["stage"] for s in data["stages"]] == ["prepare", "train"]
    assert data["stages"][1]["reasons"] == [
        {
            "kind": "param changed",
            "text": "param train.lr 0.1→0.01",
            "subject": "train.lr",
            "old": 0.1,
            "new": 0.01,
        }
    ]


def _strict_json(text: str) -> object:
    """Parse RFC 8259 JSON: NaN and Infinity are not JSON (jq and browsers reject them)."""

    def reject(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=reject)


def test_status_json_is_strict_json_when_a_param_becomes_nan(project: Project) -> None:
    project.params("v: 1\n")
    project.manifest({"stages": {"s": {"cmd": "echo ${v} > s.txt", "outs": ["s.txt"]}}})
    assert project.cli("repro").returncode == 0
    project.params("v: .nan\n")
    done = project.cli("status", "--json")
    assert done.returncode == 0
    data = _strict_json(done.stdout)
    assert isinstance(data, dict)
    assert data["stages"][0]["reasons"][0]["text"] == "param v 1→nan"


def test_status_text_lists_stale_stages_with_reasons(chain_done: Project) -> None:
    chain_done.write("other.txt", "other 2\n")
    done = chain_done.cli("status")
    assert done.returncode == 0
    assert done.stdout == (
        "other: will run\n    dep other.txt modified\n\n1 of 4 stages need to run; 3 up to date.\n"
    )
    assert chain_done.cli("repro").returncode == 0
    assert chain_done.cli("status").stdout == "Everything is up to date (4 stages).\n"


def test_status_shows_downstream_waiting_on_upstream_then_propagation_stops(
    project: Project,
) -> None:
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
    assert project.cli("repro").returncode == 0
    project.clear_executions()
    project.manifest(project.read("MLproject").replace("printf 'same\\n'", "echo same"))

    status = project.cli("status")
    assert status.stdout == (
        "up: will run\n"
        "    cmd changed\n"
        "down: runs if upstream changes its outputs\n"
        "    upstream up will run\n"
        "\n2 of 2 stages need to run; 0 up to date.\n"
    )
    done = project.cli("repro")
    assert done.returncode == 0
    assert "down is up to date (upstream outputs unchanged)" in done.stdout
    assert project.executions() == ["up"]


def test_status_reports_a_deleted_output(chain_done: Project) -> None:
    (chain_done.root / "other.out").unlink()
    status = chain_done.cli("status").stdout
    assert "other: will be restored from the cache\n    out other.out missing\n" in status


# -- repro -----------------------------------------------------------------------------------


def test_repro_dry_runs_nothing(chain: Project) -> None:
    done = chain.cli("repro", "--dry")
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "prepare: will run",
        "    new stage",
        "other: will run",
        "    new stage",
        "train: will run",
        "    new stage",
        "evaluate: will run",
        "    new stage",
        "",
        "Dry run: 4 would run, nothing was executed.",
    ]
    assert chain.executions() == []
    assert not chain.exists("pipeline.lock")
    assert not chain.exists("model.txt")


def test_repro_runs_then_second_repro_runs_nothing(chain: Project) -> None:
    first = chain.cli("repro")
    assert first.returncode == 0, first.stderr
    assert sorted(chain.executions()) == sorted(CHAIN_ORDER)
    chain.clear_executions()
    second = chain.cli("repro")
    assert second.returncode == 0
    assert second.stdout == "Everything is up to date (4 stages).\n"
    assert chain.executions() == []


def test_repro_force_flag(chain_done: Project) -> None:
    for flag in ("-f", "--force"):
        chain_done.clear_executions()
        done = chain_done.cli("repro", flag, "other")
        assert done.returncode == 0
        assert chain_done.executions() == ["other"]
        assert "other (forced)" in done.stdout


def test_repro_target_runs_only_it_and_its_upstream(chain: Project) -> None:
    done = chain.cli("repro", "train")
    assert done.returncode == 0
    assert chain.executions() == ["prepare", "train"]
    assert sorted(chain.lock()["stages"]) == ["prepare", "train"]


# -- dag ---------------------------------------------------------------------------------------


def test_dag_text(chain: Project) -> None:
    done = chain.cli("dag")
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "prepare",
        "other",
        "train     <- prepare",
        "evaluate  <- train",
    ]


def test_dag_mermaid(chain: Project) -> None:
    done = chain.cli("dag", "--mermaid")
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "flowchart TD",
        '    s0["prepare"]',
        '    s1["train"]',
        '    s2["evaluate"]',
        '    s3["other"]',
        "    s0 --> s1",
        "    s1 --> s2",
    ]


def test_dag_dot(chain: Project) -> None:
    done = chain.cli("dag", "--dot")
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "digraph pipeline {",
        "    rankdir=TB;",
        '    "prepare";',
        '    "train";',
        '    "evaluate";',
        '    "other";',
        '    "prepare" -> "train";',
        '    "train" -> "evaluate";',
        "}",
    ]


# -- what repro prints: the keep-going summary, prefixed parallel output -----------------------


def test_cli_keep_going_exits_1_with_a_summary_table(p: Project) -> None:
    p.manifest(CHAIN_WITH_FAILURE)
    done = p.cli("repro", "-k", "-j", "1")
    assert done.returncode == 1
    assert "error: stage bad failed with exit code 3" in done.stderr
    table = done.stdout[done.stdout.index("stage ") :]
    assert "bad" in table and "failed" in table
    assert "after_bad" in table and "upstream bad failed" in table
    assert "good" in table and "ran" in table


def test_parallel_output_is_prefixed_and_logs_are_kept(p: Project) -> None:
    p.manifest(
        {
            "stages": {
                "a": {"cmd": "echo alpha; echo -n partial"},
                "b": {"cmd": "echo beta"},
            }
        }
    )
    done = p.cli("repro", "-j", "2")
    assert done.returncode == 0, done.stderr
    assert "a | alpha\n" in done.stdout and "a | partial\n" in done.stdout
    assert "b | beta\n" in done.stdout
    assert p.read(".pipeline/logs/a.log") == "alpha\npartial"


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
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if stage_pid is not None and sig is signal.SIGKILL and alive(stage_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(stage_pid, signal.SIGKILL)  # a SIGKILLed parent cannot stop its stage

    if sig is not signal.SIGKILL:
        assert proc.returncode == 130, stderr
        assert wait_gone(stage_pid, 10), "the stage survived the interrupt"
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
