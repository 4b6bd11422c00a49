"""Stages on a real Dask cluster on loopback: a scheduler and two workers, each its own process
with its own working directory and HOME, so nothing is shared but the moto S3 remote.

- a 20-stage diamond gives outputs byte-identical to a local `repro`, with equal lock files
  and run-cache entries; a second `repro` submits nothing;
- a `gpus: 1` stage lands only on the worker that declares `gpus`;
- a worker killed mid-stage: the stage runs again on the other one, and the run succeeds;
- a failing command is not retried; an unreachable scheduler is one error, exit 4.

The cluster is started once per test process and ended by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import api
from pipeline.errors import ClusterError
from pipeline.execute.options import ReproOptions
from pipeline.execute.scheduler import Outcome
from pipeline.experiments.options import RunOptions
from pipeline.runs.model import RunStatus
from tests.conftest import Project, cli_env, outcomes, pipeline_process, wait_gone, wait_until
from tests.execute.test_stagejobs import entries, records
from tests.servers import CREDENTIALS, RemoteSpec, aws_env, closed_port, configure, free_port

pytestmark = pytest.mark.slow
STARTUP_SECONDS = 60


@dataclass(frozen=True)
class Cluster:
    address: str
    homes: dict[str, Path]  # worker name → its HOME


def _spawn(args: list[str], home: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "XDG_", "PIPELINE_"))}
    env.update({**aws_env(home), **CREDENTIALS, "HOME": str(home)})
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args], cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT
        )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`dask scheduler` and two `dask worker`s (w-gpu declares `gpus=1`), by PID."""
    import distributed

    base = tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        _spawn(
            ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"],
            base, base / "scheduler.log",
        )
    ]  # fmt: skip
    homes = {}
    for name, extra in (("w-cpu", []), ("w-gpu", ["--resources", "gpus=1"])):
        home = base / name
        home.mkdir()
        homes[name] = home
        args = ["distributed.cli.dask_worker", address, "--nthreads", "2", "--no-dashboard"]
        args += ["--host", "127.0.0.1", "--name", name, "--local-directory", str(home / "dask")]
        args += extra
        procs.append(_spawn(args, home, home / "worker.log"))
    try:
        with distributed.Client(address, timeout=STARTUP_SECONDS) as client:
            client.wait_for_workers(2, timeout=STARTUP_SECONDS)
        yield Cluster(address, homes)
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def diamond(width: int = 18) -> dict:
    """`top` → `m0..m{width-1}` → `bottom`: 20 stages; `m3` writes a directory."""
    stages: dict = {"top": {"cmd": "echo seed ${seed} > top.txt", "params": ["seed"],
                            "outs": ["top.txt"]}}  # fmt: skip
    for i in range(width):
        if i == 3:
            cmd = "mkdir -p m3 && cat top.txt > m3/a.txt && echo 3 > m3/b.txt"
            stages[f"m{i}"] = {"cmd": cmd, "deps": ["top.txt"], "outs": ["m3"]}
        else:
            cmd = f"{{ cat top.txt; echo {i}; }} > m{i}.txt"
            stages[f"m{i}"] = {"cmd": cmd, "deps": ["top.txt"], "outs": [f"m{i}.txt"]}
    deps = [f"m{i}.txt" if i != 3 else "m3" for i in range(width)]
    cat = " ".join(d if d != "m3" else "m3/a.txt m3/b.txt" for d in deps)
    stages["bottom"] = {"cmd": f"cat {cat} > bottom.txt", "deps": deps, "outs": ["bottom.txt"]}
    return {"name": "diamond20", "stages": stages}


def setup(
    make_project: Callable[..., Project], name: str, spec: RemoteSpec, manifest: dict
) -> Project:
    project = make_project(name)
    project.params({"seed": 7})
    project.manifest(manifest, commit=False)
    configure(project.root, spec)
    project.commit(message=name)
    return project


def on_cluster(project: Project, cluster: Cluster, *targets: str) -> api.RunResult:
    options = ReproOptions(
        root=project.root, targets=targets, executor="dask", scheduler=cluster.address
    )
    return api.repro(options)


def files(project: Project) -> dict[str, bytes]:
    found = {}
    for path in sorted(project.root.rglob("*")):
        rel = path.relative_to(project.root).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".pipeline/")):
            found[rel] = path.read_bytes()
    return found


