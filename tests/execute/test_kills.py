"""Killing `pipeline`: no stage outlives it, nothing is left inconsistent, every run is recorded.

Each trial starts a real `pipeline repro` subprocess, waits for a chosen moment by watching
files (a marker the stage writes, a temp file in the cache, a temp lock file), and kills it
with SIGKILL, or with SIGINT for the Ctrl-C tests. Afterwards: the stage's shell (it dies with
its parent) and what it started (killed by the watchdog) are gone at once, `fsck` and `status`
are clean, the killed run is listed as interrupted with every stage the lock holds, and the
next `repro` finishes the work. The next run's own clean-up of a dead run's groups, for when
there was no watchdog, is tested in process below.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.execute.stagegroups import STAGES_DIR, GroupRegistry, kill_leftovers
from pipeline.runs.journal import JOURNAL_DIR, Journal, orphans, read_journal
from pipeline.runs.liveness import identify, this_process
from pipeline.runs.model import RunRow, RunStatus, StageRow
from tests.conftest import Project, alive, pipeline_process, wait_gone, wait_until

_WAIT_SECONDS = 60  # a hang guard only: every wait ends on a file or an exit


def _pids(folder: Path) -> list[int]:
    return [int(f.read_text()) for f in folder.glob("*.pid") if f.read_text().strip()]


def _recorded(p: Project) -> dict[str, Any]:
    """The one recorded run, with its stages (`runs show --json`)."""
    listed = p.cli("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert len(runs) >= 1, "the killed run was not recorded"
    shown = p.cli("runs", "show", runs[-1]["id"], "--json")  # the oldest: the killed one
    assert shown.returncode == 0, shown.stderr
    detail: dict[str, Any] = json.loads(shown.stdout)
    return detail


def _check_consistent(p: Project) -> None:
    for args in (("fsck",), ("status",)):
        done = p.cli(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr


def _check_after_kill(p: Project, pid_dir: Path, locked_before: set[str]) -> None:
    """Everything a killed repro must leave behind, then a repro that finishes the work."""
    shells, children = _pids(pid_dir / "shell"), _pids(pid_dir / "child")
    assert all(wait_gone(pid, 10) for pid in shells), "a stage shell outlived pipeline"
    assert all(wait_gone(pid, 10) for pid in children), "a stage's child outlived pipeline"
    _check_consistent(p)
    locked = set(p.lock()["stages"]) if p.exists("pipeline.lock") else set()
    detail = _recorded(p)
    assert detail["status"] == RunStatus.INTERRUPTED.value
    recorded = {s["stage"] for s in detail["stages"]}
    assert locked - locked_before <= recorded, "a committed stage is missing from the run"
    (pid_dir.parent / "hold").unlink(missing_ok=True)
    done = p.cli("repro")  # kills what the dead run left, then finishes its work
    assert done.returncode == 0, done.stderr
    survivors = [pid for pid in _pids(pid_dir / "child") if alive(pid)]
    assert survivors == [], "a stage process outlived the next repro"
    assert not list((p.root / ".pipeline" / STAGES_DIR).glob("*.json")), "a stale group note"
    _check_consistent(p)
    assert "up to date" in p.cli("status").stdout


def _pid_dirs(p: Project) -> Path:
    pid_dir = p.root.parent / "pids"
    for sub in ("shell", "child"):
        (pid_dir / sub).mkdir(parents=True, exist_ok=True)
    return pid_dir


# A stage's shell notes its PID and starts a grandchild that notes its own; with ../hold
# present the grandchild runs for minutes and ../started says the stage is under way.
_NOTE = (
    'echo $$ > "$PIPELINE_ROOT/../pids/shell/$$.pid"; '
    'if [ -e "$PIPELINE_ROOT/../hold" ]; then '
    'sleep 300 & echo $! > "$PIPELINE_ROOT/../pids/child/$!.pid"; '
    'touch "$PIPELINE_ROOT/../started"; wait; fi; '
)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(8))
def test_sigkill_while_a_stage_runs(p: Project, trial: int) -> None:
    p.manifest(
        {
            "stages": {
                "first": {"cmd": "echo one > a.txt", "outs": ["a.txt"]},
                "second": {"cmd": _NOTE + "cp a.txt b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
            }
        }
    )
    pid_dir = _pid_dirs(p)
    (p.root.parent / "hold").touch()
    with pipeline_process(p.root, "repro") as proc:
        wait_until(proc, (p.root.parent / "started").exists, "the stage start")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert p.lock()["stages"].keys() == {"first"}
    _check_after_kill(p, pid_dir, set())


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(6))
def test_sigkill_while_an_object_is_half_written(p: Project, trial: int) -> None:
    # 64 MiB takes long enough to copy into the cache that the temp object is seen
    p.manifest(
        {
            "stages": {
                "big": {
                    "cmd": _NOTE + "{ cat seed.txt; head -c 67108864 /dev/zero; } > big.bin",
                    "deps": ["seed.txt"],
                    "outs": ["big.bin"],
                }
            }
        }
    )
    p.write("seed.txt", f"trial {trial}\n")
    pid_dir = _pid_dirs(p)
    cache_tmp = p.root / ".pipeline" / "cache" / "tmp"

    def storing() -> bool:
        if cache_tmp.is_dir() and any(True for _ in cache_tmp.iterdir()):
            return True
        return p.exists("pipeline.lock")  # stored between two looks: kill right after

    with pipeline_process(p.root, "repro") as proc:
        wait_until(proc, storing, "the object being stored")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _check_after_kill(p, pid_dir, set())


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(6))
def test_sigkill_while_the_lock_is_written(p: Project, trial: int) -> None:
    count = 30
    stages = {
        f"s{i}": {"cmd": _NOTE + f"echo {i} > out{i}.txt", "outs": [f"out{i}.txt"]}
        for i in range(count)
    }
    p.manifest({"stages": stages})
    pid_dir = _pid_dirs(p)
    first_write = 3 + 4 * trial  # later in each trial, so the lock is of a different size

    def writing() -> bool:
        temps = list(p.root.glob(".pipeline.lock.*.tmp"))
        if temps:
            return True
        locked = p.lock()["stages"] if p.exists("pipeline.lock") else {}
        return len(locked) >= first_write  # the temp file came and went between two looks

    with pipeline_process(p.root, "repro", "-j", "2") as proc:
        wait_until(proc, writing, "the lock being written")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _check_after_kill(p, pid_dir, set())


@pytest.mark.slow
@pytest.mark.parametrize("traps", ["INT", "INT TERM"])
def test_ctrl_c_ends_pipeline_within_5_s_even_when_the_stage_ignores_it(
    p: Project, traps: str
) -> None:
    p.manifest(
        {
            "stages": {
                "first": {"cmd": "echo one > a.txt", "outs": ["a.txt"]},
                "stubborn": {
                    "cmd": f"trap '' {traps}; " + _NOTE + "sleep 60",
                    "deps": ["a.txt"],
                    "outs": ["never.txt"],
                },
            }
        }
    )
    pid_dir = _pid_dirs(p)
    (p.root.parent / "hold").touch()
    with pipeline_process(p.root, "repro") as proc:
        wait_until(proc, (p.root.parent / "started").exists, "the stage start")
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_WAIT_SECONDS)
        elapsed = time.monotonic() - sent
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
    assert proc.returncode == 130, stderr
    assert elapsed < 5, f"Ctrl-C took {elapsed:.1f} s"
    assert "interrupted" in stderr
    every = _pids(pid_dir / "shell") + _pids(pid_dir / "child")
    assert every and all(wait_gone(pid, 10) for pid in every), "a stage process survived"
    detail = _recorded(p)
    assert detail["status"] == RunStatus.INTERRUPTED.value
    assert "first" in {s["stage"] for s in detail["stages"]}
    _check_consistent(p)


# -- the parts, in process -------------------------------------------------------------------


def _dead_identity() -> dict[str, Any]:
    """The identity of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    me = identify(child.pid).to_json()
    child.wait()
    return me


