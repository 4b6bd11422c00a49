"""Stages as self-contained stage jobs, through the in-process backend: each job runs in a
scratch directory of its own and sees the project only through the remote (a directory here).

Two identical projects (git clones) are reproduced, one locally and one through stage jobs:
their outputs are byte-identical, and their lock files and run-cache entries equal; a failing
command fails its stage (not retried unless `retries:` says so); up-to-date stages never leave
the driver.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline import api
from pipeline.core.config import RemoteSettings
from pipeline.execute.dispatch import InProcessBackend, source_files
from pipeline.execute.options import ReproOptions
from pipeline.execute.scheduler import Outcome
from pipeline.execute.stagejob import JobPath, StageJob
from pipeline.load.project import load_project
from pipeline.store.objects import ObjectStore
from pipeline.store.runcache import RunCache
from tests.conftest import Project, outcomes
from tests.servers import RemoteSpec, configure

SCRIPT = """import sys, pathlib
src, dst, tag = sys.argv[1:]
text = pathlib.Path(src).read_text() if src != "-" else "seed\\n"
pathlib.Path(dst).parent.mkdir(parents=True, exist_ok=True)
pathlib.Path(dst).write_text(text + tag + "\\n")
"""


def diamond() -> dict:
    """a → b, a → c, (b, c) → d; c writes a directory; the stages use a script from git."""
    return {
        "name": "diamond",
        "stages": {
            "a": {"cmd": "python3 tool.py - a.txt ${tag}", "deps": ["tool.py"], "params": ["tag"],
                  "outs": ["a.txt"]},
            "b": {"cmd": "python3 tool.py a.txt b.txt b", "deps": ["a.txt", "tool.py"],
                  "outs": ["b.txt"]},
            "c": {"cmd": "mkdir -p cdir && python3 tool.py a.txt cdir/one.txt c && "
                         "cp cdir/one.txt cdir/two.txt && echo '{\"n\": 3}' > metrics.json",
                  "deps": ["a.txt"], "outs": ["cdir", {"metrics.json": {"cache": False}}]},
            "d": {"cmd": "cat b.txt cdir/one.txt cdir/two.txt > d.txt", "deps": ["b.txt", "cdir"],
                  "outs": ["d.txt"]},
        },
    }  # fmt: skip


def build(make_project: Callable[..., Project], name: str, spec: RemoteSpec) -> Project:
    project = make_project(name)
    project.write("tool.py", SCRIPT)
    project.params({"tag": "x"})
    project.manifest(diamond(), commit=False)
    configure(project.root, spec)
    project.commit(message="diamond")
    return project


def remote_repro(project: Project, home: Path) -> api.RunResult:
    return api.repro(ReproOptions(root=project.root), backend=InProcessBackend(home))


def outputs(project: Project) -> dict[str, bytes]:
    names = ["a.txt", "b.txt", "cdir/one.txt", "cdir/two.txt", "metrics.json", "d.txt"]
    return {n: (project.root / n).read_bytes() for n in names}


def entries(project: Project) -> dict[str, object]:
    """Each locked stage's run-cache entry (every one must be there)."""
    runs = RunCache(ObjectStore(project.root / ".pipeline" / "cache"))
    found = {}
    for name, stage in project.lock()["stages"].items():
        entry = runs.get(stage["fingerprint"])
        assert entry is not None, f"no run-cache entry for {name}"
        found[name] = (entry.fingerprint, entry.deps, entry.outs)
    return found


def records(project: Project) -> list[dict[str, object]]:
    """The latest run's stage records, without what differs between machines and moments."""
    [latest, *_] = api.runs(project.root)
    differ = {"started_at", "ended_at", "host"}
    stages = api.run_detail(project.root, latest.id).stages
    rows = [{k: v for k, v in vars(s).items() if k not in differ} for s in stages]
    return sorted(rows, key=lambda row: str(row["stage"]))  # in the order they ended


