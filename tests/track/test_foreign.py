"""Stages that log with DVCLive or MLflow, and `runs export --mlflow` read back by MLflow.

Slow: the stage env installs `dvclive` and `mlflow-skinny` from the package index. The env
store lives in a per-user cache directory (not the test's tmp dir), keyed as always by the
spec's digest, so the env is built once and reused by later sessions; both stages share it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Project, cli_env
from tests.mlflowenv import MLFLOW_VERSION, MLflowUnavailable, mlflow_python

LIVE = """\
from dvclive import Live
with Live(save_dvc_exp=False, dvcyaml=None) as live:
    live.log_param("epochs", 3)
    for epoch in range(3):
        live.log_metric("train/loss", 1.0 / (epoch + 1))
        live.log_metric("acc", 0.5 + epoch / 10, plot=False)
        live.next_step()
open("live.txt", "w").write("done")
"""

MLF = """\
import mlflow
with mlflow.start_run():
    mlflow.log_param("lr", 0.01)
    mlflow.set_tag("team", "vision")
    for step in range(4):
        mlflow.log_metric("val_loss", 2.0 - step * 0.5, step=step)
open("mlf.txt", "w").write("done")
"""


@pytest.fixture(scope="module")
def env_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pipeline-tests" / "track-stage-envs"


def _json(project: Project, env: dict[str, str], *args: str) -> Any:
    done = project.cli(*args, "--json", env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_dvclive_and_mlflow_stages_are_ingested_and_exported(
    p: Project, env_cache: Path, tmp_path: Path
) -> None:
    env = cli_env(XDG_CACHE_HOME=str(env_cache))
    env.pop("MLFLOW_TRACKING_URI", None)
    p.write("python_env.yaml", f"dependencies:\n  - dvclive\n  - mlflow-skinny=={MLFLOW_VERSION}\n")
    p.write("live.py", LIVE)
    p.write("mlf.py", MLF)
    stage = {"deps": ["python_env.yaml"]}
    p.manifest(
        {
            "python_env": "python_env.yaml",
            "stages": {
                "live": {**stage, "cmd": "python live.py", "outs": ["live.txt", "dvclive"]},
                "mlf": {**stage, "cmd": "python mlf.py", "outs": ["mlf.txt"]},
            },
        }
    )
    done = p.cli("repro", env=env, timeout=900)
    assert done.returncode == 0, done.stderr + done.stdout
    shown = _json(p, env, "runs", "show", "latest")
    assert shown["metrics"]["train/loss"] == pytest.approx(1 / 3)
    assert shown["metrics"]["acc"] == pytest.approx(0.7)  # summary only (plot=False)
    assert shown["metrics"]["val_loss"] == 0.5
    assert shown["logged"]["params"] == {"epochs": 3, "lr": "0.01"}  # MLflow params are text
    assert shown["logged"]["tags"]["mlf"] == {"team": "vision"}
    assert shown["logged"]["metric_points"] == {"acc": 1, "train/loss": 3, "val_loss": 4}
    history = _json(p, env, "runs", "metrics", "latest", "val_loss")["metrics"][0]
    assert [pt[0] for pt in history["points"]] == [0, 1, 2, 3]
    _check_export(p, env, shown["id"], tmp_path / "mlruns")


def _check_export(p: Project, env: dict[str, str], run_id: str, mlruns: Path) -> None:
    """Export to a `file:` store and read it back with MLflow's own client."""
    exported = _json(p, env, "runs", "export", "--mlflow", mlruns.as_uri())
    assert [e["run"] for e in exported] == [run_id]
    assert _json(p, env, "runs", "export", "--mlflow", mlruns.as_uri()) == []  # done before
    try:
        python = mlflow_python()
    except MLflowUnavailable as exc:
        pytest.skip(str(exc))
    read = (
        "import json, sys\nfrom mlflow import MlflowClient\n"
        "c = MlflowClient(sys.argv[1])\n"
        "e = c.get_experiment_by_name('pipeline')\n"
        "r = c.search_runs([e.experiment_id])[0]\n"
        "h = c.get_metric_history(r.info.run_id, 'val_loss')\n"
        "print(json.dumps({'status': r.info.status, 'params': r.data.params,"
        " 'tag': r.data.tags['pipeline.run_id'], 'steps': [m.step for m in h]}))\n"
    )
    out = subprocess.run(
        [str(python), "-c", read, mlruns.as_uri()],
        env={**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["status"] == "FINISHED"
    assert found["tag"] == run_id
    assert found["params"]["lr"] == "0.01" and found["params"]["epochs"] == "3"
    assert found["steps"] == [0, 1, 2, 3]