def _sleeping_group(registry: GroupRegistry) -> tuple[subprocess.Popen[bytes], int]:
    """A noted group leader that exits at once, and the PID of its member that sleeps on."""
    leader = subprocess.Popen(
        ["bash", "-c", "sleep 300 & echo $!"],
        stdout=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=registry.child_note(),  # noqa: PLW1509 - as ProcessTracker starts stages
    )
    assert leader.stdout is not None
    with leader.stdout:
        member = int(leader.stdout.readline())
    return leader, member


def test_leftover_groups_of_a_dead_owner_are_killed_and_those_of_a_live_one_spared(
    tmp_path: Path,
) -> None:
    registry = GroupRegistry(tmp_path)
    (dead, dead_member) = _sleeping_group(registry)
    (live, live_member) = _sleeping_group(registry)  # ours: we are alive
    try:
        record = registry.dir / f"{os.getpid()}-{dead.pid}.json"
        data = json.loads(record.read_text())
        data["owner"] = _dead_identity()
        record.unlink()
        (registry.dir / "1-2.json").write_text(json.dumps(data))  # a dead pipeline's stage
        (registry.dir / "3-4.json").write_text("{")  # killed mid-write: unreadable
        dead.wait()  # its shell has exited: only the member keeps the group
        assert kill_leftovers(tmp_path) == [dead.pid]
        assert wait_gone(dead_member, 10)
        assert alive(live_member)
        assert sorted(f.name for f in (tmp_path / STAGES_DIR).iterdir()) == [
            f"{os.getpid()}-{live.pid}.json"
        ]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(live.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dead.pid, signal.SIGKILL)
        live.wait()


