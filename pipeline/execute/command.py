"""Running a stage's shell commands: bash, its own process group, output streamed and logged.

Each command runs in a new session so that Ctrl-C, SIGTERM or a timeout can stop the whole tree
it spawned (`killpg`), not just the shell; the child never sees the terminal's SIGINT directly.
Commands run in worker threads; a `ProcessTracker` lets the main thread stop them all.

Stopping escalates on a short schedule: an interrupt sends SIGINT (what the stage would get
from a terminal), then SIGTERM, then SIGKILL, so Ctrl-C ends `pipeline` within seconds even
when a stage ignores it; a SIGTERM to `pipeline` reaches the stages as SIGTERM, then SIGKILL.
If `pipeline` itself is killed, Linux kills each shell with it (`PR_SET_PDEATHSIG`), and the
tracker's `GroupRegistry` lets the next run kill whatever the shells started.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from pipeline.errors import EnvironmentSetupError
from pipeline.execute.stagegroups import GroupRegistry

GRACE_SECONDS = 5.0  # a timed-out stage's time between SIGTERM and SIGKILL
# Ctrl-C: SIGINT, then SIGTERM after 1 s, then SIGKILL 1.5 s later (well inside 5 s).
INTERRUPT_STEPS: tuple[tuple[signal.Signals, float], ...] = (
    (signal.SIGINT, 1.0),
    (signal.SIGTERM, 1.5),
)
# SIGTERM to pipeline: SIGTERM to the stages, then SIGKILL 2.5 s later.
TERMINATE_STEPS: tuple[tuple[signal.Signals, float], ...] = ((signal.SIGTERM, 2.5),)
# Set while the interrupt being handled is a SIGTERM (signals are process-wide, so is this).
_terminated = threading.Event()
_PR_SET_PDEATHSIG = 1
_READ_SIZE = 1 << 16
_POLL_SECONDS = 0.1
_REAP_SECONDS = 5.0  # after SIGKILL; only a process stuck in the kernel takes longer

Sink = Callable[[bytes], None]


@dataclass(frozen=True)
class CommandResult:
    """How a stage's commands ended: the first non-zero exit status, or 0."""

    code: int
    timed_out: bool = False


class ProcessTracker:
    """The process groups of every running command, so one interrupt can stop them all."""

    def __init__(self, groups: GroupRegistry | None = None) -> None:
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self.cancelled = threading.Event()
        self.groups = groups  # where running groups are noted for a later run to clean up

    def start(self, argv: list[str], **popen: Any) -> subprocess.Popen[bytes] | None:
        """Start a command, unless everything is being stopped (then None).

        Starting under the lock that `stop_all` takes means no command starts after a stop
        and none is missed by it, so stopping (and its grace period, which a second Ctrl-C
        cuts short) always happens on the thread that called `stop_all`.
        """
        with self._lock:
            if self.cancelled.is_set():
                return None
            proc: subprocess.Popen[bytes] = subprocess.Popen(
                # The preexec_fn makes system calls only (prctl, getppid, open, write, rename):
                # nothing that a lock held by another thread at fork time could block.
                argv,
                preexec_fn=_child_setup(self.groups),  # noqa: PLW1509
                **popen,
            )
            self._procs.add(proc)
            return proc

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)
            if self.groups is not None:
                self.groups.remove(proc.pid)

    def stop_all(self) -> None:
        """Stop every group at once: SIGINT, SIGTERM, then SIGKILL (`INTERRUPT_STEPS`).

        When `pipeline` itself got SIGTERM, the stages get SIGTERM first (`TERMINATE_STEPS`).
        """
        self.cancelled.set()
        with self._lock:
            procs = list(self._procs)
        stop_groups(procs, _stop_steps())


def shell() -> str:
    """Path of bash, which runs every stage command."""
    found = shutil.which("bash")
    if found is None:
        raise EnvironmentSetupError("bash not found on PATH", "install bash; stages run with it")
    return found


def run_commands(
    cmds: tuple[str, ...],
    cwd: Path,
    env: Mapping[str, str],
    sink: Sink,
    *,
    timeout: float | None = None,
    tracker: ProcessTracker | None = None,
) -> CommandResult:
    """Run each command in turn; stop at the first non-zero exit status or at the deadline."""
    bash = shell()
    deadline = None if timeout is None else time.monotonic() + timeout
    run = _Invocation(cwd, dict(env), sink, deadline, tracker or ProcessTracker())
    for cmd in cmds:
        result = _run_one([bash, "-c", cmd], run)
        if result.code != 0 or result.timed_out:
            return result
    return CommandResult(0)