def test_a_20_stage_diamond_on_the_cluster_equals_a_local_repro(
    cluster: Cluster, make_project: Callable[..., Project], s3_remote: RemoteSpec
) -> None:
    here = setup(make_project, "here", s3_remote, diamond())
    there = setup(make_project, "there", s3_remote, diamond())
    assert here.repro().failed is None
    result = on_cluster(there, cluster)
    assert result.failed is None
    assert set(outcomes(result).values()) == {Outcome.RAN}
    assert {r.host for r in result.results} == {os.uname().nodename}
    assert files(there) == files(here)
    assert there.lock() == here.lock()
    assert entries(there) == entries(here)
    assert records(there) == records(here)  # apart from host, timings and ids
    again = on_cluster(there, cluster)
    assert set(outcomes(again).values()) == {Outcome.UP_TO_DATE}


def test_a_gpu_stage_runs_only_on_the_worker_that_declares_gpus(
    cluster: Cluster, make_project: Callable[..., Project], s3_remote: RemoteSpec
) -> None:
    stages = {
        f"s{i}": {"cmd": f'echo "$HOME" > where{i}.txt', "outs": [f"where{i}.txt"],
                  **({"resources": {"gpus": 1}} if i % 2 == 0 else {})}
        for i in range(6)
    }  # fmt: skip
    project = setup(make_project, "gpu", s3_remote, {"name": "gpu", "stages": stages})
    assert on_cluster(project, cluster).failed is None
    for i in range(0, 6, 2):
        assert project.read(f"where{i}.txt").strip() == str(cluster.homes["w-gpu"])


def test_a_worker_killed_mid_stage_reruns_it_on_the_other(
    cluster: Cluster, make_project: Callable[..., Project], s3_remote: RemoteSpec, tmp_path: Path
) -> None:
    tries = tmp_path / "tries.txt"
    # the first attempt kills its own worker (the stage's parent process), mid-stage
    first = f"[ $(wc -l < {tries}) -eq 1 ]"
    cmd = f'echo "$HOME" >> {tries}; if {first}; then kill -9 $PPID; exit 1; fi; echo ok > out.txt'
    project = setup(
        make_project, "kill", s3_remote,
        {"name": "kill", "stages": {"victim": {"cmd": cmd, "outs": ["out.txt"]}}},
    )  # fmt: skip
    result = on_cluster(project, cluster)
    assert result.failed is None
    homes = tries.read_text().split()
    assert len(homes) == 2 and homes[0] != homes[1]
    assert project.read("out.txt") == "ok\n"


def test_a_failing_command_is_not_retried(
    cluster: Cluster, make_project: Callable[..., Project], s3_remote: RemoteSpec, tmp_path: Path
) -> None:
    count = tmp_path / "count.txt"
    project = setup(
        make_project, "fail", s3_remote,
        {"name": "fail", "stages": {"bad": {"cmd": f"echo x >> {count}; exit 5",
                                            "outs": ["never.txt"]}}},
    )  # fmt: skip
    result = on_cluster(project, cluster)
    failed = result.failed
    assert failed is not None and failed.exit_code == 5
    assert count.read_text() == "x\n"


def test_an_unreachable_scheduler_is_one_error(
    make_project: Callable[..., Project], s3_remote: RemoteSpec
) -> None:
    project = setup(
        make_project, "nowhere", s3_remote,
        {"name": "n", "stages": {"s": {"cmd": "echo 1 > o.txt", "outs": ["o.txt"]}}},
    )  # fmt: skip
    options = ReproOptions(
        root=project.root, executor="dask", scheduler=f"tcp://127.0.0.1:{closed_port()}"
    )
    with pytest.raises(ClusterError) as caught:
        api.repro(options)
    assert caught.value.exit_code == 4
    assert "cannot reach the Dask scheduler" in caught.value.message


def test_a_stage_no_worker_can_take_fails_at_once(
    cluster: Cluster, make_project: Callable[..., Project], s3_remote: RemoteSpec
) -> None:
    stage = {"cmd": "echo 1 > o.txt", "outs": ["o.txt"], "resources": {"licence": 1}}
    project = setup(make_project, "licence", s3_remote, {"name": "l", "stages": {"s": stage}})
    failed = on_cluster(project, cluster).failed
    assert failed is not None and isinstance(failed.error, ClusterError)
    assert "needs licence=1, and no worker" in failed.error.message
    assert '--resources "licence=1"' in failed.error.hint


def test_ctrl_c_stops_the_stage_on_its_worker_and_records_the_run_interrupted(
    cluster: Cluster, make_project: Callable[..., Project], s3_remote: RemoteSpec, tmp_path: Path
) -> None:
    pid_file = tmp_path / "stage.pid"
    cmd = f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file} && exec sleep 600"
    project = setup(
        make_project, "ctrlc", s3_remote,
        {"name": "c", "stages": {"slow": {"cmd": cmd, "outs": ["never.txt"]}}},
    )  # fmt: skip
    args = ["repro", "--executor", "dask", "--scheduler", cluster.address]
    with pipeline_process(project.root, *args, **s3_remote.env) as proc:
        wait_until(proc, pid_file.exists, "the stage running on a worker")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    assert wait_gone(int(pid_file.read_text()), 30), "the stage's command outlived the run"
    listed = project.cli("runs", "--json", env=cli_env(**s3_remote.env))
    assert json.loads(listed.stdout)[0]["status"] == RunStatus.INTERRUPTED.value


