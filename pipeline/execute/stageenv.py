"""The environment variables every stage command runs with, wherever it runs.

The local executor and the self-contained stage job (`stagejob.py`) build them alike:
PIPELINE_ROOT and PIPELINE_STAGE, PIPELINE_RUN_ID and PIPELINE_TRACK_FILE (values logged from
code), a per-stage MLflow file store unless the user set a tracking URI, and, last on
PYTHONPATH, a directory holding only `pipeline` (so stage code can `import pipeline.models` in
its own env). None of it enters a fingerprint.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.env.provision import activate
from pipeline.env.resolve import ResolvedEnv
from pipeline.env.stagepath import stage_pythonpath
from pipeline.runs.trackimport import foreign_lines


def base_environ(root: Path, stage: str, run_id: str, track_file: Path) -> dict[str, str]:
    """This process's variables with the stage's own, its track file emptied first."""
    base = {**os.environ, "PIPELINE_ROOT": str(root), "PIPELINE_STAGE": stage}
    base.update(track_environ(run_id, track_file))
    return base


def track_environ(run_id: str, track_file: Path) -> dict[str, str]:
    """PIPELINE_RUN_ID/TRACK_FILE, and a per-stage MLflow file store unless the user set a
    tracking URI. Each attempt starts with an empty track file: a retry's values are the
    stage's values."""
    track_file.parent.mkdir(parents=True, exist_ok=True)
    track_file.unlink(missing_ok=True)
    shutil.rmtree(mlruns(track_file), ignore_errors=True)
    found = {"PIPELINE_RUN_ID": run_id, "PIPELINE_TRACK_FILE": str(track_file)}
    if "MLFLOW_TRACKING_URI" not in os.environ:
        found["MLFLOW_TRACKING_URI"] = mlruns(track_file).as_uri()
        found["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses file stores without
    return found


def with_stagepath(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with the `pipeline`-only directory last on PYTHONPATH (the user's first)."""
    found = dict(environ)
    try:
        extra = str(stage_pythonpath())
    except OSError:  # an unwritable cache costs `import pipeline.models`, not the stage
        return found
    paths = [p for p in found.get("PYTHONPATH", "").split(os.pathsep) if p]
    found["PYTHONPATH"] = os.pathsep.join([*paths, extra])
    return found


def mlruns(track_file: Path) -> Path:
    """The per-stage MLflow file store next to a track file."""
    return track_file.with_suffix(".mlruns")


def env_environ(base: Mapping[str, str], built: Any, env: ResolvedEnv) -> dict[str, str]:
    """`base` inside the built env `built` of `env`: PIPELINE_ENV_KIND/LOCK say what it was
    built from (for a model package), and `pipeline` is importable last on PYTHONPATH."""
    environ = with_stagepath(activate(dict(base), built))
    environ["PIPELINE_ENV_KIND"] = str(env.kind)
    if env.lock is not None:
        environ["PIPELINE_ENV_LOCK"] = str(env.lock.absolute())
    return environ


def foreign_values(cwd: Path, track_file: Path, since: float, *, dvclive: bool) -> str:
    """What the stage logged with DVCLive or MLflow since `since`, as track-file lines (the
    per-stage MLflow store unless the user chose a tracking URI). The files are the stage's
    own: whatever is in them costs their values, never the stage."""
    store = None if "MLFLOW_TRACKING_URI" in os.environ else mlruns(track_file)
    try:
        return "".join(foreign_lines(cwd, store, since, dvclive=dvclive))
    except (OSError, ValueError, OverflowError, RecursionError):
        return ""
