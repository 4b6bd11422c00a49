"""A venv with MLflow in it, for the MLflow compatibility test and `bench/serve.py`.

MLflow is not a dependency of `pipeline`, and must not be installed next to it: it would hide
what a model package needs. So MLflow gets its own venv, built with uv from the package index
with the model libraries pinned to the versions of the tool's env (the package's requirements
then match what MLflow loads it with). The venv is built once and kept across runs in a per-user
cache directory keyed by every pinned version, so a test session pays only for the first build;
a file lock makes parallel workers (`-n 4`) wait for one builder rather than race.

`mlflow_python()` returns the venv's interpreter, or raises `MLflowUnavailable` with the reason
(no uv, no index); `bench/serve.py` imports this file by path, like `bench/envbench.py` does with
`tests/env/envkit.py`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

#: The MLflow release the compatibility test and the benchmark run against. `mlflow-skinny` has
#: `mlflow.pyfunc`, `mlflow.sklearn` and `mlflow models serve` (FastAPI on uvicorn) without the
#: tracking server's UI and database dependencies.
MLFLOW_VERSION = "3.18.0"
MLFLOW_DIST = "mlflow-skinny"
#: Libraries the model package needs, pinned to the tool env's versions.
MODEL_DISTS = ("scikit-learn", "skops", "pandas", "numpy", "scipy")
BUILD_TIMEOUT = 900.0


class MLflowUnavailable(RuntimeError):
    """The MLflow venv cannot be built here (no uv, no package index); the message says why."""


def pins() -> list[str]:
    """`name==version` for MLflow and every model library, as installed in the tool's env."""
    out = [f"{MLFLOW_DIST}=={MLFLOW_VERSION}"]
    for dist in MODEL_DISTS:
        try:
            out.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue  # not in the tool env: let MLflow's resolution choose
    return out


def venv_dir() -> Path:
    """The cached venv for this interpreter and these pins (`$XDG_CACHE_HOME` or ~/.cache)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = json.dumps([sys.version, sys.executable, pins()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return base / "pipeline-tests" / f"mlflow-{MLFLOW_VERSION}-{digest}"


def mlflow_python() -> Path:
    """The interpreter of the MLflow venv, built first if the cache does not hold it yet."""
    target = venv_dir()
    python = target / "bin" / "python"
    done = target / ".complete"
    if done.exists():
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f"{target.name}.lock"):
        if not done.exists():  # another worker may have built it while this one waited
            seconds = _build(target)
            done.write_text(json.dumps({"pins": pins(), "build_seconds": seconds}))
    return python


def build_seconds() -> float | None:
    """How long the cached venv took to build (recorded by the build), or None."""
    done = venv_dir() / ".complete"
    if not done.exists():
        return None
    value = json.loads(done.read_text()).get("build_seconds")
    return float(value) if value is not None else None


def _build(target: Path) -> float:
    """Create the venv at `target` with uv (from pip's index settings); its build time."""
    from pipeline.env.tools import pip_index_options
    from pipeline.env.uvbin import uv_binary

    uv = uv_binary()
    if uv is None:
        raise MLflowUnavailable("uv cannot run here, so the MLflow venv cannot be built")
    shutil.rmtree(target, ignore_errors=True)  # a half-built venv from an interrupted run
    start = time.perf_counter()
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(target)])
    index = pip_index_options().uv_args()
    python = str(target / "bin" / "python")
    _run([uv, "pip", "install", "--quiet", "--python", python, *index, *pins()])
    return time.perf_counter() - start


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=BUILD_TIMEOUT)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise MLflowUnavailable(f"{' '.join(argv[:3])} failed: " + " | ".join(tail))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` for the block: one builder at a time across processes."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
