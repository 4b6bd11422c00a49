"""The experiment tests' three-stage project and helpers to run and inspect it; no tests here.

Stage commands append their name to `executions.txt` next to the project, by absolute path: in
an isolated workspace `$PIPELINE_ROOT` is the workspace under `.pipeline/tmp/runs/<id>/`, so the
conftest `record()` snippet would write inside the project's state directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline import api
from pipeline.experiments.run import Experiment, RunOptions
from tests.conftest import Project, cli_env, ran

PARAMS_TEXT = """\
# Hyper-parameters (comments must survive --param)
train:
  lr: 0.1        # learning rate
  epochs: 3      # unused by any stage
tag: base
"""


def log(project: Project, name: str) -> str:
    """Append `name` to the execution log outside the project, wherever the stage runs."""
    return f"echo {name} >> {shlex.quote(str(project.execution_log))}"


def three_stages(project: Project, *, train_prefix: str = "") -> dict[str, Any]:
    """prepare (raw.txt → prepared.txt) → train (uses train.lr) → evaluate (metrics.json).

    The model's bytes and the score depend on train.lr.
    """
    return {
        "name": "three",
        "stages": {
            "prepare": {
                "cmd": "tr a-z A-Z < raw.txt > prepared.txt && " + log(project, "prepare"),
                "deps": ["raw.txt"],
                "outs": ["prepared.txt"],
            },
            "train": {
                "cmd": train_prefix
                + "{ cat prepared.txt; echo lr=${train.lr}; } > model.txt && "
                + log(project, "train"),
                "deps": ["prepared.txt"],
                "params": ["train.lr"],
                "outs": ["model.txt"],
            },
            "evaluate": {
                "cmd": "printf '{\"score\": %s}' \"$(sed -n 's/^lr=//p' model.txt)\""
                " > metrics.json && " + log(project, "evaluate"),
                "deps": ["model.txt"],
                "metrics": ["metrics.json"],
            },
        },
    }


def setup(project: Project, manifest: dict[str, Any] | None = None) -> Project:
    """The three-stage project, committed, reproduced once (lock, cache, runs.db) and committed
    again with its lock, with the execution log cleared."""
    project.write("raw.txt", "raw data\n")
    project.params(PARAMS_TEXT)
    project.manifest(manifest or three_stages(project), commit=False)
    project.commit(message="three stages")
    result = project.repro()
    assert ran(result) == ["prepare", "train", "evaluate"]
    project.commit(message="first results")
    project.clear_executions()
    return project


def run(project: Project, **options: Any) -> Experiment:
    defaults: dict[str, Any] = {"root": project.root, "jobs": 1}
    return api.run(RunOptions(**{**defaults, **options}))


def leftovers(project: Project) -> list[str]:
    runs = project.root / ".pipeline" / "tmp" / "runs"
    return sorted(os.listdir(runs)) if runs.exists() else []


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file outside .pipeline/ and .git/: content hash, mode and mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".pipeline", ".git")]
        for name in filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[path.relative_to(root).as_posix()] = (digest, st.st_mode, st.st_mtime_ns)
    return found


def point(experiment: Experiment, name: str) -> str:
    return next(p.run_id for p in experiment.points if p.point.name == name)


def _run_files(project: Project, run_id: str) -> list[Any]:
    from pipeline.runs.runstore import RunStore

    store = RunStore.for_project(project.root / ".pipeline")
    try:
        return store.run_files(run_id)
    finally:
        store.close()


def held_at_train(project: Project, barrier: Path) -> Project:
    """The three-stage project whose train stage, in an experiment, touches
    `barrier/started-<lr>` and then waits (≤ 30 s) for `barrier/go`."""
    b = shlex.quote(str(barrier))
    wait = (
        f"touch {b}/started-${{train.lr}} && i=0 && while [ ! -e {b}/go ]; do i=$((i+1)); "
        "if [ $i -gt 600 ]; then exit 9; fi; sleep 0.05; done && "
    )
    barrier.mkdir(exist_ok=True)
    (barrier / "go").touch()  # the setup's own repro passes
    setup(project, three_stages(project, train_prefix=wait))
    (barrier / "go").unlink()
    for started in barrier.iterdir():
        started.unlink()
    return project


def start_sweep(project: Project, barrier: Path, values: str) -> subprocess.Popen[bytes]:
    """`pipeline run --sweep train.lr=<values>` in its own process group, returned once every
    point's train stage has started (its workspace exists then)."""
    jobs = str(len(values.split(",")))
    command = [sys.executable, "-m", "pipeline", "-C", str(project.root), "run"]
    sweep = subprocess.Popen(
        [*command, "--sweep", f"train.lr={values}", "-j", jobs],
        cwd=project.root,
        env=cli_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wanted = {f"started-{v}" for v in values.split(",")}
    deadline = time.monotonic() + 60
    while not wanted <= set(os.listdir(barrier)):
        if sweep.poll() is not None or time.monotonic() > deadline:
            sweep.kill()
            raise AssertionError(f"the sweep never reached train: {sweep.communicate()[1]!r}")
        time.sleep(0.02)
    return sweep


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the tool first, then its stages (its process group); wait until none is left."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.stderr is not None:
        process.stderr.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError("stages of the killed sweep are still running")