@dataclass(frozen=True)
class _Invocation:
    """What every command of one stage shares: where, with what, until when, tracked where."""

    cwd: Path
    env: dict[str, str]
    sink: Sink
    deadline: float | None
    tracker: ProcessTracker


def _run_one(argv: list[str], run: _Invocation) -> CommandResult:
    proc = run.tracker.start(
        argv,
        cwd=run.cwd,
        env=run.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if proc is None:  # everything is being stopped
        return CommandResult(-signal.SIGTERM)
    with _watchdog(proc, run.deadline) as timed_out:
        try:
            _pump(proc, run.sink)
            code = proc.wait()
        except BaseException:
            stop_groups([proc], _stop_steps())
            raise
        finally:
            run.tracker.discard(proc)
    return CommandResult(code, timed_out.is_set())


def _pump(proc: subprocess.Popen[bytes], sink: Sink) -> None:
    """Copy the command's output until the shell exits and the pipe has been drained.

    A background child (`daemon &`) may keep the pipe open long after the shell is gone;
    like a terminal, we stop listening once the shell has exited and nothing more is waiting.
    """
    assert proc.stdout is not None
    with proc.stdout, selectors.DefaultSelector() as selector:
        fd = proc.stdout.fileno()
        selector.register(fd, selectors.EVENT_READ)
        exited = False
        while True:
            if selector.select(timeout=0.0 if exited else _POLL_SECONDS):
                chunk = os.read(fd, _READ_SIZE)
                if not chunk:
                    return
                sink(chunk)
            elif exited:
                return
            else:
                exited = proc.poll() is not None


@contextlib.contextmanager
def _watchdog(proc: subprocess.Popen[bytes], deadline: float | None) -> Iterator[threading.Event]:
    """Stop `proc`'s group when `deadline` passes; the event tells whether that happened."""
    fired = threading.Event()
    if deadline is None:
        yield fired
        return

    def expire() -> None:
        fired.set()
        stop_groups([proc])

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def stop_groups(
    procs: list[subprocess.Popen[bytes]],
    steps: tuple[tuple[signal.Signals, float], ...] | None = None,
) -> None:
    """Send each signal of `steps` to every live group, waiting its grace; then SIGKILL.

    The default is SIGTERM and `GRACE_SECONDS` (a timeout). Every group gets the SIGKILL, even
    one whose shell has exited: its background children must not outlive the stage.
    """
    try:
        for sig, grace in steps or ((signal.SIGTERM, GRACE_SECONDS),):
            live = [proc for proc in procs if proc.poll() is None]
            if not live:
                break
            for proc in live:
                _signal_group(proc.pid, sig)
            _wait_for(live, grace)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C ends the grace period; the SIGKILL below must still go out
    finally:
        for proc in procs:
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers that ignored the rest
        _reap(procs)


def _stop_steps() -> tuple[tuple[signal.Signals, float], ...]:
    """How to stop stages now: as `pipeline` itself is being stopped."""
    return TERMINATE_STEPS if _terminated.is_set() else INTERRUPT_STEPS


def _wait_for(procs: list[subprocess.Popen[bytes]], seconds: float) -> None:
    end = time.monotonic() + seconds
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, end - time.monotonic()))


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    """Collect the killed shells' exit status, so none lingers as a zombie."""
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.wait(timeout=_REAP_SECONDS)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _child_setup(groups: GroupRegistry | None) -> Callable[[], None] | None:
    """A `preexec_fn`: the child dies with its parent, and notes its group before any command.

    It runs in the child between fork and exec. Linux is asked to SIGKILL the child when the
    thread that started it ends; a child whose parent died before that request ends itself.
    Then the group is noted in `groups`, so by the time the stage's command runs, either a
    record of its group exists or the child is dead. None where there is nothing to do.
    """
    prctl = _prctl()
    if prctl is None and groups is None:
        return None
    parent = os.getpid()
    note = None if groups is None else groups.child_note()

    def preexec() -> None:
        if prctl is not None:
            zero = ctypes.c_ulong(0)
            prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), zero, zero, zero)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)
        if note is not None:
            note()

    return preexec


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C for the duration, so both take the same cleanup path."""

    def handler(signum: int, frame: FrameType | None) -> None:
        _terminated.set()  # stages then get SIGTERM first, as we did (`stop_all`)
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
        _terminated.clear()
