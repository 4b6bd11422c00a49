"""Experiments in progress: leases under `.pipeline/tmp/runs/`, and clearing what dead ones left.

A `pipeline run` holds a lease for as long as it runs, and each of its points another one for
its workspace `<id>/`. A lease is the file `<name>.lock`, locked with `flock` by its owner and
holding its pid and start time. The kernel releases the lock however the owner ends (SIGKILL
included), so a lease whose lock can be taken belongs to a dead process, and its workspace is
garbage. A lease is created locked under a temporary name and renamed into place, and it exists
before its workspace and outlives it, so nobody ever sees a live workspace without a locked
lease. `gc` reads the live leases to keep what running experiments are writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.core.syserrors import naming

RUNS_DIR = Path("tmp") / "runs"  # below the state directory (`.pipeline`)
SUFFIX = ".lock"
STALE_TEMP_SECONDS = 24 * 3600  # a lease still under its temporary name after this: abandoned


@dataclass(frozen=True)
class Owner:
    """Who holds a lease: its name (a run id for a point's workspace), pid and start time."""

    name: str
    pid: int
    started_at: float


class Lease:
    """A held lease; `release` ends it (the owner's workspace must be gone by then)."""

    def __init__(self, path: Path, fd: int, owner: Owner) -> None:
        self.path, self.fd, self.owner = path, fd, owner

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)  # unlocks


def runs_dir(state_dir: Path) -> Path:
    return state_dir / RUNS_DIR


@contextlib.contextmanager
def leased(state_dir: Path, name: str) -> Iterator[Lease]:
    """Hold the lease `name` for the duration of the block."""
    lease = take_lease(state_dir, name)
    try:
        yield lease
    finally:
        lease.release()


def take_lease(state_dir: Path, name: str) -> Lease:
    """Create and lock `<name>.lock`: locked first, then renamed into place."""
    base = runs_dir(state_dir)
    base.mkdir(parents=True, exist_ok=True)
    owner = Owner(name, os.getpid(), time.time())
    temp = base / f".{name}.{os.getpid()}.tmp"
    # Python's descriptors are not inherited by stage processes: a stage that outlives a killed
    # `pipeline` never keeps its workspace looking alive.
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with naming(temp):  # a full disk then names the lease, not just the project
            os.write(fd, json.dumps(asdict(owner)).encode())
        os.rename(temp, base / f"{name}{SUFFIX}")
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return Lease(base / f"{name}{SUFFIX}", fd, owner)


def live_owners(state_dir: Path) -> list[Owner]:
    """The owners of the leases whose process still runs."""
    base = runs_dir(state_dir)
    found = []
    for path in sorted(base.glob(f"*{SUFFIX}")) if base.is_dir() else []:
        with _if_dead(path) as dead:
            if dead is False:
                found.append(_owner(path))
    return found


def clear_dead(state_dir: Path, *, dry: bool = False) -> list[str]:
    """Remove the workspaces (and leases) of dead processes; returns the workspaces' names."""
    base = runs_dir(state_dir)
    if not base.is_dir():
        return []
    removed = []
    for entry in sorted(os.listdir(base)):
        path = base / entry
        if entry.endswith(SUFFIX):
            removed += _clear_lease(path, dry)
        elif entry.startswith(".") and entry.endswith(".tmp"):
            _clear_temp(path, dry)
        elif path.is_dir() and not (base / f"{entry}{SUFFIX}").exists():
            removed.append(entry)  # no lease: its owner was cut off while removing it
            if not dry:
                shutil.rmtree(path, ignore_errors=True)
    return removed


def _clear_lease(path: Path, dry: bool) -> list[str]:
    """A dead lease goes, with its workspace, while we hold its lock (after the workspace)."""
    workspace = path.with_name(path.name.removesuffix(SUFFIX))
    with _if_dead(path) as dead:
        if not dead:
            return []
        existed = workspace.is_dir()  # a sweep's own lease has no workspace
        if not dry:
            shutil.rmtree(workspace, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return [workspace.name] if existed else []


def _clear_temp(path: Path, dry: bool) -> None:
    """A lease never renamed into place: its owner died between two system calls."""
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime < STALE_TEMP_SECONDS:
            return  # perhaps being created right now
    with _if_dead(path) as dead:
        if dead and not dry:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


@contextlib.contextmanager
def _if_dead(path: Path) -> Iterator[bool | None]:
    """True if the lease's lock could be taken (held until the block ends), False if its owner
    holds it, None if the lease is gone (its owner finished)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _owner(path: Path) -> Owner:
    """The lease's owner as it wrote itself; the file's time if it cannot be read."""
    name = path.name.removesuffix(SUFFIX)
    try:
        data = json.loads(path.read_bytes())
        return Owner(name, int(data["pid"]), float(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        with contextlib.suppress(OSError):
            return Owner(name, 0, path.stat().st_mtime)
        return Owner(name, 0, 0.0)
