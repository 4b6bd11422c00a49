"""Stage jobs beyond the remote path: run in place on a shared filesystem
(`executor.shared_fs`), run by hand with `pipeline exec-stage JOB.json`, and what a worker's
stage logged through DVCLive or MLflow coming back to the driver's run record.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline import api
from pipeline.errors import DataError
from pipeline.execute.dispatch import InProcessBackend
from pipeline.execute.options import ReproOptions
from pipeline.execute.scheduler import Outcome
from pipeline.execute.stagejob import JobResult, StageJob, load_job, run_job
from pipeline.load.project import Stage
from tests.conftest import Project, outcomes
from tests.execute.test_stagejobs import SCRIPT, diamond, entries, outputs, records
from tests.servers import RemoteSpec, configure

SHARED = "executor: {shared_fs: true}\n"


class Capture(InProcessBackend):
    """The in-process backend, keeping each job as a worker receives it."""

    jobs: list[str]

    def run(self, job: StageJob, stage: Stage, stop: threading.Event) -> JobResult:
        self.jobs.append(job.to_json())
        return super().run(job, stage, stop)


def capture(home: Path) -> Capture:
    backend = Capture(home)
    object.__setattr__(backend, "jobs", [])  # frozen dataclass: set once, here
    return backend


def shared_project(make_project: Callable[..., Project], name: str) -> Project:
    """The diamond with no remote at all: only the shared filesystem moves data."""
    project = make_project(name)
    project.write("tool.py", SCRIPT)
    project.params({"tag": "x"})
    project.manifest(diamond(), commit=False)
    project.write(".pipeline/config.yaml", SHARED)
    project.commit(message="diamond")
    return project


def test_shared_fs_runs_in_place_and_equals_a_local_repro(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    here, there = shared_project(make_project, "here"), shared_project(make_project, "there")
    assert here.repro().failed is None
    home = tmp_path / "worker"
    result = api.repro(ReproOptions(root=there.root), backend=InProcessBackend(home))
    assert result.failed is None
    assert set(outcomes(result).values()) == {Outcome.RAN}
    assert outputs(there) == outputs(here)
    assert there.lock() == here.lock()
    assert entries(there) == entries(here)
    assert records(there) == records(here)
    assert all((there.root / ".pipeline" / "logs" / f"{s}.log").is_file() for s in "abcd")
    assert not (home / "cache").exists()  # nothing was fetched or pushed
    assert not list((home / "jobs").iterdir())  # each job's scratch is gone


def test_shared_fs_clears_stale_outs_and_keeps_persistent_ones(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    project = make_project("persist")
    stages = {
        "grow": {"cmd": "echo line >> log.txt", "outs": [{"log.txt": {"persist": True}}]},
        "fresh": {"cmd": "test ! -e stale.txt && echo new > stale.txt", "outs": ["stale.txt"]},
    }
    project.manifest({"name": "p", "stages": stages}, commit=False)
    project.write(".pipeline/config.yaml", SHARED)
    project.commit(message="p")
    project.write("stale.txt", "old\n")
    backend = InProcessBackend(tmp_path / "w")
    assert api.repro(ReproOptions(root=project.root), backend=backend).failed is None
    assert project.read("stale.txt") == "new\n"  # cleared before the worker ran
    forced = api.repro(ReproOptions(root=project.root, force=True), backend=backend)
    assert forced.failed is None
    assert project.read("log.txt") == "line\nline\n"  # persist: appended to, in place


def test_a_worker_without_the_shared_project_says_so(tmp_path: Path) -> None:
    job = StageJob(
        fingerprint="xxh3_128:00", stage="s", cmd=("true",), wdir=".", deps=(), outs=(),
        source=None, remote=None, workspace=str(tmp_path / "not-mounted"),
        log_file=str(tmp_path / "s.log"),
    )  # fmt: skip
    with pytest.raises(DataError, match=r"the project is not at .*not-mounted"):
        run_job(job, tmp_path / "w")


def test_persist_outs_need_the_shared_filesystem_to_leave_the_driver(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    project = make_project("moved")
    stage = {"cmd": "echo x >> log.txt", "outs": [{"log.txt": {"persist": True}}]}
    project.manifest({"name": "m", "stages": {"grow": stage}}, commit=False)
    configure(project.root, local_remote)
    project.commit(message="m")
    failed = api.repro(
        ReproOptions(root=project.root), backend=InProcessBackend(tmp_path / "w")
    ).failed
    assert failed is not None and failed.error is not None
    assert "persist" in failed.error.message and "shared_fs" in (failed.error.hint or "")


def _one_stage(make_project: Callable[..., Project], spec: RemoteSpec, stages: dict) -> Project:
    """A committed project of `stages`, its data moving through the remote `spec`."""
    project = make_project("one")
    project.manifest({"name": "o", "stages": stages}, commit=False)
    configure(project.root, spec)
    project.commit(message="o")
    return project


def _moved_project(make_project: Callable[..., Project], spec: RemoteSpec, cmd: str) -> Project:
    return _one_stage(make_project, spec, {"s": {"cmd": cmd, "outs": ["o.txt"]}})


def _captured_job(project: Project, tmp_path: Path) -> Path:
    """The job `repro` hands a worker for the project's one stage, written to a file."""
    backend = capture(tmp_path / "driver-worker")
    api.repro(ReproOptions(root=project.root), backend=backend)
    job = tmp_path / "job.json"
    job.write_text(backend.jobs[0])
    return job


