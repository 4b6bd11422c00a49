"""What a worker trusts in a stage job: the executable flags of the source tree survive the
deps placed over it, no path in a job reaches outside the worker's scratch directory or the
shared workspace, and a job whose fields have the wrong types is one `DataError`, never an
internal error.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline import api
from pipeline.core.config import RemoteSettings
from pipeline.errors import DataError
from pipeline.execute.dispatch import InProcessBackend
from pipeline.execute.options import ReproOptions
from pipeline.execute.stagejob import JobEnv, JobPath, StageJob, run_job
from tests.conftest import Project
from tests.servers import RemoteSpec, configure


def test_an_executable_dep_stays_executable_on_the_worker(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    project = make_project("script")
    script = project.write("run.sh", "#!/bin/sh\necho ran > o.txt\n")
    script.chmod(0o755)  # git records the bit; the worker must honour it
    stage = {"cmd": "./run.sh", "deps": ["run.sh"], "outs": ["o.txt"]}
    project.manifest({"name": "x", "stages": {"s": stage}}, commit=False)
    configure(project.root, local_remote)
    project.commit(message="x")
    backend = InProcessBackend(tmp_path / "worker")
    failed = api.repro(ReproOptions(root=project.root), backend=backend).failed
    assert failed is None, failed.error
    assert project.read("o.txt") == "ran\n"


HASH = "xxh3_128:" + "0" * 32


def moved(**fields: Any) -> StageJob:
    """A job that moves its data through a remote (which nothing reaches: checked first)."""
    base: dict[str, Any] = {
        "fingerprint": HASH, "stage": "s", "cmd": ("touch ran",), "wdir": ".", "deps": (),
        "outs": (), "source": JobPath(".", HASH, 0, 0, True),
        "remote": RemoteSettings("origin", "/nonexistent/remote"),
    }  # fmt: skip
    return StageJob(**{**base, **fields})


def env_with(path: str) -> JobEnv:
    files = (JobPath(path, HASH, 1, 1),)
    return JobEnv("e", "requirements", "reqs.txt", None, HASH, "uv", "conda", files)


@pytest.mark.parametrize("escape", ["x/../../../../../victim", "ABSOLUTE"])
def test_an_env_file_outside_the_scratch_directory_is_refused(tmp_path: Path, escape: str) -> None:
    victim = tmp_path / "victim"  # where `x/../../../../../victim` lands from the workspace
    victim.write_text("mine\n")
    path = str(victim) if escape == "ABSOLUTE" else escape
    with pytest.raises(DataError, match=r"env file .*victim.* outside"):
        run_job(moved(env=env_with(path)), tmp_path / "w")
    assert victim.read_text() == "mine\n"
    assert not (tmp_path / "w" / "jobs").exists()  # refused before anything was written


def test_an_env_file_beside_the_project_is_still_placed_above_it() -> None:
    assert env_with("../envs/reqs.txt").depth == 1  # the case the `up/` folders are for


@pytest.mark.parametrize("wdir", ["../..", "/tmp", "sub/../.."])
def test_a_wdir_outside_the_workspace_is_refused(tmp_path: Path, wdir: str) -> None:
    with pytest.raises(DataError, match=r"wdir .* outside"):
        run_job(moved(wdir=wdir), tmp_path / "w")
    assert not (tmp_path / "w" / "jobs").exists()


def shared(tmp_path: Path, **fields: Any) -> StageJob:
    """A job on a shared filesystem, in the project at `tmp_path/a/proj`."""
    workspace = tmp_path / "a" / "proj"
    workspace.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {
        "fingerprint": HASH, "stage": "s", "cmd": ("touch ran",), "wdir": ".", "deps": (),
        "outs": (), "source": None, "remote": None, "workspace": str(workspace),
        "log_file": str(workspace / ".pipeline" / "logs" / "s.log"),
    }  # fmt: skip
    return StageJob(**{**base, **fields})


@pytest.mark.parametrize("where", ["elsewhere.log", "a/proj/../s.log"])
def test_a_log_file_outside_the_shared_workspace_is_refused(tmp_path: Path, where: str) -> None:
    log = os.path.join(tmp_path, where)
    with pytest.raises(DataError, match=r"log_file .* outside"):
        run_job(shared(tmp_path, log_file=log), tmp_path / "w")
    assert not Path(os.path.normpath(log)).exists()
    assert not (tmp_path / "a" / "proj" / "ran").exists()


def test_a_wdir_outside_the_shared_workspace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"wdir .* outside"):
        run_job(shared(tmp_path, wdir="../.."), tmp_path / "w")
    assert not (tmp_path / "ran").exists()


def test_a_shared_job_inside_its_workspace_runs(tmp_path: Path) -> None:
    (tmp_path / "a" / "proj" / "sub").mkdir(parents=True)
    assert run_job(shared(tmp_path, wdir="sub"), tmp_path / "w").succeeded
    assert (tmp_path / "a" / "proj" / "sub" / "ran").is_file()


def good() -> dict[str, Any]:
    """A well-formed job, as JSON, with every nested object present."""
    files = [{"path": "reqs.txt", "hash": HASH, "size": 1, "nfiles": 1, "isdir": False}]
    job = moved(
        deps=(JobPath("a", HASH, 1, 1),),
        env=JobEnv("e", "requirements", "reqs.txt", None, HASH, "uv", "conda"),
        timeout=10,
    )
    data: dict[str, Any] = json.loads(job.to_json())
    data["env"]["files"] = files
    return data


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to a good job: `path` (`remote.url`, `deps.0.size`) set to `value`."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value

    return change


def _drop_place(data: dict[str, Any]) -> None:
    data["source"] = data["remote"] = None  # and no `workspace` either


def _workspace_without_log(data: dict[str, Any]) -> None:
    data["workspace"] = "/somewhere"


DAMAGED = [
    (_set("cmd", "echo hi"), "cmd must be a list"),
    (_set("cmd", ["echo", 1]), r"cmd\[1\] must be a string"),
    (_set("stage", 5), "stage must be a string"),
    (_set("fingerprint", None), "fingerprint must be a string"),
    (_set("timeout", "10"), "timeout must be a number or null"),
    (_set("timeout", True), "timeout must be a number or null"),
    (_set("dvclive", "yes"), "dvclive must be true or false"),
    (_set("outs", "o.txt"), "outs must be a list"),
    (_set("workspace", 3), "workspace must be a string or null"),
    (_set("remote", "origin"), "remote must be an object or null"),
    (_set("remote.url", 5), r"remote\.url must be a string"),
    (_set("remote.options", []), r"remote\.options must be an object"),
    (_set("deps", {}), "deps must be a list"),
    (_set("deps.0", "a"), r"deps\[0\] must be an object"),
    (_set("deps.0.size", "1"), r"deps\[0\]\.size must be a whole number"),
    (_set("deps.0.isdir", 0), r"deps\[0\]\.isdir must be true or false"),
    (_set("source.hash", 1), r"source\.hash must be a string"),
    (_set("env.kind", "nix"), r"env\.kind must be one of"),
    (_set("env.kind", ["x"]), r"env\.kind must be one of"),
    (_set("env.files.0.path", None), r"env\.files\[0\]\.path must be a string"),
    (_set("colour", "red"), "colour is not a field of a stage job"),
    (_set("remote.colour", "red"), r"remote\.colour is not a field of a stage job"),
    (_drop_place, "remote and source must be set"),
    (_workspace_without_log, "log_file must be set"),
]
IDS = [message.split(" ")[0].replace("\\", "") for _, message in DAMAGED]


def damaged(change: Callable[[dict[str, Any]], None]) -> str:
    data = good()
    change(data)
    return json.dumps(data)


def test_the_good_job_is_a_job() -> None:
    job = StageJob.from_json(json.dumps(good()))
    assert job.timeout == 10 and job.env is not None and job.env.files[0].path == "reqs.txt"


@pytest.mark.parametrize(("change", "message"), DAMAGED, ids=IDS)
def test_a_badly_typed_job_is_a_damaged_job(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(DataError, match=f"^a damaged stage job: {message}"):
        StageJob.from_json(damaged(change))


@pytest.mark.parametrize(("change", "message"), DAMAGED, ids=IDS)
def test_exec_stage_refuses_a_badly_typed_job_in_one_line(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    job = tmp_path / "job.json"
    job.write_text(damaged(change))
    argv = [sys.executable, "-m", "pipeline", "exec-stage", str(job), "--home", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 4, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"error: {job}: a damaged stage job: ")
    assert re.search(message, first)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