@pytest.fixture
def pair(make_project: Callable[..., Project], local_remote: RemoteSpec) -> tuple[Project, Project]:
    return build(make_project, "here", local_remote), build(make_project, "there", local_remote)


def test_a_diamond_through_stage_jobs_equals_a_local_repro(
    pair: tuple[Project, Project], tmp_path: Path
) -> None:
    here, there = pair
    assert here.repro().failed is None
    result = remote_repro(there, tmp_path / "worker")
    assert result.failed is None
    assert set(outcomes(result).values()) == {Outcome.RAN}
    assert outputs(there) == outputs(here)
    assert there.lock() == here.lock()
    assert entries(there) == entries(here)
    assert records(there) == records(here)  # apart from host, timings and ids
    assert len(records(here)) == 4
    assert (there.root / ".pipeline" / "logs" / "d.log").is_file()
    node = api.lineage(there.root, str(there.root / "d.txt"))
    assert node.stage is not None and node.stage.host == socket.gethostname()  # the worker's
    assert node.to_json()["host"] == socket.gethostname()
    table = api.compare(there.root)
    assert table.on_cluster and table.hosts[result.run_id] == (socket.gethostname(),)
    assert "hosts" in there.cli("compare").stdout.splitlines()[0]
    assert "hosts" not in here.cli("compare").stdout.splitlines()[0]  # a local run: no column


def test_up_to_date_stages_never_leave_the_driver(
    pair: tuple[Project, Project], tmp_path: Path
) -> None:
    _, there = pair
    home = tmp_path / "worker"
    assert remote_repro(there, home).failed is None
    again = remote_repro(there, home)
    assert set(outcomes(again).values()) == {Outcome.UP_TO_DATE}
    there.params({"tag": "y"})
    third = remote_repro(there, home)
    assert outcomes(third) == dict.fromkeys("abcd", Outcome.RAN)
    assert there.read("d.txt").startswith("seed\ny\n")


