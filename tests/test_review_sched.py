"""Review of the scheduler, command runner and DVC compatibility: demonstrated bugs.

Every test here is a strict xfail: it shows a real defect and will start failing (XPASS) the
day the defect is fixed, so the marker can then be removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from pipeline.api import ReproOptions, repro
from pipeline.errors import PipelineError
from pipeline.execute.scheduler import Outcome
from tests.conftest import Project, alive, cli_env, outcomes, wait_gone


@pytest.fixture
def p(make_project: Callable[..., Project]) -> Project:
    return make_project("review")


def test_timed_out_stage_that_exits_zero_on_sigterm_is_a_failure(p: Project) -> None:
    # A training script that saves a checkpoint on SIGTERM and exits 0 is common.
    p.manifest(
        {
            "stages": {
                "train": {
                    "cmd": "trap 'exit 0' TERM; echo partial > model.txt; sleep 30 & wait",
                    "outs": ["model.txt"],
                    "timeout": 1,
                }
            }
        }
    )
    result = repro(ReproOptions(root=p.root, jobs=1, run_cache=False))
    assert outcomes(result)["train"] is Outcome.FAILED
    assert "timed out" in str(result.failed.error if result.failed else "")


def test_missing_wdir_fails_one_stage_not_the_whole_run(p: Project) -> None:
    p.manifest(
        {
            "stages": {
                "slow": {"cmd": "sleep 0.5; echo a > a.txt", "outs": ["a.txt"]},
                "nowhere": {"wdir": "sub", "cmd": "true"},  # sub/ does not exist
            }
        }
    )
    try:
        result = repro(ReproOptions(root=p.root, jobs=2, keep_going=True, run_cache=False))
    except Exception as exc:
        pytest.fail(f"the run crashed instead of failing one stage: {exc!r}")
    got = outcomes(result)
    assert got["nowhere"] is Outcome.FAILED
    assert isinstance(result.failed.error if result.failed else None, PipelineError)
    assert got["slow"] is Outcome.RAN
    assert "slow" in p.lock()["stages"]


def test_yaml_12_scalars_render_like_dvc(p: Project) -> None:
    p.params("country: no\nanswer: yes\n")
    p.manifest("stages:\n  a:\n    cmd: echo ${country} ${answer} > out.txt\n    outs: [out.txt]\n")
    repro(ReproOptions(root=p.root, jobs=1))
    assert p.read("out.txt") == "no yes\n"  # DVC: the strings 'no' and 'yes'


def test_matrix_name_collision_is_not_silent(p: Project) -> None:
    p.manifest(
        "stages:\n"
        "  m:\n"
        "    matrix:\n"
        "      a: [x-y, x]\n"
        "      b: [z, y-z]\n"
        '    cmd: echo ${item.a} ${item.b} > "o_${item.a}_${item.b}.txt"\n'
        '    outs: ["o_${item.a}_${item.b}.txt"]\n'
    )
    # 4 combinations; (x-y, z) and (x, y-z) are both named m@x-y-z.
    try:
        plan = p.plan()
    except PipelineError:
        return  # a load error naming the clash is an acceptable fix
    assert len(plan.order) == 4, plan.order


def _reset_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_second_interrupt_still_stops_a_stage_that_ignores_sigterm(p: Project) -> None:
    p.manifest(
        "stages:\n"
        "  stubborn:\n"
        "    cmd: trap '' TERM; echo $$ > ../stubborn.pid; sleep 60; echo x > x.txt\n"
        "    outs: [x.txt]\n"
    )
    pid_file = p.root.parent / "stubborn.pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(p.root), "repro", "-j", "2"],
        cwd=p.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(),
        preexec_fn=_reset_sigint,  # noqa: PLW1509 - SIGINT must not be inherited as ignored
    )
    shell_pid = None
    exited = False
    try:
        deadline = time.monotonic() + 20
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert proc.poll() is None
            assert time.monotonic() < deadline, "the stage never started"
            time.sleep(0.02)
        shell_pid = int(pid_file.read_text())
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)  # impatient user, still inside the grace period
        try:
            proc.wait(timeout=12)
            exited = True
        except subprocess.TimeoutExpired:
            exited = False
        stage_gone = wait_gone(shell_pid, 1)
    finally:
        if shell_pid is not None and alive(shell_pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell_pid, signal.SIGKILL)  # the stage runs in its own session
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert exited, "repro hung after the second Ctrl-C"
    assert stage_gone, "the stage's shell survived"