def test_a_sweep_runs_its_points_on_the_cluster(
    cluster: Cluster, make_project: Callable[..., Project], s3_remote: RemoteSpec
) -> None:
    stages = {"s": {"cmd": "echo ${seed} > out.txt", "params": ["seed"], "outs": ["out.txt"]}}
    project = setup(make_project, "sweep", s3_remote, {"name": "sw", "stages": stages})
    options = RunOptions(
        root=project.root, sweeps=("seed=1,2",), executor="dask", scheduler=cluster.address
    )
    experiment = api.run(options)
    assert experiment.parent_id is not None
    table = api.compare(project.root, (experiment.parent_id,))
    assert len(table.runs) == 2
    assert all(table.hosts[r.id] == (os.uname().nodename,) for r in table.runs)
    assert not project.exists("out.txt")  # the points ran in their own workspaces


def test_shared_fs_runs_stages_in_the_project_itself_without_a_remote(
    cluster: Cluster, make_project: Callable[..., Project]
) -> None:
    """The workers see the project at the driver's path (one machine here, as an NFS mount
    would give): no remote is configured, and each stage runs in the project directory."""
    manifest = diamond(4)
    manifest["stages"]["where"] = {"cmd": 'echo "$HOME $PWD" > where.txt', "outs": ["where.txt"]}
    here, there = (make_project(name) for name in ("here", "there"))
    for project in (here, there):
        project.params({"seed": 7})
        project.manifest(manifest, commit=False)
        project.write(".pipeline/config.yaml", "executor: {shared_fs: true}\n")
        project.commit(message="shared")
    assert here.repro().failed is None
    result = on_cluster(there, cluster)
    assert result.failed is None
    assert set(outcomes(result).values()) == {Outcome.RAN}
    home, cwd = there.read("where.txt").split()
    assert home in {str(h) for h in cluster.homes.values()}  # a worker ran it...
    assert cwd == str(there.root)  # ...in the project itself

    def without_where(found: dict) -> dict:
        return {k: v for k, v in found.items() if k not in {"where", "where.txt", "pipeline.lock"}}

    assert without_where(files(there)) == without_where(files(here))
    assert without_where(there.lock()["stages"]) == without_where(here.lock()["stages"])
    assert without_where(entries(there)) == without_where(entries(here))
    again = on_cluster(there, cluster)
    assert set(outcomes(again).values()) == {Outcome.UP_TO_DATE}


def test_a_lost_scheduler_is_one_error_and_its_stage_does_not_run_on(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    """A scheduler of its own (this test kills it): the driver says so in one line (exit 4),
    and the worker stops the stage's command instead of letting it write on, unwatched."""
    import distributed

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    home = tmp_path / "cluster"
    home.mkdir()
    scheduler = _spawn(
        ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"],
        home, home / "scheduler.log",
    )  # fmt: skip
    worker = _spawn(
        ["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard",
         "--host", "127.0.0.1", "--local-directory", str(home / "dask")],
        home, home / "worker.log",
    )  # fmt: skip
    pid_file = tmp_path / "stage.pid"
    cmd = f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file} && exec sleep 600"
    project = make_project("lost")
    project.manifest({"name": "l", "stages": {"s": {"cmd": cmd, "outs": ["o.txt"]}}}, commit=False)
    project.write(".pipeline/config.yaml", "executor: {shared_fs: true}\n")
    project.commit(message="l")
    try:
        with distributed.Client(address, timeout=STARTUP_SECONDS) as client:
            client.wait_for_workers(1, timeout=STARTUP_SECONDS)
        args = ["repro", "--executor", "dask", "--scheduler", address]
        with pipeline_process(project.root, *args) as proc:
            # hang guards only, generous: a loaded 2-CPU machine starts processes slowly
            wait_until(proc, pid_file.exists, "the stage running on the worker", seconds=180)
            scheduler.kill()
            assert proc.wait(timeout=120) == 4
            assert proc.stderr is not None
            err = proc.stderr.read().decode()
        assert err.startswith(f"error: lost the Dask scheduler at {address}"), err
        assert "Traceback" not in err
        # the worker notices within its comm timeouts: well under this hang guard
        assert wait_gone(int(pid_file.read_text()), 120), "the stage ran on without a driver"
    finally:
        for proc in (worker, scheduler):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
