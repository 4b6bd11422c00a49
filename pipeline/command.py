"""Running a stage's shell commands: bash, its own process group, output streamed and logged.

Each command runs in a new session so that Ctrl-C or SIGTERM can stop the whole tree it
spawned (`killpg`), not just the shell; the child never sees the terminal's SIGINT directly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType

from pipeline.errors import EnvironmentSetupError

_GRACE_SECONDS = 5.0
_READ_SIZE = 1 << 16

Sink = Callable[[bytes], None]


def shell() -> str:
    """Path of bash, which runs every stage command."""
    found = shutil.which("bash")
    if found is None:
        raise EnvironmentSetupError("bash not found on PATH", "install bash; stages run with it")
    return found


def run_commands(cmds: tuple[str, ...], cwd: Path, env: Mapping[str, str], sink: Sink) -> int:
    """Run each command in turn; stop at the first non-zero exit status and return it."""
    bash = shell()
    for cmd in cmds:
        code = _run_one(bash, cmd, cwd, env, sink)
        if code != 0:
            return code
    return 0


def _run_one(bash: str, cmd: str, cwd: Path, env: Mapping[str, str], sink: Sink) -> int:
    proc = subprocess.Popen(
        [bash, "-c", cmd],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    try:
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, _READ_SIZE):
            sink(chunk)
        return proc.wait()
    except BaseException:
        stop_group(proc)
        raise
    finally:
        proc.stdout.close()


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group; after a grace period SIGKILL whatever is left."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_GRACE_SECONDS)
    _signal_group(proc.pid, signal.SIGKILL)  # stragglers that ignored or trapped SIGTERM
    proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C for the duration, so both take the same cleanup path."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signal handling to the caller
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
