"""How every `repro` is recorded in the run store, through the API: each field a
reproducibility checklist asks for, checked against the lock, the cache and git; failed and
restored stages; and a run store that cannot be written.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import time
from pathlib import Path

import pytest

from pipeline import api
from pipeline.api import ReproOptions
from pipeline.core.hashing import digest_bytes
from pipeline.plan.session import open_session
from tests.conftest import CHAIN_ORDER, Project, cli_env, ran, record

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


def test_a_repro_that_does_nothing_is_not_recorded(scored: Project) -> None:
    first = scored.repro()
    second = scored.repro()
    assert ran(second) == []
    assert second.run_id is None and second.record_error is None
    assert [r.id for r in api.runs(scored.root)] == [first.run_id]
    assert os.listdir(scored.root / ".pipeline" / "tmp" / "journal") == []  # no journal left
    (scored.root / "model.txt").unlink()  # restored from the cache: that is a run again
    third = scored.repro()
    assert third.run_id is not None
    assert [r.id for r in api.runs(scored.root)] == [third.run_id, first.run_id]
    outcomes = {s.stage: s.outcome for s in api.run_detail(scored.root, third.run_id).stages}
    assert outcomes == {"prepare": "up to date", "train": "restored", "evaluate": "up to date"}


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
    assert detail.metrics == {}  # evaluate never ran with lr 0.5: no metrics are credited


def test_an_api_repro_does_not_record_the_host_process_argv(scored: Project) -> None:
    result = scored.repro()
    command = api.run_detail(scored.root, result.run_id).run.command
    assert command == "pipeline.api (repro)"


# -- a run store that cannot be written; a failed stage's record -------------------------------


def _cli_env() -> dict[str, str]:
    return cli_env(XDG_CACHE_HOME=os.environ["XDG_CACHE_HOME"])


def _break_store(project: Project) -> None:
    state = project.root / ".pipeline"
    for name in ("runs.db-wal", "runs.db-shm"):
        (state / name).unlink(missing_ok=True)
    (state / "runs.db").unlink(missing_ok=True)
    (state / "runs.db").mkdir()  # sqlite cannot open it (a damaged file is set aside instead)


@pytest.mark.usefixtures("xdg_cache_home")
def test_a_repro_that_cannot_be_recorded_says_so(three: Project) -> None:
    _break_store(three)
    three.write("raw.txt", "changed\n")
    done = three.cli("repro", env=_cli_env())
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(
        "warning: the run was not recorded: DiskError: cannot open the database: .pipeline/runs.db"
    ), done.stderr
    assert "its stages ran and the lock is up to date" in done.stderr
    assert not re.search(r"^recorded as run", done.stdout, re.M)


@pytest.mark.usefixtures("xdg_cache_home")
def test_a_run_that_cannot_be_recorded_does_not_claim_a_run_id(three: Project) -> None:
    _break_store(three)
    done = three.cli("run", "--param", "train.lr=0.2", env=_cli_env())
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(
        "warning: the run was not recorded: DiskError: cannot open the database: .pipeline/runs.db"
    ), done.stderr
    assert "Traceback" not in done.stderr
    assert "✓ train" in done.stdout  # the experiment itself ran
    assert not re.search(r"^recorded as run", done.stdout, re.M)


def test_a_failed_stage_is_not_recorded_with_the_previous_outputs(project: Project) -> None:
    project.write("raw.txt", "1\n")
    stage = {"cmd": 'test "$(cat raw.txt)" = 1 && cp raw.txt out.txt', "deps": ["raw.txt"]}
    project.manifest({"name": "x", "stages": {"s": {**stage, "outs": ["out.txt"]}}})
    first = project.repro()
    project.write("raw.txt", "2\n")
    second = project.repro()
    assert second.failed is not None
    assert first.run_id is not None and second.run_id is not None
    [good] = api.run_detail(project.root, first.run_id).stages
    [bad] = api.run_detail(project.root, second.run_id).stages
    [good_dep] = good.deps  # the control: a stage that ran records its own hashes
    assert (good_dep.path, good_dep.hash) == ("raw.txt", digest_bytes(b"1\n"))
    assert [o.path for o in good.outs] == ["out.txt"]
    assert good.fingerprint is not None
    # the failed stage made no lock entry: none of the previous entry's hashes are its own
    assert bad.outcome == "failed"
    assert (bad.fingerprint, bad.deps, bad.outs) == (None, (), ())