def _exec_stage(
    job: Path | str, home: Path | str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pipeline", "exec-stage", str(job), "--home", str(home)]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_exec_stage_runs_a_job_by_hand_and_prints_its_result(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    project = _moved_project(make_project, local_remote, "echo made > o.txt")
    job = _captured_job(project, tmp_path)
    done = _exec_stage(job, tmp_path / "by-hand")
    assert done.returncode == 0, done.stderr
    result = JobResult.from_dict(json.loads(done.stdout))
    assert result.succeeded and result.fingerprint == load_job(job).fingerprint
    [out] = result.outs
    assert (out.path, out.hash) == ("o.txt", project.lock()["stages"]["s"]["outs"][0]["hash"])
    assert (tmp_path / "by-hand" / "cache").is_dir()  # fetched into this worker's own cache


def test_exec_stage_exits_1_when_the_command_fails(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    project = _moved_project(make_project, local_remote, "echo no; exit 5")
    done = _exec_stage(_captured_job(project, tmp_path), tmp_path / "by-hand")
    assert done.returncode == 1
    assert json.loads(done.stdout)["exit_code"] == 5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{}", "not a stage job of this version"),
        (b'{"format": "pipeline-stage-job 1"}', "a damaged stage job: KeyError"),
        (b"\xff\xfe", "not a stage job (not UTF-8)"),
        (b"[1, 2", "a damaged stage job"),
    ],
)
def test_exec_stage_refuses_what_is_not_a_job_in_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    job = tmp_path / "job.json"
    job.write_bytes(content)
    done = _exec_stage(job, tmp_path / "w")
    assert done.returncode == 4
    assert done.stderr.startswith(f"error: {job}: {message}")
    assert "Traceback" not in done.stderr


DVCLIVE = (
    "mkdir -p dvclive/plots/metrics && "
    "printf 'step\\tloss\\n0\\t0.9\\n1\\t0.4\\n' > dvclive/plots/metrics/loss.tsv && "
    'echo \'{"loss": 0.4, "acc": 0.8, "step": 1}\' > dvclive/metrics.json && '
    "echo done > o.txt"
)
MLFLOW = (
    'store="$(echo "$MLFLOW_TRACKING_URI" | cut -c8-)/0/r1" && '
    'mkdir -p "$store/metrics" "$store/params" && '
    'touch "$store/meta.yaml" && '
    "printf '1700000000000 0.25 0\\n1700000000001 0.125 1\\n' > \"$store/metrics/mse\" && "
    'printf 0.01 > "$store/params/alpha" && echo done > o.txt'
)


