"""The run store (`.pipeline/runs.db`) and how every `repro` is recorded in it.

The first half drives `RunStore` directly: writes, reads, resolution of run references, and
how a `running` run whose process died reads back. The second half records real `repro`s
through the API and checks each field a reproducibility checklist asks for against the lock,
the cache and git.
"""

from __future__ import annotations

import getpass
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CHAIN_ORDER, Project, ran, record

from pipeline import api
from pipeline.api import ReproOptions
from pipeline.errors import DataError, UsageError
from pipeline.plan.session import open_session
from pipeline.runs.runstore import Artifact, RunRow, RunStore, StageRow

# -- the store itself -------------------------------------------------------------------------


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def _row(run_id: str, started: float, **fields: Any) -> RunRow:
    values: dict[str, Any] = {
        "kind": "repro",
        "command": "pipeline repro",
        "status": "succeeded",
        "host": socket.gethostname(),
        "pid": None,
    }
    values.update(fields)
    return RunRow(id=run_id, started_at=started, **values)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    opened = RunStore.for_project(tmp_path / ".pipeline")
    yield opened
    opened.close()


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


# -- every repro is recorded ------------------------------------------------------------------

SCORED = {
    "name": "scored",
    "stages": {
        "prepare": {
            "cmd": "echo preparing && tr a-z A-Z < raw.txt > prepared.txt && " + record("prepare"),
            "deps": ["raw.txt"],
            "outs": ["prepared.txt"],
        },
        "train": {
            "cmd": "{ cat prepared.txt; echo lr=${train.lr}; } > model.txt && " + record("train"),
            "deps": ["prepared.txt"],
            "params": ["train.lr"],
            "outs": ["model.txt"],
        },
        "evaluate": {
            "cmd": 'printf \'{"score": %s, "nested": {"n": 2}}\' "$(sed -n \'s/lr=//p\''
            ' model.txt)" > metrics.json && ' + record("evaluate"),
            "deps": ["model.txt"],
            "metrics": ["metrics.json"],
        },
    },
}


@pytest.fixture
def scored(project: Project) -> Project:
    project.write("raw.txt", "raw data\n")
    project.params("# params\ntrain:\n  lr: 0.1  # learning rate\n  epochs: 3\n")
    project.manifest(SCORED, commit=False)
    project.commit(message="scored project")
    return project


def _head(project: Project) -> str:
    return project.git("rev-parse", "HEAD").strip()


def _branch(project: Project) -> str:
    return project.git("rev-parse", "--abbrev-ref", "HEAD").strip()


def test_a_repro_is_recorded_with_who_when_which_code_params_and_metrics(
    scored: Project,
) -> None:
    before = time.time()
    result = scored.repro()
    assert ran(result) == ["prepare", "train", "evaluate"]
    assert result.run_id is not None and result.record_error is None

    detail = api.run_detail(scored.root, result.run_id)
    run = detail.run
    assert (run.kind, run.status, run.parent_id) == ("repro", "succeeded", None)
    assert before <= run.started_at <= run.ended_at <= time.time()
    assert run.user == getpass.getuser()
    assert run.host == socket.gethostname()
    assert run.git_commit == _head(scored)
    assert run.git_branch == _branch(scored)
    assert run.git_dirty is False
    assert detail.params == {"train.lr": 0.1}
    assert detail.metrics == {"metrics.json:score": 0.1, "metrics.json:nested.n": 2}
    assert [r.id for r in api.runs(scored.root)] == [run.id]


def test_each_stage_record_matches_the_lock_and_its_log_is_in_the_cache(scored: Project) -> None:
    result = scored.repro()
    detail = api.run_detail(scored.root, result.run_id)
    lock = scored.lock()["stages"]
    stages = {s.stage: s for s in detail.stages}
    assert sorted(stages) == ["evaluate", "prepare", "train"]
    with open_session(scored.root) as session:
        for name, stage in stages.items():
            assert stage.outcome == "ran"
            assert stage.exit_code == 0
            assert stage.started_at is not None and stage.ended_at >= stage.started_at
            assert stage.cmd  # the command as it ran, ${...} filled in
            entry = session.lock.stages[name]
            assert stage.fingerprint == entry.fingerprint
            assert {a.path: a.hash for a in stage.deps} == {d.path: d.info.hash for d in entry.deps}
            assert {a.path: a.hash for a in stage.outs} == {o.path: o.info.hash for o in entry.outs}
            assert stage.log_hash is not None
            assert session.store.has(stage.log_hash), name
        log = session.store.path(stages["prepare"].log_hash).read_bytes()
    assert b"preparing" in log
    assert stages["train"].params == {"train.lr": 0.1}
    assert stages["train"].cmd == (
        "{ cat prepared.txt; echo lr=0.1; } > model.txt && " + record("train"),
    )
    assert lock["train"]["cmd"] == stages["train"].cmd[0]
    prepared = next(a for a in stages["train"].deps if a.path == "prepared.txt")
    assert prepared.size == len("RAW DATA\n") and prepared.nfiles == 1