def test_a_failing_command_fails_its_stage_once(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    project = make_project("failing")
    count = tmp_path / "count"
    project.manifest(
        {"name": "f", "stages": {"bad": {"cmd": f"echo run >> {count}; echo oops; exit 3",
                                         "outs": ["never.txt"]}}},
        commit=False,
    )  # fmt: skip
    configure(project.root, local_remote)
    project.commit(message="f")
    result = remote_repro(project, tmp_path / "worker")
    failed = result.failed
    assert failed is not None and failed.exit_code == 3
    assert failed.error is not None and "exit code 3" in failed.error.message
    assert count.read_text() == "run\n"  # not retried
    assert "oops" in project.read(".pipeline/logs/bad.log")
    assert not (project.root / "pipeline.lock").exists()


def test_retries_keep_their_meaning(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    project = make_project("flaky")
    count = tmp_path / "count"
    cmd = f"echo run >> {count}; [ $(wc -l < {count}) -ge 2 ] && echo ok > out.txt"
    project.manifest(
        {"name": "r", "stages": {"flaky": {"cmd": cmd, "outs": ["out.txt"], "retries": 1}}},
        commit=False,
    )
    configure(project.root, local_remote)
    project.commit(message="r")
    result = remote_repro(project, tmp_path / "worker")
    assert result.failed is None and result.results[0].attempts == 2
    assert project.read("out.txt") == "ok\n"


def test_the_source_shipped_is_what_git_lists_minus_outs(
    pair: tuple[Project, Project],
) -> None:
    here, _ = pair
    here.write("untracked.py", "x = 1\n")
    here.write(".gitignore", "ignored.txt\n")
    here.write("ignored.txt", "no\n")
    here.write("a.txt", "an out, written by hand\n")
    files = source_files(load_project(here.root))
    assert {"tool.py", "MLproject", "params.yaml", "untracked.py", ".gitignore"} <= set(files)
    assert "ignored.txt" not in files and "a.txt" not in files
    assert not any(f.startswith(".pipeline/") for f in files)


def test_a_stage_job_is_plain_json() -> None:
    job = StageJob(
        fingerprint="xxh3_128:00",
        stage="s",
        cmd=("echo",),
        wdir=".",
        deps=(JobPath("a", "xxh3_128:01", 1, 1),),
        outs=("b",),
        source=JobPath(".", "xxh3_128:02", 9, 2, True),
        remote=RemoteSettings("origin", "/r", {"jobs": 2}),
    )
    text = job.to_json()
    assert json.loads(text)["format"] == "pipeline-stage-job 1"
    assert StageJob.from_json(text) == job


def test_without_git_every_file_is_shipped(tmp_path: Path, local_remote: RemoteSpec) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "words.txt").write_text("hello\n")
    manifest = "name: p\nstages:\n  s:\n    cmd: cat words.txt > o.txt\n    outs: [o.txt]\n"
    (root / "MLproject").write_text(manifest)
    configure(root, local_remote)
    result = api.repro(ReproOptions(root=root), backend=InProcessBackend(tmp_path / "w"))
    assert result.failed is None
    assert (root / "o.txt").read_text() == "hello\n"


def test_raw_data_git_ignores_reaches_the_worker_as_a_dep(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    project = make_project("raw")
    project.write(".gitignore", "data/\n")
    project.write("data/raw.csv", "a,b\n1,2\n")
    project.manifest(
        {"name": "raw", "stages": {"count": {"cmd": "wc -l < data/raw.csv > n.txt",
                                             "deps": ["data"], "outs": ["n.txt"]}}},
        commit=False,
    )  # fmt: skip
    configure(project.root, local_remote)
    project.commit(message="raw")
    result = remote_repro(project, tmp_path / "worker")
    assert result.failed is None
    assert project.read("n.txt").strip() == "2"


@pytest.mark.usefixtures("xdg_cache_home")
def test_an_env_declared_outside_the_project_is_built_on_the_worker(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    """`../envs/reqs.txt` (a shared envs folder, as the quick start has): shipped by hash and
    placed beside the scratch workspace, so the worker resolves the same env."""

    def build_env_project(name: str) -> Project:
        project = make_project(name)
        (project.root.parent / "envs").mkdir()
        (project.root.parent / "envs" / "reqs.txt").write_text("# no packages\n")
        project.manifest(
            {"name": "e", "environments": {"e": {"requirements": "../envs/reqs.txt"}},
             "stages": {"s": {"cmd": 'echo "$VIRTUAL_ENV" > venv.txt', "env": "e",
                              "outs": ["venv.txt"]}}},
            commit=False,
        )  # fmt: skip
        configure(project.root, local_remote)
        project.commit(message=name)
        return project

    here, there = build_env_project("here"), build_env_project("there")
    assert here.repro().failed is None
    result = remote_repro(there, tmp_path / "worker")
    failed = result.failed
    assert failed is None, failed.error
    assert there.lock() == here.lock()
    assert there.read("venv.txt").strip() == here.read("venv.txt").strip() != ""


def test_a_worker_is_told_the_remote_by_absolute_path_and_without_secrets(tmp_path: Path) -> None:
    from pipeline.execute.dispatch import _portable

    told = _portable(RemoteSettings("origin", "../store", {"jobs": 2}), tmp_path / "proj")
    assert (told.url, told.options) == (str(tmp_path / "store"), {"jobs": 2})
    s3 = RemoteSettings("origin", "s3://b/p", {"endpoint_url": "http://x", "access_key_id": "k"})
    assert _portable(s3, tmp_path).options == {"endpoint_url": "http://x"}


def test_timeout_keeps_its_meaning(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    project = make_project("slow")
    stage = {"cmd": "touch out.txt && exec sleep 60", "outs": ["out.txt"], "timeout": 1}
    project.manifest({"name": "t", "stages": {"slow": stage}}, commit=False)
    configure(project.root, local_remote)
    project.commit(message="t")
    failed = remote_repro(project, tmp_path / "worker").failed
    assert failed is not None and failed.error is not None
    assert "timed out" in failed.error.message
    assert not (project.root / "out.txt").exists()  # a timed-out stage's outs are not taken