@pytest.mark.parametrize(
    ("cmd", "metric", "value"),
    [(DVCLIVE, "acc", 0.8), (MLFLOW, "mse", 0.125)],
    ids=["dvclive", "mlflow"],
)
def test_what_a_worker_stage_logs_with_dvclive_or_mlflow_reaches_the_record(  # noqa: PLR0917
    make_project: Callable[..., Project],
    local_remote: RemoteSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cmd: str,
    metric: str,
    value: float,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = _moved_project(make_project, local_remote, cmd)
    result = api.repro(ReproOptions(root=project.root), backend=InProcessBackend(tmp_path / "w"))
    assert result.failed is None
    shown = project.cli("runs", "show", "latest", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["metrics"][metric] == value


def test_a_job_leaves_no_database_connection_to_the_garbage_collector(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    """On a Dask worker the cyclic collector may run inside the profiler's
    `sys._current_frames()`; closing a SQLite connection there deadlocked the whole worker
    (CPython 3.11). A job closes what it opens, on its own thread."""
    project = _moved_project(make_project, local_remote, "echo made > o.txt")
    backend = capture(tmp_path / "w")
    assert api.repro(ReproOptions(root=project.root), backend=backend).failed is None
    job = StageJob.from_json(backend.jobs[0])
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert run_job(job, tmp_path / "w").succeeded
        gc.collect()
        assert not [o for o in gc.garbage if isinstance(o, sqlite3.Connection)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


# --- what the reviewer found: the driver's half ----------------------------------------------


def test_stages_asking_many_cpus_still_run_side_by_side_on_a_cluster(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    """`cpus: 40` is the cluster's to count (Dask resources), not the driver's: each stage
    waits until all four have started, so they can only pass together."""
    started = tmp_path / "started"
    started.mkdir()
    all_in = f"[ $(ls {started} | wc -l) -ge 4 ]"
    wait = f"touch {started}/$N; for i in $(seq 600); do {all_in} && break; sleep 0.05; done"
    stages = {
        f"s{i}": {"cmd": f"N={i}; {wait}; {all_in} && touch o{i}.txt",
                  "outs": [f"o{i}.txt"], "resources": {"cpus": 40}}
        for i in range(4)
    }  # fmt: skip
    project = _one_stage(make_project, local_remote, stages)
    result = api.repro(ReproOptions(root=project.root), backend=InProcessBackend(tmp_path / "w"))
    assert result.failed is None, result.failed.error


def test_an_env_outside_the_project_ships_only_the_files_its_spec_names(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    stages = {"s": {"cmd": "echo ok > o.txt", "env": "e", "outs": ["o.txt"]}}
    project = make_project("envs")
    home = project.root.parent  # `../` of the project: a folder with other things in it
    (home / "reqs.txt").write_text("-r base.txt\n")
    (home / "base.txt").write_text("# nothing to install\n-c more/pins.txt\n")
    (home / "more").mkdir()
    (home / "more" / "pins.txt").write_text("# pins-from-a-subfolder\n")
    (home / ".netrc").write_text("machine example.org password hunter2-secret\n")
    (home / "diary.txt").write_text("private-words-never-shipped\n")
    project.manifest(
        {"name": "e", "environments": {"e": {"requirements": "../reqs.txt"}}, "stages": stages},
        commit=False,
    )
    configure(project.root, local_remote)
    project.commit(message="e")
    result = api.repro(ReproOptions(root=project.root), backend=InProcessBackend(tmp_path / "w"))
    assert result.failed is None, result.failed.error
    shipped = b"".join(p.read_bytes() for p in Path(local_remote.url).rglob("*") if p.is_file())
    assert b"-r base.txt" in shipped and b"nothing to install" in shipped
    assert b"pins-from-a-subfolder" in shipped  # an include's include, in a subfolder
    assert b"hunter2-secret" not in shipped and b"private-words" not in shipped


def test_shipping_never_hard_links_the_users_source_into_the_cache(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    stages = {"s": {"cmd": "./tool.sh > o.txt", "deps": ["tool.sh"], "outs": ["o.txt"]}}
    project = make_project("links")
    project.write("tool.sh", "#!/bin/sh\necho tool\n")
    (project.root / "tool.sh").chmod(0o755)
    project.write("helper.sh", "#!/bin/sh\n")
    (project.root / "helper.sh").chmod(0o755)
    project.write("notes.md", "notes\n")
    project.manifest({"name": "l", "stages": stages}, commit=False)
    configure(project.root, local_remote)
    project.write(
        ".pipeline/config.yaml", project.read(".pipeline/config.yaml") + "cache: {type: hardlink}\n"
    )
    project.commit(message="l")
    result = api.repro(ReproOptions(root=project.root), backend=InProcessBackend(tmp_path / "w"))
    assert result.failed is None, result.failed.error
    for name, mode in (("tool.sh", 0o755), ("helper.sh", 0o755), ("notes.md", 0o644)):
        st = (project.root / name).stat()
        assert (st.st_mode & 0o777, st.st_nlink) == (mode, 1), name
    assert project.git("diff", "--stat").strip() == ""  # no mode change for git to see


def test_a_failed_remote_stage_leaves_no_stale_output(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    stages = {"s": {"cmd": "grep -q good in.txt && cp in.txt out.txt", "deps": ["in.txt"],
                    "outs": ["out.txt"]}}  # fmt: skip
    project = make_project("stale")
    project.write("in.txt", "good\n")
    project.manifest({"name": "s", "stages": stages}, commit=False)
    configure(project.root, local_remote)
    project.commit(message="s")
    backend = InProcessBackend(tmp_path / "w")
    assert api.repro(ReproOptions(root=project.root), backend=backend).failed is None
    project.write("in.txt", "bad\n")
    failed = api.repro(ReproOptions(root=project.root), backend=backend).failed
    assert failed is not None
    assert not project.exists("out.txt")  # as locally: the last run's output is gone


def test_a_remote_failure_reads_as_the_local_one(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    stages = {
        "lazy": {"cmd": "true", "outs": ["never.txt"]},
        "slow": {"cmd": "exec sleep 60", "outs": ["s.txt"], "timeout": 1},
    }
    project = _one_stage(make_project, local_remote, stages)
    backend = InProcessBackend(tmp_path / "w")
    options = ReproOptions(root=project.root, keep_going=True)
    results = {r.stage: r for r in api.repro(options, backend=backend).results}
    lazy, slow = results["lazy"].error, results["slow"].error
    assert lazy is not None and lazy.message.startswith("stage lazy did not create never.txt")
    assert lazy.returncode is None  # as locally: no exit code to blame
    assert slow is not None and slow.message.startswith("stage slow timed out after 1s on ")


def test_shared_fs_retries_a_stage_that_left_an_out_unwritten(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    count = tmp_path / "count"
    cmd = f"echo run >> {count}; [ $(wc -l < {count}) -ge 2 ] && echo ok > o.txt; true"
    project = make_project("lazy")
    project.manifest({"name": "l", "stages": {"s": {"cmd": cmd, "outs": ["o.txt"], "retries": 1}}},
                     commit=False)  # fmt: skip
    project.write(".pipeline/config.yaml", SHARED)
    project.commit(message="l")
    result = api.repro(ReproOptions(root=project.root), backend=InProcessBackend(tmp_path / "w"))
    assert result.failed is None and result.results[0].attempts == 2  # as a local run retries
    assert project.read("o.txt") == "ok\n"


def test_exec_stage_takes_a_relative_home(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    project = _moved_project(make_project, local_remote, "echo made > o.txt")
    _captured_job(project, tmp_path)
    done = _exec_stage("job.json", "relative", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "relative" / "cache").is_dir()
