"""Leases of running experiments (`.pipeline/tmp/runs/<name>.lock`): live while their owner
runs, however it ends afterwards (SIGKILL included), and what dead owners left is cleared.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pipeline.runs.workspaces import clear_dead, leased, live_owners, runs_dir, take_lease
from tests.conftest import wait_gone

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pipeline.runs.workspaces import take_lease
    state, name = Path(sys.argv[1]), sys.argv[2]
    take_lease(state, name)
    (state / "tmp" / "runs" / name).mkdir()
    (state / "tmp" / "runs" / name / "file").write_text("being written")
    (state / "ready").touch()
    time.sleep(60)  # a hang guard: the test kills it long before
    """
)


def _killed_holder(state: Path, name: str) -> None:
    """A process that took the lease `name`, made its workspace, and was SIGKILLed."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state), name])
    deadline = time.monotonic() + 30
    while not (state / "ready").exists():
        assert holder.poll() is None and time.monotonic() < deadline, "the holder never got ready"
        time.sleep(0.02)
    (state / "ready").unlink()
    assert [o.name for o in live_owners(state)] == [name]  # live while it runs
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert wait_gone(holder.pid, 10)


def test_a_killed_owners_workspace_is_cleared_and_a_live_one_kept(tmp_path: Path) -> None:
    state = tmp_path / ".pipeline"
    _killed_holder(state, "dead")
    with leased(state, "alive") as lease:
        (runs_dir(state) / "alive").mkdir()

        assert [o.name for o in live_owners(state)] == ["alive"]
        assert clear_dead(state, dry=True) == ["dead"]
        assert (runs_dir(state) / "dead" / "file").exists()
        assert clear_dead(state) == ["dead"]

        assert sorted(os.listdir(runs_dir(state))) == ["alive", "alive.lock"]
        assert lease.owner.pid == os.getpid()
        (runs_dir(state) / "alive").rmdir()
    assert os.listdir(runs_dir(state)) == []
    assert clear_dead(state) == []


def test_a_workspace_without_lease_is_garbage_and_a_fresh_temp_lease_is_not(
    tmp_path: Path,
) -> None:
    state = tmp_path / ".pipeline"
    base = runs_dir(state)
    (base / "orphan").mkdir(parents=True)  # its owner died between removing it and its lease
    fresh = base / ".starting.123.tmp"  # perhaps being created right now
    fresh.touch()
    old = base / ".abandoned.456.tmp"
    old.touch()
    os.utime(old, (time.time() - 2 * 86400,) * 2)

    assert clear_dead(state) == ["orphan"]
    assert sorted(os.listdir(base)) == [".starting.123.tmp"]


def test_a_lease_held_in_this_very_process_counts_as_live(tmp_path: Path) -> None:
    state = tmp_path / ".pipeline"
    first = take_lease(state, "one")
    try:
        assert clear_dead(state) == []  # a lock held in this very process still counts
        assert [o.name for o in live_owners(state)] == ["one"]
    finally:
        first.release()
    assert live_owners(state) == []
