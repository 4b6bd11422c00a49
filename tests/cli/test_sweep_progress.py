"""What a running sweep shows: a live line per running point in a terminal (read through a
pseudo-terminal), plain lines in a pipe, and a periodic line when nothing else is printed."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.cli.progress import SweepView
from tests.cli.support import _error
from tests.conftest import Project, cli_env
from tests.experiments.support import held_at_train, setup, three_stages

_ESCAPE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _read_until(fd: int, pattern: re.Pattern[bytes], seen: bytearray, seconds: float) -> bool:
    """Read the terminal into `seen` until `pattern` is in it (escapes removed), or EOF."""
    deadline = time.monotonic() + seconds
    while not pattern.search(_ESCAPE.sub(b"", bytes(seen))):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            return False
        if not chunk:
            return False
        seen.extend(chunk)
    return True


@pytest.mark.slow
def test_a_sweep_in_a_terminal_shows_its_running_points_before_any_finishes(
    project: Project, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    held_at_train(project, barrier)  # train waits for barrier/go, which the test creates
    main, child = pty.openpty()
    command = [sys.executable, "-m", "pipeline", "-C", str(project.root), "run"]
    proc = subprocess.Popen(
        [*command, "--sweep", "train.lr=0.2,0.3", "-j", "2"],
        cwd=project.root,
        stdin=child,
        stdout=child,
        stderr=child,
        env=cli_env(TERM="xterm-256color", COLUMNS="120"),
    )
    os.close(child)
    seen = bytearray()
    try:
        # a spinner line per point: its label, its stage and the seconds it has been running
        for lr in (b"0.2", b"0.3"):
            live = re.compile(rb"train\.lr=" + re.escape(lr) + rb"  train  \d+s")
            assert _read_until(main, live, seen, 60), bytes(seen).decode(errors="replace")
        assert proc.poll() is None and not (barrier / "go").exists()  # no point finished
        (barrier / "go").touch()
        _read_until(main, re.compile(rb"sweep recorded as run"), seen, 60)
        assert proc.wait(timeout=60) == 0, bytes(seen).decode(errors="replace")
    finally:
        (barrier / "go").touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)


def test_a_one_job_sweep_in_a_pipe_streams_each_points_output_in_plain_lines(
    project: Project,
) -> None:
    manifest = three_stages(project)
    train = 'test "${train.lr}" != 0.5 && echo "training at ${train.lr}" && '  # 0.5 fails
    manifest["stages"]["train"]["cmd"] = train + manifest["stages"]["train"]["cmd"]
    setup(project, manifest)
    done = project.cli("run", "--sweep", "train.lr=0.2,0.5", "-j", "1")
    _error(done, 1)
    lines = done.stdout.splitlines()
    for lr in ("0.2", "0.5"):
        assert any(line.startswith(f"▶ train.lr={lr}: train (") for line in lines), done.stdout
    assert "train.lr=0.2 | training at 0.2" in lines
    assert "train.lr=0.5 | training at 0.5" not in lines  # `test` failed before the echo
    assert any(line.startswith("train.lr=0.2 ✓ train ") for line in lines)
    assert "\x1b" not in done.stdout + done.stderr


def test_without_a_terminal_a_sweep_says_every_while_which_points_still_run() -> None:
    buffer = io.StringIO()
    out = Console(file=buffer, force_terminal=False, width=200)
    with SweepView(out, jobs=2, heartbeat=0.01) as view:
        view.events_for("lr=0.1", 2)
        view.started("lr=0.1", "train")
        deadline = time.monotonic() + 30
        while "… running: lr=0.1  train  " not in buffer.getvalue():
            assert time.monotonic() < deadline, buffer.getvalue()
            time.sleep(0.01)
        view.finished("lr=0.1")
    assert "\x1b" not in buffer.getvalue()
