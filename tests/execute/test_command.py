"""Running stage commands: bash, one session per command, output streamed, trees stopped, and
background children and SIGTERM handlers that cannot fool it.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.api import ReproOptions, repro
from pipeline.execute.command import (
    INTERRUPT_STEPS,
    ProcessTracker,
    run_commands,
    sigterm_as_interrupt,
)
from pipeline.execute.scheduler import Outcome
from tests.conftest import Project, alive, outcomes, ran, wait_gone


class Collect:
    """A sink that keeps every chunk of output."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def __call__(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode()


def _run(tmp_path: Path, *cmds: str, **kwargs: object) -> tuple[int, str]:
    sink = Collect()
    env = {**os.environ, "GREETING": "hello"}
    result = run_commands(cmds, tmp_path, env, sink, **kwargs)  # type: ignore[arg-type]
    return result.code, sink.text


def test_output_and_errors_are_streamed_to_the_sink(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "echo out; echo err >&2; printf 'no newline'")
    assert code == 0
    assert out == "out\nerr\nno newline"


def test_commands_run_in_order_and_stop_at_the_first_failure(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "echo one", "echo two; exit 5", "echo three")
    assert code == 5
    assert out == "one\ntwo\n"


def test_each_command_runs_in_the_given_directory_with_the_given_environment(
    tmp_path: Path,
) -> None:
    code, out = _run(tmp_path, 'echo "$GREETING from $(pwd -P)"')
    assert (code, out) == (0, f"hello from {tmp_path.resolve()}\n")


def test_a_multi_line_command_is_one_bash_script(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "x=1\nx=$((x + 1))\necho $x $BASH_VERSION | cut -c1-2")
    assert (code, out) == (0, "2 \n")


def test_commands_get_no_stdin(tmp_path: Path) -> None:
    # Our own stdin is a pipe that stays open (as when piped from a command that keeps
    # running): a command reading an inherited stdin would block on it until the timeout.
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    os.close(read_end)
    try:
        assert os.readlink("/proc/self/fd/0").startswith("pipe:")
        sink = Collect()
        cmd = "readlink /proc/self/fd/0; cat; echo done"
        result = run_commands((cmd,), tmp_path, dict(os.environ), sink, timeout=30)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(write_end)
    assert not result.timed_out, "the command read the caller's stdin"
    assert (result.code, sink.text) == (0, f"{os.devnull}\ndone\n")


def test_each_command_leads_its_own_session(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "echo $$ $(cut -d' ' -f6 /proc/$$/stat)")
    pid, session = out.split()
    assert code == 0
    assert pid == session
    assert int(session) != os.getsid(0)


def test_an_interrupt_while_streaming_stops_the_whole_process_tree(tmp_path: Path) -> None:
    pids: list[int] = []

    def sink(chunk: bytes) -> None:
        pids.extend(int(p) for p in chunk.split())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_commands(("sleep 30 & echo $!; wait",), tmp_path, dict(os.environ), sink)
    assert len(pids) == 1
    assert wait_gone(pids[0], 10)


def test_stragglers_ignoring_sigint_and_sigterm_are_killed_on_the_interrupt_schedule(
    tmp_path: Path,
) -> None:
    pids: list[int] = []

    def sink(chunk: bytes) -> None:
        pids.extend(int(p) for p in chunk.split())
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        cmd = "trap '' INT TERM; sleep 60 & echo $!; wait"
        run_commands((cmd,), tmp_path, dict(os.environ), sink)
    elapsed = time.monotonic() - started
    assert len(pids) == 1
    # The shell and its sleep ignore SIGINT and SIGTERM: only the SIGKILL after both steps of
    # the schedule stops them, so the call cannot return before it, nor the sleep end.
    assert elapsed >= sum(grace for _, grace in INTERRUPT_STEPS)
    assert elapsed < 30  # a hang guard: the stragglers were not left running
    assert wait_gone(pids[0], 10)


