"""The command line as users run it: `python -m pipeline -C DIR ...` in a subprocess.

Exit codes (DESIGN §9): 0 ok, 1 stage failed, 2 usage or manifest error, 4 data error,
130 interrupted. User errors are one `error:` line plus a `hint:` line, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CHAIN_ORDER, Project, alive, cli_env, record, wait_gone

from pipeline._version import __version__

ANSI = re.compile(r"\x1b\[")


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr
    assert "Traceback" not in done.stdout


# -- manifest errors: file:line:col, the message, a hint, exit code 2 ------------------------

MANIFEST_ERRORS = {
    "unknown-key": (
        "stages:\n  train:\n    cmd: python train.py\n    outz: [model.pkl]\n",
        None,
        "MLproject:4:5: stages.train.outz: unknown key 'outz'",
        "did you mean 'outs'?",
    ),
    "wrong-type-list": (
        "stages:\n  train:\n    cmd: python train.py\n    deps: data.csv\n",
        None,
        "MLproject:4:11: stages.train.deps: expected a list, e.g. [data/raw.csv, src/train.py]",
        None,
    ),
    "missing-cmd": (
        "stages:\n  train:\n    deps: [data.csv]\n    outs: [model.pkl]\n",
        None,
        "MLproject:3:5: stages.train.cmd: missing required key 'cmd'",
        "every stage needs `cmd:`, the shell command that produces its outs",
    ),
    "unknown-param-in-template": (
        "stages:\n  train:\n    cmd: python train.py --lr ${train.lrr}\n",
        "train:\n  lr: 0.1\n",
        "MLproject:3:10: stages.train.cmd: unknown parameter 'train.lrr' in ${train.lrr}",
        "did you mean 'train.lr' or 'train'?",
    ),
    "two-stages-one-output": (
        "stages:\n  a:\n    cmd: echo a > out.txt\n    outs: [out.txt]\n"
        "  b:\n    cmd: echo b > out.txt\n    outs: [out.txt]\n",
        None,
        "MLproject:7:12: stages.b.outs.0: out.txt is already an output of stage 'a'",
        "each path can be written by one stage only",
    ),
    "output-inside-output": (
        "stages:\n  a:\n    cmd: mkdir data\n    outs: [data]\n"
        "  b:\n    cmd: echo b > data/b.txt\n    outs: [data/b.txt]\n",
        None,
        "MLproject:7:12: stages.b.outs.0: output data/b.txt is inside output data of stage 'a'",
        "declare only the enclosing directory, or split it into sibling paths",
    ),
    "absolute-path": (
        "stages:\n  a:\n    cmd: cat /etc/hostname > h.txt\n    deps: [/etc/hostname]\n"
        "    outs: [h.txt]\n",
        None,
        "MLproject:4:12: stages.a.deps.0: absolute path '/etc/hostname'",
        "paths are relative to the project root",
    ),
    "path-escaping-root": (
        "stages:\n  a:\n    cmd: echo x > ../x.txt\n    outs: [../x.txt]\n",
        None,
        "MLproject:4:12: stages.a.outs.0: path '../x.txt' is outside the project root",
        "paths are relative to the project root",
    ),
    "cycle": (
        "stages:\n  a:\n    cmd: cat b.txt > a.txt\n    deps: [b.txt]\n    outs: [a.txt]\n"
        "  b:\n    cmd: cat a.txt > b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n",
        None,
        "MLproject:3:5: stages.a: dependency cycle: a → b → a",
        "remove one of these deps so the stages form a DAG",
    ),
    "invalid-yaml": (
        "stages:\n  a:\n    cmd: [echo, hi\n    outs: [a.txt]\n",
        None,
        "MLproject:4:9: invalid YAML: while parsing a flow sequence "
        "did not find expected ',' or ']'",
        "check indentation and quoting near that position",
    ),
    "empty-manifest": (
        "",
        None,
        "MLproject:1:1: the manifest is empty",
        "declare at least `stages:`",
    ),
    "unknown-param-in-params": (
        "stages:\n  train:\n    cmd: python train.py\n    params: [train.lr, train.epoch]\n",
        "train:\n  lr: 0.1\n  epochs: 3\n",
        "MLproject:4:24: stages.train.params.1: param 'train.epoch' not found in params.yaml",
        "did you mean 'train.epochs' or 'train.lr' or 'train'?",
    ),
    "duplicate-key": (
        "stages:\n  train:\n    cmd: python train.py\n  train:\n    cmd: python other.py\n",
        None,
        "MLproject:4:3: invalid YAML: duplicate key 'train'",
        "check indentation and quoting near that position",
    ),
}


@pytest.mark.parametrize(
    ("manifest", "params", "message", "hint"),
    [pytest.param(*case, id=name) for name, case in MANIFEST_ERRORS.items()],
)
def test_manifest_error_is_reported_with_position_and_exit_code_2(
    project: Project, manifest: str, params: str | None, message: str, hint: str | None
) -> None:
    project.manifest(manifest)
    if params is not None:
        project.params(params)
    done = project.cli("repro")
    assert done.returncode == 2, done.stderr
    expected = [f"error: {message}"] + ([f"hint: {hint}"] if hint else [])
    assert done.stderr.splitlines() == expected
    assert done.stdout == ""
    _no_traceback(done)
    assert not project.exists("pipeline.lock")


def test_path_escaping_the_root_exits_2_pointing_at_the_path(project: Project) -> None:
    project.manifest("stages:\n  a:\n    cmd: echo x > ../x.txt\n    outs: [data/../../x.txt]\n")
    done = project.cli("repro")
    assert done.returncode == 2
    first, hint = done.stderr.splitlines()
    assert first.startswith("error: MLproject:4:12: stages.a.outs.0: path ")
    assert first.endswith("data/../../x.txt' is outside the project root")
    assert hint == "hint: paths are relative to the project root"
    assert not (project.root.parent / "x.txt").exists()
    _no_traceback(done)


def test_manifest_that_is_not_utf8_is_a_manifest_error(project: Project) -> None:
    project.write("MLproject", b"stages:\n  a:\n    cmd: echo \xff\n")
    done = project.cli("status")
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: MLproject: not valid UTF-8 (invalid start byte)"]
    _no_traceback(done)


def test_manifest_error_names_the_path_relative_to_the_directory_given_with_c(
    project: Project,
) -> None:
    """`-C DIR` works like `git -C DIR`: as if started in DIR, messages included."""
    project.manifest("stages:\n  a:\n    cmd: x\n    outz: []\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "-C", "proj", "status"],
        cwd=project.root.parent,
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: MLproject:4:5: stages.a.outz: unknown key 'outz'\n")


def test_no_manifest_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "-C", str(empty), "status"],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == (
        f"error: no MLproject or dvc.yaml found in {empty.resolve()} or any parent directory"
    )
    _no_traceback(done)


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


def test_unknown_target_is_a_usage_error_with_a_suggestion(chain: Project) -> None:
    for command in (("repro", "trian"), ("status", "trian")):
        done = chain.cli(*command)
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            "error: unknown stage 'trian'",
            "hint: did you mean 'train'?",
        ]
        _no_traceback(done)
    assert chain.executions() == []


def test_failing_stage_exits_1_naming_the_stage(project: Project) -> None:
    project.manifest(
        {
            "stages": {
                "a": {"cmd": "echo a > a.txt", "outs": ["a.txt"]},
                "b": {"cmd": "echo boom; exit 3", "deps": ["a.txt"], "outs": ["b.txt"]},
            }
        }
    )
    done = project.cli("repro")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: stage b failed with exit code 3",
        "hint: full output in .pipeline/logs/b.log",
    ]
    assert "boom\n" in done.stdout
    assert sorted(project.lock()["stages"]) == ["a"]
    _no_traceback(done)


def test_stage_not_creating_its_output_exits_1(project: Project) -> None:
    project.manifest({"stages": {"a": {"cmd": "echo hi", "outs": ["a.txt"]}}})
    done = project.cli("repro")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: stage a did not create a.txt",
        "hint: the command succeeded but never wrote this declared output",
    ]


def test_missing_dep_with_no_producer_exits_4(project: Project) -> None:
    project.manifest(
        {"stages": {"x": {"cmd": "cat in.txt > x.txt", "deps": ["in.txt"], "outs": ["x.txt"]}}}
    )
    done = project.cli("repro")
    assert done.returncode == 4
    assert done.stderr.splitlines() == [
        "error: stage x: dependency in.txt does not exist",
        "hint: create it, or add the stage that produces it to the manifest",
    ]
    _no_traceback(done)


def test_corrupt_lock_file_exits_4(chain_done: Project) -> None:
    chain_done.write("pipeline.lock", "schema: 1\nstages: [\n")
    done = chain_done.cli("status")
    assert done.returncode == 4
    assert done.stderr.startswith("error: corrupt lock file: pipeline.lock:3:1: invalid YAML")
    _no_traceback(done)


# -- dag, version, -C --------------------------------------------------------------------------


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


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout == f"pipeline, version {__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", __version__)


def test_dash_c_runs_in_another_directory(chain: Project, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "-C", str(chain.root), "repro"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(chain.executions()) == sorted(CHAIN_ORDER)
    assert (chain.root / "pipeline.lock").is_file()
    assert list(elsewhere.iterdir()) == []


def test_dash_c_with_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "-C", str(tmp_path / "nope"), "status"],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    _no_traceback(done)


# -- colour -------------------------------------------------------------------------------------


def test_output_to_a_pipe_has_no_ansi_escapes(chain: Project) -> None:
    runs = [chain.cli("repro", "--dry"), chain.cli("repro"), chain.cli("status", "nosuch")]
    chain.write("raw.txt", "raw 2\n")
    runs.append(chain.cli("status"))
    for done in runs:
        assert not ANSI.search(done.stdout), done.stdout
        assert not ANSI.search(done.stderr), done.stderr
    # each of them really printed styled things: stage headers, an error, stale stages
    assert "prepare (new stage)" in runs[1].stdout
    assert runs[2].stderr.startswith("error: unknown stage 'nosuch'")
    assert "prepare: will run" in runs[3].stdout


def _run_on_terminal(project: Project, *args: str, **env: str) -> bytes:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return what it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(project.root), *args],
        cwd=project.root,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=cli_env(TERM="xterm-256color", **env),
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return output


def test_terminal_output_is_coloured_without_no_color(chain: Project) -> None:
    # the control for the NO_COLOR tests: on a terminal, colour is on by default
    assert ANSI.search(_run_on_terminal(chain, "status").decode())
    assert ANSI.search(_run_on_terminal(chain, "status", "nosuch").decode())


def test_no_color_on_a_terminal_has_no_ansi_escapes_in_status_and_errors(chain: Project) -> None:
    status = _run_on_terminal(chain, "status", NO_COLOR="1").decode()
    assert "prepare: will run" in status
    assert not ANSI.search(status), status
    error = _run_on_terminal(chain, "status", "nosuch", NO_COLOR="1").decode()
    assert "error: unknown stage 'nosuch'" in error
    assert not ANSI.search(error), error


def test_no_color_on_a_terminal_has_no_ansi_escapes_in_repro(chain: Project) -> None:
    out = _run_on_terminal(chain, "repro", NO_COLOR="1").decode()
    assert sorted(chain.executions()) == sorted(CHAIN_ORDER)
    assert not ANSI.search(out), out


# -- interruption -------------------------------------------------------------------------------

INTERRUPTIBLE = """\
stages:
  first:
    cmd: echo one > one.txt
    outs: [one.txt]
  second:
    cmd: |
      echo $$ > ../shell.pid
      bash -c 'sleep 30 & echo $! > ../sleep.pid.tmp && mv ../sleep.pid.tmp ../sleep.pid; wait'
      echo two > two.txt
    deps: [one.txt]
    outs: [two.txt]
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupt_stops_the_stage_tree_and_keeps_finished_stages(
    project: Project, sig: signal.Signals
) -> None:
    project.manifest(INTERRUPTIBLE)
    sleep_pid_file = project.root.parent / "sleep.pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(project.root), "repro"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    sleep_pid = shell_pid = None
    try:
        deadline = time.monotonic() + 20
        while not sleep_pid_file.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the second stage never started"
            time.sleep(0.01)
        sleep_pid = int(sleep_pid_file.read_text())
        shell_pid = int((project.root.parent / "shell.pid").read_text())
        assert alive(sleep_pid)

        sent = time.monotonic()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=15)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in (sleep_pid, shell_pid):  # never leave our own sleep behind
            if pid is not None and alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    assert proc.returncode == 130, stderr
    assert elapsed < 5
    assert wait_gone(sleep_pid, 2), "the stage's sleep survived the interrupt"
    assert wait_gone(shell_pid, 2), "the stage's shell survived the interrupt"
    assert stderr.decode().splitlines() == [
        "error: interrupted; the lock keeps every stage that finished",
        "hint: run `pipeline repro` again to continue",
    ]
    assert "Traceback" not in stdout.decode()
    lock = project.lock()
    assert sorted(lock["stages"]) == ["first"]
    assert not project.exists("two.txt")
