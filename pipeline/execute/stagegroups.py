"""The process groups of running stages, on disk, so that none outlives a killed `pipeline`.

`PR_SET_PDEATHSIG` (see `command.py`) kills a stage's shell with its parent, but not what the
shell started: those stay in the stage's process group. So each running group is noted in
`.pipeline/tmp/stages/` (the owning tool's identity, the group id and its leader's start time)
while it runs. If `pipeline` dies, its watchdog (`watchdog.py`) kills those groups at once; and
the next `repro` or `run` kills every group whose owner is dead before its first stage starts,
in case the watchdog could not.

A group id is its leader's PID. Linux never reuses a PID while a group still carries it, so a
group whose leader is gone is still ours; a live process holding that PID with another start
time is a stranger, and is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.execute.watchdog import watch
from pipeline.runs.liveness import ProcessId, group_members, start_time, this_process

STAGES_DIR = Path("tmp") / "stages"  # below the state directory (`.pipeline`)
_GONE_SECONDS = 2.0  # how long to wait for killed groups to go (SIGKILL is near-instant)
_POLL_SECONDS = 0.01


class GroupRegistry:
    """Notes each running stage's process group under `state_dir`, and forgets it when done."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / STAGES_DIR
        self.owner = this_process()

    def child_note(self) -> Callable[[], None]:
        """What a new group leader runs before exec to note itself, in system calls only.

        Everything is prepared here, in the parent; the child only formats two numbers and
        writes the file, then renames it into place. It never raises: a stage must run even
        when its note cannot be written.
        """
        with contextlib.suppress(OSError):
            self.dir.mkdir(parents=True, exist_ok=True)
        watch(self.dir)  # kills what the note names the moment we die, if we do
        head = '{"owner": ' + json.dumps(self.owner.to_json()) + ', "pgid": '
        folder, owner = str(self.dir), self.owner.pid

        def note() -> None:
            pid = os.getpid()
            tmp, final = f"{folder}/.{pid}.tmp", f"{folder}/{owner}-{pid}.json"
            try:
                text = f'{head}{pid}, "start": {_own_start()}}}'
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
                os.rename(tmp, final)
            except Exception:  # in the child: raising would fail the stage's start
                pass

        return note

    def remove(self, pgid: int) -> None:
        with contextlib.suppress(OSError):
            self._file(pgid).unlink()

    def _file(self, pgid: int) -> Path:
        return self.dir / f"{self.owner.pid}-{pgid}.json"


def _own_start() -> str:
    """This process's start time as JSON (`null` if unknown), read with system calls only."""
    try:
        fd = os.open("/proc/self/stat", os.O_RDONLY)
        try:
            text = os.read(fd, 4096).decode(errors="replace")
        finally:
            os.close(fd)
        return text[text.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        return "null"


def kill_leftovers(state_dir: Path) -> list[int]:
    """Kill the stage groups of dead `pipeline` processes; the groups that were killed."""
    folder = state_dir / STAGES_DIR
    try:
        files = [f for f in folder.iterdir() if f.suffix == ".json"]
    except OSError:
        return []
    killed = [pgid for pgid in map(_settle, files) if pgid is not None]
    _wait_gone(killed)
    return killed


def _settle(file: Path) -> int | None:
    """Kill the group `file` records if its owner is dead, then forget it; None if spared."""
    try:
        record = json.loads(file.read_text())
        owner = ProcessId.from_json(record["owner"])
        pgid, start = int(record["pgid"]), record.get("start")
    except (OSError, ValueError, KeyError, TypeError):
        with contextlib.suppress(OSError):
            file.unlink()  # unreadable: written by a process killed mid-write, never renamed
        return None
    if owner.alive():
        return None  # a stage of a running `pipeline` (a sweep, another project's run)
    with contextlib.suppress(OSError):
        file.unlink()
    if owner.boot != this_process().boot:
        return None  # recorded before a reboot: that group died with it
    leader = start_time(pgid)
    if leader is not None and start is not None and leader != start:
        return None  # the PID is a stranger's now
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return None
    return pgid


def _wait_gone(groups: list[int]) -> None:
    """Wait (briefly) until the killed groups have no live member, so none writes any more."""
    deadline = time.monotonic() + _GONE_SECONDS
    while groups and time.monotonic() < deadline:
        groups = [g for g in groups if group_members(g)]
        if groups:
            time.sleep(_POLL_SECONDS)