def test_a_tracker_stops_running_commands_from_another_thread(tmp_path: Path) -> None:
    tracker = ProcessTracker()
    marker = tmp_path / "started"
    results: list[int] = []
    sink = Collect()

    def work() -> None:
        # The process that makes the marker is the one the signal must reach: with
        # `touch; sleep`, a SIGINT landing while bash forks the sleep is lost in the child.
        script = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(30)"
        cmds = (f"exec {sys.executable} -c {shlex.quote(script)}", "echo never")
        results.append(run_commands(cmds, tmp_path, dict(os.environ), sink, tracker=tracker).code)

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 10
    while not marker.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    tracker.stop_all()
    thread.join(10)
    assert not thread.is_alive()
    assert results == [-signal.SIGINT]  # Ctrl-C's own signal first, as from a terminal
    assert "never" not in sink.text


def test_timeout_stops_the_command(tmp_path: Path) -> None:
    sink = Collect()
    started = time.monotonic()
    result = run_commands(("sleep 60",), tmp_path, dict(os.environ), sink, timeout=0.3)
    assert result.timed_out
    assert result.code == -signal.SIGTERM
    assert time.monotonic() - started < 30  # a hang guard, well before the sleep would end


def test_sigterm_as_interrupt_raises_keyboard_interrupt_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
    assert signal.getsignal(signal.SIGTERM) == before


def test_alive_helper_sees_exited_processes_as_gone() -> None:
    # the interrupt tests rely on this helper; it must tell a dead child from a live one
    assert alive(os.getpid())
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(0)
    assert wait_gone(pid, 10)  # a zombie (not yet reaped) counts as gone
    os.waitpid(pid, 0)
    assert not alive(pid)


# -- stage commands run by repro ---------------------------------------------------------------


def test_timed_out_stage_that_exits_zero_on_sigterm_is_a_failure(p: Project) -> None:
    # A training script that saves a checkpoint on SIGTERM and exits 0 is common.
    trap_set, trapped = p.root.parent / "trap-set", p.root.parent / "trapped"
    p.manifest(
        {
            "stages": {
                "train": {
                    "cmd": f"trap 'touch {trapped}; exit 0' TERM; touch {trap_set}; "
                    "echo partial > model.txt; sleep 60 & wait",
                    "outs": ["model.txt"],
                    "timeout": 3,
                }
            }
        }
    )
    result = repro(ReproOptions(root=p.root, jobs=1, run_cache=False))
    assert trap_set.exists(), "the timeout came before the stage installed its trap"
    assert trapped.exists(), "the stage never ran its SIGTERM trap"
    assert outcomes(result)["train"] is Outcome.FAILED
    assert "timed out" in str(result.failed.error if result.failed else "")


def test_a_background_child_does_not_hold_the_stage_open(p: Project) -> None:
    pidfile = p.root.parent / "bg.pid"
    p.manifest(
        {
            "stages": {
                "s": {
                    "cmd": f"(sleep 30 & echo $! > {pidfile}); echo done > out.txt",
                    "outs": ["out.txt"],
                }
            }
        }
    )
    started = time.monotonic()
    result = repro(ReproOptions(root=p.root, jobs=1))
    elapsed = time.monotonic() - started
    os.kill(int(pidfile.read_text()), 9)
    assert ran(result) == ["s"]
    assert elapsed < 20  # the shell is done long before its 30 s background child


def test_a_command_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    # PR_SET_PDEATHSIG: a SIGKILLed pipeline cannot stop its stages, so the kernel must
    runner = (
        "import os, sys; from pathlib import Path;"
        " from pipeline.execute.command import run_commands;"
        " run_commands(('echo $$ > shell.tmp && mv shell.tmp shell.pid; sleep 300',),"
        " Path(sys.argv[1]), dict(os.environ), lambda chunk: None)"
    )
    proc = subprocess.Popen([sys.executable, "-c", runner, str(tmp_path)])
    pid_file = tmp_path / "shell.pid"
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the command never ran"
            time.sleep(0.01)
        shell = int(pid_file.read_text())
        proc.kill()
        proc.wait()
        assert wait_gone(shell, 10), "the command outlived the process that started it"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