def test_every_repro_is_recorded_even_when_nothing_runs(scored: Project) -> None:
    first = scored.repro()
    second = scored.repro()
    assert ran(second) == []
    assert second.run_id not in (None, first.run_id)
    detail = api.run_detail(scored.root, second.run_id)
    assert detail.run.status == "succeeded"
    assert {s.stage: s.outcome for s in detail.stages} == dict.fromkeys(
        ["prepare", "train", "evaluate"], "up to date"
    )
    first_fps = {s.stage: s.fingerprint for s in api.run_detail(scored.root, first.run_id).stages}
    assert {s.stage: s.fingerprint for s in detail.stages} == first_fps
    assert detail.metrics == {"metrics.json:score": 0.1, "metrics.json:nested.n": 2}
    assert [r.id for r in api.runs(scored.root)] == [second.run_id, first.run_id]


def test_the_dirty_flag_and_a_param_change_are_recorded(scored: Project) -> None:
    scored.repro()
    scored.params("# params\ntrain:\n  lr: 0.5  # learning rate\n  epochs: 3\n")
    result = scored.repro()
    assert ran(result) == ["train", "evaluate"]
    detail = api.run_detail(scored.root, result.run_id)
    assert detail.run.git_dirty is True
    assert detail.params == {"train.lr": 0.5}
    assert detail.metrics["metrics.json:score"] == 0.5
    train = next(s for s in detail.stages if s.stage == "train")
    assert any("train.lr" in reason for reason in train.reasons)


def test_restored_stages_are_recorded_as_restored_with_the_cached_log(scored: Project) -> None:
    first = scored.repro()
    scored.params("train:\n  lr: 0.5\n")
    scored.repro()
    scored.params("train:\n  lr: 0.1\n")
    back = scored.repro()
    detail = api.run_detail(scored.root, back.run_id)
    outcomes = {s.stage: s.outcome for s in detail.stages}
    assert outcomes == {"prepare": "up to date", "train": "restored", "evaluate": "restored"}
    logs = {s.stage: s.log_hash for s in api.run_detail(scored.root, first.run_id).stages}
    assert {s.stage: s.log_hash for s in detail.stages if s.outcome == "restored"} == {
        "train": logs["train"],
        "evaluate": logs["evaluate"],
    }


def test_a_failing_repro_is_recorded_failed_with_the_exit_code_and_log(project: Project) -> None:
    project.manifest(
        {
            "stages": {
                "ok": {"cmd": "echo fine > ok.txt", "outs": ["ok.txt"]},
                "bad": {
                    "cmd": "echo about to fail; exit 3",
                    "deps": ["ok.txt"],
                    "outs": ["bad.txt"],
                },
                "after": {
                    "cmd": "cp bad.txt after.txt",
                    "deps": ["bad.txt"],
                    "outs": ["after.txt"],
                },
            }
        }
    )
    result = project.repro()
    assert result.failed is not None and result.run_id is not None
    detail = api.run_detail(project.root, result.run_id)
    assert detail.run.status == "failed"
    stages = {s.stage: s for s in detail.stages}
    assert {k: s.outcome for k, s in stages.items()} == {
        "ok": "ran",
        "bad": "failed",
        "after": "skipped",
    }
    assert stages["bad"].exit_code == 3
    assert stages["bad"].error
    with open_session(project.root) as session:
        assert stages["bad"].log_hash is not None
        assert b"about to fail" in session.store.path(stages["bad"].log_hash).read_bytes()