def test_a_recorded_pid_now_held_by_a_stranger_is_spared(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        folder = tmp_path / STAGES_DIR
        folder.mkdir(parents=True)
        start = identify(stranger.pid).start
        assert start is not None
        record = {"owner": _dead_identity(), "pgid": stranger.pid, "start": start - 1}
        (folder / "1-2.json").write_text(json.dumps(record))
        assert kill_leftovers(tmp_path) == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_dead_runs_journal_is_replayed_into_the_store_as_interrupted(tmp_path: Path) -> None:
    from pipeline.runs.runstore import RunStore

    run = RunRow("r1", "repro", "pipeline repro", 1.0, RunStatus.RUNNING, pid=1)
    journal = Journal(tmp_path, "r1")
    journal.begin(run, {"lr": 0.1})
    journal.stage(StageRow("first", "ran"))
    journal.close(remove=False)
    path = tmp_path / JOURNAL_DIR / "r1.jsonl"
    assert list(orphans(tmp_path)) == []  # we wrote it and are alive: not ours to replay
    lines = path.read_text().splitlines()
    dead = json.dumps({"owner": _dead_identity()})
    path.write_text("\n".join([dead, *lines[1:], '{"stage": {"sta']) + "\n")  # cut short
    replay = read_journal(path)
    assert replay is not None and [s.stage for s in replay.stages] == ["first"]

    store = RunStore.for_project(tmp_path)  # opening the store replays it
    try:
        detail = store.detail("r1")
    finally:
        store.close()
    assert detail.run.status is RunStatus.INTERRUPTED
    assert detail.run.ended_at is not None
    assert [s.stage for s in detail.stages] == ["first"]
    assert detail.params == {"lr": 0.1}
    assert not path.exists()


def test_liveness_tells_a_live_process_from_a_dead_one() -> None:
    assert this_process().alive()
    from pipeline.runs.liveness import ProcessId

    assert not ProcessId.from_json(_dead_identity()).alive()
    me = this_process()
    assert not ProcessId(me.pid, (me.start or 0) + 1, me.boot).alive()  # a reused PID
    assert not ProcessId(me.pid, me.start, "another-boot").alive()
    assert ProcessId(me.pid, me.start, me.boot, "another-host").alive()  # not ours to judge
