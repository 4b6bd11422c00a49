"""The run store (`.pipeline/runs.db`) driven directly: writes, reads, resolution of run
references, and how a `running` run whose process died reads back.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from pipeline import api
from pipeline.errors import DataError, UsageError
from pipeline.runs.runstore import Artifact, RunStore, StageRow
from tests.conftest import Project
from tests.runs.support import _row

# -- the store itself -------------------------------------------------------------------------


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_a_run_is_written_running_then_finished_with_its_metrics(store: RunStore) -> None:
    import os

    store.start(_row("r1", 100.0, status="running", pid=os.getpid()), {"train.lr": 0.1, "tag": "a"})
    [running] = store.runs()
    assert running.status == "running"  # our own pid is alive
    assert store.metrics_of(["r1"]) == {"r1": {}}

    store.finish("r1", "succeeded", 105.5, {"m.json:acc": 0.9, "m.json:n": 3})
    detail = store.detail("r1")
    assert detail.run.status == "succeeded"
    assert detail.run.seconds == pytest.approx(5.5)
    assert detail.params == {"tag": "a", "train.lr": 0.1}
    assert detail.metrics == {"m.json:acc": 0.9, "m.json:n": 3}


def test_a_running_run_whose_process_died_reads_as_interrupted(store: RunStore) -> None:
    store.start(_row("dead", 1.0, status="running", pid=_dead_pid()), {})
    store.start(_row("remote", 2.0, status="running", pid=_dead_pid(), host="elsewhere"), {})
    statuses = {r.id: r.status for r in store.runs()}
    # another host's process cannot be checked: it is assumed alive
    assert statuses == {"dead": "interrupted", "remote": "running"}
    assert store.find("dead").status == "interrupted"
    assert store.detail("dead").run.status == "interrupted"


def test_runs_are_newest_first_with_a_limit_and_top_level_leaves_out_points(
    store: RunStore,
) -> None:
    store.start(_row("sweep1", 10.0, kind="sweep"), {})
    store.start(_row("point1", 11.0, kind="run", parent_id="sweep1"), {})
    store.start(_row("point2", 12.0, kind="run", parent_id="sweep1"), {})
    store.start(_row("repro1", 13.0), {})
    assert [r.id for r in store.runs()] == ["repro1", "point2", "point1", "sweep1"]
    assert [r.id for r in store.runs(limit=2)] == ["repro1", "point2"]
    assert [r.id for r in store.runs(top_level=True)] == ["repro1", "sweep1"]
    assert [c.id for c in store.detail("sweep1").children] == ["point1", "point2"]


def test_resolve_by_id_prefix_name_and_latest(store: RunStore) -> None:
    store.start(_row("20260101-000000-aaaaaa", 1.0, name="baseline"), {})
    store.start(_row("20260101-000000-aabbbb", 2.0), {})
    store.start(_row("20260102-000000-cccccc", 3.0), {})
    assert store.find("20260101-000000-aaaaaa").name == "baseline"
    assert store.find("20260102").id == "20260102-000000-cccccc"
    assert store.find("baseline").id == "20260101-000000-aaaaaa"
    assert store.find("latest").id == "20260102-000000-cccccc"
    with pytest.raises(UsageError, match="ambiguous") as ambiguous:
        store.find("20260101-000000-aa")
    assert "20260101-000000-aaaaaa" in ambiguous.value.message
    with pytest.raises(UsageError, match="no run 'nope'"):
        store.find("nope")


def test_a_prefix_is_matched_literally(store: RunStore) -> None:
    store.start(_row("20260101-000000-aaaaaa", 1.0), {})
    with pytest.raises(UsageError, match="no run"):
        store.find("20260101_")
    with pytest.raises(UsageError, match="no run"):
        store.find("2026%aaa")


def test_stages_and_their_files_are_read_back(store: RunStore) -> None:
    store.start(_row("r", 1.0), {})
    stage = StageRow(
        stage="train",
        outcome="ran",
        fingerprint="fp",
        started_at=1.5,
        ended_at=2.5,
        exit_code=0,
        cmd=("python train.py",),
        reasons=("param train.lr 0.1→0.2",),
        params={"train.lr": 0.2},
        packages=(("numpy", "2.0"),),
        log_hash="xxh3_128:" + "0" * 32,
        deps=(Artifact("data.csv", "xxh3_128:" + "1" * 32, 10, 1),),
        outs=(Artifact("model.pkl", "xxh3_128:" + "2" * 32, 20, 1),),
    )
    store.record_stage("r", stage)
    [back] = store.detail("r").stages
    assert back == stage


def test_producers_prefer_a_stage_that_ran_over_one_that_restored(store: RunStore) -> None:
    out = Artifact("model.pkl", "xxh3_128:" + "a" * 32, 1, 1)
    store.start(_row("made", 1.0), {})
    store.record_stage("made", StageRow("train", "ran", deps=(), outs=(out,)))
    store.start(_row("restored", 2.0), {})
    store.record_stage("restored", StageRow("train", "restored", outs=(out,)))
    store.start(_row("failed", 3.0), {})
    store.record_stage("failed", StageRow("train", "failed", outs=(out,)))
    found = store.producer(out.hash, "model.pkl")
    assert found is not None
    assert (found[0].id, found[1].outcome) == ("made", "ran")
    assert store.producer("xxh3_128:" + "b" * 32, "model.pkl") is None


def test_run_files_and_known_file(store: RunStore) -> None:
    store.start(_row("r", 1.0), {})
    files = [Artifact("params.yaml", "xxh3_128:" + "3" * 32, 5, 1)]
    store.record_files("r", files)
    assert store.run_files("r") == files
    assert store.known_file("params.yaml", files[0].hash)
    assert not store.known_file("params.yaml", "xxh3_128:" + "4" * 32)
    assert not store.known_file("other.yaml", files[0].hash)


def test_a_store_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    import sqlite3

    first = RunStore.for_project(tmp_path)
    first.close()
    with sqlite3.connect(tmp_path / "runs.db") as conn:
        conn.execute("UPDATE info SET value = '99' WHERE key = 'schema'")
    with pytest.raises(DataError, match="schema 99"):
        RunStore.for_project(tmp_path)


def test_several_writers_can_open_a_new_store_at_once(tmp_path: Path) -> None:
    for attempt in range(5):
        state = tmp_path / f"s{attempt}"
        errors: list[BaseException] = []
        barrier = threading.Barrier(6)

        def open_it(
            state: Path = state,
            errors: list[BaseException] = errors,
            barrier: threading.Barrier = barrier,
        ) -> None:
            barrier.wait()
            try:
                RunStore.for_project(state).close()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []


# -- reading leaves nothing behind -------------------------------------------------------------


def test_reading_runs_leaves_no_untracked_state_files(project: Project) -> None:
    project.manifest({"name": "x", "stages": {"s": {"cmd": "true"}}})
    assert api.runs(project.root) == []
    assert ".pipeline" not in project.git("status", "--porcelain", "--untracked-files=all")