def test_record_false_writes_no_run(scored: Project) -> None:
    result = api.repro(ReproOptions(root=scored.root, record=False))
    assert ran(result) == ["prepare", "train", "evaluate"]
    assert result.run_id is None
    assert api.runs(scored.root) == []


def test_repro_outside_git_records_no_commit(tmp_path: Path) -> None:
    project = Project(tmp_path.resolve())
    project.write("MLproject", "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n")
    result = project.repro()
    run = api.run_detail(project.root, result.run_id).run
    assert (run.status, run.git_commit, run.git_branch, run.git_dirty) == (
        "succeeded",
        None,
        None,
        None,
    )


def test_chain_records_params_used_by_stages(chain: Project) -> None:
    result = chain.repro()
    assert ran(result) == CHAIN_ORDER
    params = api.run_detail(chain.root, result.run_id).params
    assert params["train.lr"] == 0.1
    assert "train.epochs" not in params  # no stage uses it


def test_a_failed_run_is_not_credited_with_stale_metrics(scored: Project) -> None:
    scored.repro()  # lr 0.1 → score 0.1
    scored.manifest(
        {
            **SCORED,
            "stages": {
                **SCORED["stages"],
                "train": {
                    **SCORED["stages"]["train"],
                    "cmd": "test ${train.lr} != 0.5 && " + SCORED["stages"]["train"]["cmd"],
                },
            },
        }
    )
    scored.params("train:\n  lr: 0.5\n")
    result = scored.repro()
    assert result.failed is not None and result.failed.stage == "train"
    detail = api.run_detail(scored.root, result.run_id)
    assert detail.run.status == "failed"
    assert detail.params == {"train.lr": 0.5}
    assert detail.metrics.get("metrics.json:score") != 0.1  # evaluate never ran with lr 0.5


# -- compare over stored runs -----------------------------------------------------------------


def test_compare_keeps_only_differing_params_but_every_metric(store: RunStore) -> None:
    from pipeline.cli.tables import render
    from pipeline.runs.compare import compare

    store.start(_row("a", 1.0, name="first"), {"lr": 0.1, "seed": 1, "tag": "x"})
    store.finish("a", "succeeded", 2.0, {"m.json:acc": 0.8, "m.json:loss": 0.5})
    store.start(_row("b", 3.0), {"lr": 0.2, "seed": 1, "tag": "x"})
    store.finish("b", "succeeded", 4.0, {"m.json:acc": 0.9, "m.json:loss": 0.5})
    store.start(_row("c", 5.0), {"lr": 0.3, "seed": 1})  # no metrics, no tag
    store.finish("c", "failed", 6.0, {})

    table = compare(store)
    assert [r.id for r in table.runs] == ["c", "b", "a"]
    assert table.params == ("lr", "tag")  # seed is the same everywhere; tag is missing in c
    assert table.metrics == ("acc", "loss")  # one metrics file: its name is dropped
    every = compare(store, all_columns=True)
    assert every.params == ("lr", "seed", "tag")

    by_acc = compare(store, sort_by="acc")
    assert [r.id for r in by_acc.runs] == ["b", "a", "c"]  # runs without the metric go last
    assert [r.id for r in compare(store, sort_by="acc", descending=False).runs] == ["a", "b", "c"]
    assert render(table, "text").splitlines()[0].split() == [
        "run", "name", "status", "lr", "tag", "acc", "loss",
    ]  # fmt: skip
    assert render(table, "csv").splitlines()[1] == "c,,failed,0.3,-,-,-"
    with pytest.raises(UsageError, match="no param or metric 'nope'"):
        compare(store, sort_by="nope")


def test_compare_keeps_file_prefixes_with_several_metrics_files(store: RunStore) -> None:
    from pipeline.runs.compare import compare

    store.start(_row("a", 1.0), {})
    store.finish("a", "succeeded", 2.0, {"train.json:loss": 0.5, "eval.json:acc": 0.8})
    assert compare(store).metrics == ("eval.json:acc", "train.json:loss")
    assert [r.id for r in compare(store, sort_by="acc").runs] == ["a"]  # a suffix is enough


def test_an_api_repro_does_not_record_the_host_process_argv(scored: Project) -> None:
    import sys

    result = scored.repro()
    command = api.run_detail(scored.root, result.run_id).run.command
    assert command != " ".join(["pipeline", *sys.argv[1:]])
