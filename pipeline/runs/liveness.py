"""Whether the process that left a record behind is still running, robust to PID reuse.

A PID alone is not an identity: after a crash the number may be handed to an unrelated
process. `ProcessId` adds the process's start time (clock ticks since boot, from
`/proc/<pid>/stat`) and the boot id, so a record of a dead process never looks alive (or owns
a stranger) because its number came round again. Without `/proc` only the PID is compared.
A process on another host (a shared `.pipeline`) cannot be asked: it counts as alive.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from dataclasses import dataclass
from typing import Any

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True)
class ProcessId:
    """One process, for as long as it lives: PID, start time, the boot it started in, host."""

    pid: int
    start: int | None
    boot: str
    host: str = ""

    def alive(self) -> bool:
        """Still running: same boot, and the PID still names the process that started then."""
        if self.host and self.host != _hostname():
            return True  # not ours to judge, nor to kill
        if self.boot != boot_id():
            return False
        if not pid_exists(self.pid):
            return False
        return self.start is None or start_time(self.pid) == self.start

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start, "boot": self.boot, "host": self.host}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessId:
        start = data.get("start")
        start = None if start is None else int(start)
        return cls(int(data["pid"]), start, str(data["boot"]), str(data.get("host") or ""))


def identify(pid: int) -> ProcessId:
    """The identity of the live process `pid` on this host (start time None where unknown)."""
    return ProcessId(pid, start_time(pid), boot_id(), _hostname())


@functools.cache
def _hostname() -> str:
    return socket.gethostname()


def this_process() -> ProcessId:
    return identify(os.getpid())


@functools.cache
def boot_id() -> str:
    try:
        with open(_BOOT_ID, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def start_time(pid: int) -> int | None:
    """Field 22 of `/proc/<pid>/stat`; None if there is no such process (or no `/proc`)."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def process_group(pid: int) -> tuple[int, str] | None:
    """`pid`'s process group and state letter (`Z` for a zombie), or None if it is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else (int(fields[2]), fields[0])


def _stat_fields(pid: int) -> list[str] | None:
    """The fields after the command name (which may hold spaces and parentheses)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of group `pgid`, found by walking `/proc`."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                group = process_group(int(entry.name))
                if group is not None and group[0] == pgid and group[1] != "Z":
                    found.append(int(entry.name))
    return found
