"""One `repro` per project at a time: a file lock, and who holds it.

A second `pipeline repro` in the same project waits for the first and says which process it is
waiting for; with `no_wait` it fails at once. The lock is an OS-level lock (filelock), so it is
released even when the holder is killed with SIGKILL: there is never a stale lock to delete.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from pipeline.core.atomic import atomic_write_text
from pipeline.errors import PipelineError


class ProjectBusy(PipelineError):
    """Another pipeline process is running in this project and we were told not to wait."""

    exit_code = 1


@contextlib.contextmanager
def project_lock(
    state_dir: Path, *, wait: bool = True, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold `.pipeline/repro.lock` for the duration; wait for (or refuse) another holder."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(state_dir / "repro.lock")
    owner = state_dir / "repro.owner"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _holder(owner)
        if not wait:
            raise ProjectBusy(
                f"another pipeline process ({holder}) is running in this project",
                "wait for it to finish, or drop --no-wait to queue behind it",
            ) from None
        if on_wait is not None:
            on_wait(f"waiting for pipeline process {holder} to finish…")
        lock.acquire()
    try:
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        # atomic: a reader never sees half, and a full disk names this file
        atomic_write_text(owner, f"{os.getpid()} {socket.gethostname()} {command}\n", durable=False)
        yield
    finally:
        with contextlib.suppress(OSError):
            owner.unlink()
        lock.release()


def _holder(owner: Path) -> str:
    try:
        pid, host, *command = owner.read_text().split()
    except (OSError, ValueError):
        return "PID unknown"
    return f"PID {pid} on {host}" + (f", `{' '.join(command)}`" if command else "")
