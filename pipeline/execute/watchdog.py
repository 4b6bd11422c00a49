"""A watchdog process that kills this process's running stage groups the moment it dies.

`PR_SET_PDEATHSIG` kills only a stage's shell; what the shell started (`prepare && train`)
lives on in the stage's group. The next `repro` kills such leftovers (`stagegroups.py`), but
until then they may still write outputs. So the first stage a process starts also starts one
small watchdog: a Python process in its own session that blocks reading a pipe whose only
writer is us. However we end (SIGKILL included), the kernel closes our end, the read returns,
and the watchdog kills every group still noted as ours in the folders we told it about. After
a normal exit nothing is noted any more, and it simply ends.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

# Self-contained (started with -I -S: no site, no pipeline import) so it costs milliseconds.
_SCRIPT = """
import json, os, signal, sys
owner = sys.argv[1] + "-"
folders = sys.stdin.read().splitlines()  # returns at EOF: the pipeline process has ended
for folder in set(filter(None, folders)):
    try:
        names = os.listdir(folder)
    except OSError:
        continue
    for name in names:
        if not (name.startswith(owner) and name.endswith(".json")):
            continue
        path = os.path.join(folder, name)
        try:
            with open(path) as fh:
                os.killpg(int(json.load(fh)["pgid"]), signal.SIGKILL)
        except ProcessLookupError:
            pass
        except Exception:
            continue  # unreadable or not ours to kill: the next repro decides
        try:
            os.unlink(path)
        except OSError:
            pass
"""


@dataclass
class _Watchdog:
    """A watchdog: our end of its pipe, and the folders it was told about."""

    fd: int
    folders: set[Path] = field(default_factory=set)


_lock = threading.Lock()
_watchdogs: dict[int, _Watchdog] = {}  # by the PID it watches: a forked child needs its own


def watch(folder: Path) -> None:
    """Make sure this process has a watchdog, and that it will look in `folder`.

    A failure to start one (no more processes) only leaves the next run to clean up.
    """
    me = os.getpid()
    with _lock:
        try:
            dog = _watchdogs.get(me) or _watchdogs.setdefault(me, _start())
            if folder not in dog.folders:
                os.write(dog.fd, f"{folder}\n".encode())
                dog.folders.add(folder)
        except OSError:  # it died (a broken pipe) or could not start: try again next time
            dead = _watchdogs.pop(me, None)
            if dead is not None:
                with contextlib.suppress(OSError):
                    os.close(dead.fd)


def _start() -> _Watchdog:
    read, write = os.pipe()  # both close-on-exec: no stage inherits our end
    try:
        os.posix_spawn(
            sys.executable,
            [sys.executable, "-I", "-S", "-c", _SCRIPT, str(os.getpid())],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, read, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
            setsid=True,  # a Ctrl-C at the terminal is ours to handle, not its
        )
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
    return _Watchdog(write)
