"""The command line as users run it: `python -m pipeline -C DIR ...` in a subprocess, and what
every command shares.

Exit codes (DESIGN §9): 0 ok, 1 stage failed, 2 usage or manifest error, 4 data error,
130 interrupted. User errors are one `error:` line plus a `hint:` line, never a traceback.
Also `-C`, `--version`, colour on a terminal and `NO_COLOR`, and interrupts.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from pipeline._version import __version__
from tests.conftest import CHAIN_ORDER, Project, alive, cli_env, wait_gone

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


# -- errors while running: unknown stages, failing stages, missing and damaged data ------------


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


# -- --version and -C --------------------------------------------------------------------------


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
    deadline = time.monotonic() + 60  # a hang guard: the command fails the test if it hangs
    try:
        while True:
            assert time.monotonic() < deadline, f"the command never finished: {output!r}"
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
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"the command closed the terminal but never exited: {output!r}")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.terminate()  # not SIGKILL: the CLI stops its stages on the way out
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
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
    for stage in CHAIN_ORDER:  # the styled parts were printed: each stage's header
        assert f"{stage} (new stage)" in out, out
    assert "4 ran in " in out, out
    assert not ANSI.search(out), out


# -- interruption -------------------------------------------------------------------------------

INTERRUPTIBLE = """\
stages:
  first:
    cmd: echo one > one.txt
    outs: [one.txt]
  second:
    cmd: |
      trap 'echo > ../got-term; exit 143' TERM INT
      echo $$ > ../shell.pid
      bash -c 'sleep 300 & echo $! > ../sleep.pid.tmp && mv ../sleep.pid.tmp ../sleep.pid; wait'
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
        stdout, stderr = proc.communicate(timeout=60)
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
    assert elapsed < 30  # a hang guard, well before the stage's sleep would end
    assert wait_gone(sleep_pid, 10), "the stage's sleep survived the interrupt"
    assert wait_gone(shell_pid, 10), "the stage's shell survived the interrupt"
    # the signal pipeline got stopped the stage (its trap ran), not the SIGKILL after the grace
    assert (project.root.parent / "got-term").exists(), "the stage never got SIGTERM or SIGINT"
    assert stderr.decode().splitlines() == [
        "error: interrupted; the lock keeps every stage that finished",
        "hint: run `pipeline repro` again to continue",
    ]
    assert "Traceback" not in stdout.decode()
    lock = project.lock()
    assert sorted(lock["stages"]) == ["first"]
    assert not project.exists("two.txt")


def _reset_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_second_interrupt_still_stops_a_stage_that_ignores_sigterm(p: Project) -> None:
    # The stage notes each SIGINT or SIGTERM in ../term and carries on, for up to 300 s.
    p.manifest(
        "stages:\n"
        "  stubborn:\n"
        "    cmd: trap 'echo >> ../term' INT TERM; echo $$ > ../stubborn.pid.tmp;"
        " mv ../stubborn.pid.tmp ../stubborn.pid;"
        " while [ $SECONDS -lt 300 ]; do sleep 0.1; done; echo x > x.txt\n"
        "    outs: [x.txt]\n"
    )
    pid_file, term = p.root.parent / "stubborn.pid", p.root.parent / "term"
    # A grace period of 120 s: only the second Ctrl-C can end the run within the test's guard.
    cli = (
        "import pipeline.execute.command as c, signal as s;"
        " c.INTERRUPT_STEPS = ((s.SIGINT, 120), (s.SIGTERM, 120)); "
        "from pipeline.cli.main import run; run()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", cli, "-C", str(p.root), "repro", "-j", "2"],
        cwd=p.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cli_env(),
        preexec_fn=_reset_sigint,  # noqa: PLW1509 - SIGINT must not be inherited as ignored
    )
    shell_pid = None
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the stage never started"
            time.sleep(0.02)
        shell_pid = int(pid_file.read_text())
        proc.send_signal(signal.SIGINT)
        first = time.monotonic()
        while not term.exists():  # the stage got SIGTERM: repro is in its grace period
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < first + 30, "the first Ctrl-C never reached the stage"
            time.sleep(0.02)
        assert proc.poll() is None, "repro ended before the second Ctrl-C"
        proc.send_signal(signal.SIGINT)  # impatient user, still inside the grace period
        _, stderr = proc.communicate(timeout=60)  # a hang guard, half the grace period
        elapsed = time.monotonic() - first
        stage_gone = wait_gone(shell_pid, 10)
    finally:
        if shell_pid is not None and alive(shell_pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell_pid, signal.SIGKILL)  # the stage runs in its own session
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr
    assert elapsed < 60, "the second Ctrl-C did not cut the grace period short"
    assert stage_gone, "the stage's shell survived"


def test_every_command_is_listed_once_and_loads_from_its_module() -> None:
    import importlib

    from pipeline.cli import main

    defined = {}
    for module in sorted(set(main.COMMANDS.values())):
        for name, command in importlib.import_module(f"pipeline.cli.{module}").COMMANDS.items():
            defined[name] = (module, command)
    assert {name: module for name, (module, _) in defined.items()} == main.COMMANDS
    ctx = click.Context(main.cli)
    for name, (_, command) in defined.items():
        assert main.cli.get_command(ctx, name) is command
        assert command.name == name


def test_version_loads_no_command_module() -> None:
    code = (
        "import sys\n"
        "from pipeline.cli.main import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [m for m in sys.modules if m.startswith(('pipeline.cli.', 'pipeline.api'))]\n"
        "print(sorted(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=cli_env()
    )
    assert done.stdout.splitlines()[-1] == "['pipeline.cli.main', 'pipeline.cli.options']"
