"""`pipeline.track.log_metric` against `mlflow.log_metric`, and ingesting 100,000 points (issue 16).

- `log_metric` overhead: a fresh interpreter with `PIPELINE_TRACK_FILE` set calls
  `pipeline.track.log_metric(key, value, step=i)` `CALLS` times per round after a warm-up;
  per-call µs = round time / calls. The file is on the work directory's disk (the stage's
  `.pipeline/tmp/` in real use).
- MLflow: `mlflow.log_metric(key, value, step=i)` inside `mlflow.start_run()`, to its default
  store (`sqlite:///mlflow.db` in a fresh working directory), `MLFLOW_CALLS` calls per round.
  MLflow runs in its own venv (mlflow-skinny 3.18.0 + SQLAlchemy + Alembic, which its SQLite
  store needs), built once with uv from the package index and cached per user.
- Ingestion: a track file of 100,000 metric lines (100 keys x 1,000 steps) ingested into a
  fresh SQLite run store by `runs/tracking.py` in one transaction, as the runner does.

Each figure is the median of `--rounds` rounds:

    python bench/track.py [--rounds 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python bench/track.py` from anywhere: this checkout's pipeline

from pipeline.env.tools import pip_index_options  # noqa: E402
from pipeline.env.uvbin import uv_binary  # noqa: E402
from pipeline.runs.model import RunRow, RunStatus  # noqa: E402
from pipeline.runs.runstore import RunStore  # noqa: E402
from pipeline.runs.tracking import ingest_file  # noqa: E402

CALLS = 200_000
MLFLOW_CALLS = 300
POINTS = 100_000
MLFLOW_PINS = ("mlflow-skinny==3.18.0", "alembic")

_OURS = """
import os, sys, time
from pipeline import track
n = int(sys.argv[1])
for i in range(1000):
    track.log_metric("warm", 0.5, step=i)
start = time.perf_counter()
for i in range(n):
    track.log_metric("train/loss", 0.5 + i * 1e-6, step=i)
print((time.perf_counter() - start) / n * 1e6)
"""

_MLFLOW = """
import sys, time, mlflow
n = int(sys.argv[1])
with mlflow.start_run():
    for i in range(5):
        mlflow.log_metric("warm", 0.5, step=i)
    start = time.perf_counter()
    for i in range(n):
        mlflow.log_metric("train/loss", 0.5 + i * 1e-6, step=i)
    print((time.perf_counter() - start) / n * 1e6)
"""


def ours_us(work: Path) -> float:
    track = work / "track.jsonl"
    track.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PIPELINE_TRACK_FILE": str(track)}
    out = subprocess.run(
        [sys.executable, "-c", _OURS, str(CALLS)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def mlflow_us(python: Path, work: Path) -> float:
    folder = work / "mlflow-cwd"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [str(python), "-c", _MLFLOW, str(MLFLOW_CALLS)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def ingest_seconds(work: Path) -> float:
    track = work / "ingest.jsonl"
    if not track.exists():
        lines = (
            f'{{"type":"metric","key":"k{i % 100}","value":{i * 0.001!r},"step":{i // 100},'
            f'"ts":{1_700_000_000_000 + i}}}\n'
            for i in range(POINTS)
        )
        track.write_text("".join(lines))
    db = work / "runs.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    store = RunStore(f"sqlite:///{db}", db)
    run = RunRow(
        id="bench", kind="repro", command="bench", started_at=0.0, status=RunStatus.RUNNING
    )
    store.start(run, {})
    start = time.perf_counter()
    with store.batch() as writer:
        ingest_file(writer.conn, "bench", "train", track, work)
    seconds = time.perf_counter() - start
    store.close()
    return seconds


def mlflow_python() -> Path:
    """The cached venv with MLflow and its SQLite store's dependencies (built on first use)."""
    pins = [*MLFLOW_PINS, f"sqlalchemy=={importlib.metadata.version('sqlalchemy')}"]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeline-tests"
    digest = hashlib.sha256(json.dumps([sys.version, pins]).encode()).hexdigest()[:12]
    target = base / f"mlflow-sqlite-{digest}"
    if not (target / ".complete").exists():
        uv = uv_binary()
        if uv is None:
            raise SystemExit("uv is needed to build the MLflow venv")
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(target)], check=True)
        python = str(target / "bin" / "python")
        index = pip_index_options().uv_args()
        subprocess.run([uv, "pip", "install", "-q", "--python", python, *index, *pins], check=True)
        (target / ".complete").write_text("ok")
    return target / "bin" / "python"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    python = mlflow_python()
    samples: dict[str, list[float]] = {"ours_us": [], "mlflow_us": [], "ingest_s": []}
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-track-") as tmp:
        work = Path(tmp)
        for _ in range(args.rounds):
            samples["ours_us"].append(ours_us(work))
            samples["mlflow_us"].append(mlflow_us(python, work))
            samples["ingest_s"].append(ingest_seconds(work))
    medians = {k: statistics.median(v) for k, v in samples.items()}
    ratio = medians["mlflow_us"] / medians["ours_us"]
    print("| benchmark | median | budget | result |")
    print("|---|---|---|---|")
    ours, theirs = medians["ours_us"], medians["mlflow_us"]
    print(
        f"| `pipeline.track.log_metric` per call | {ours:.2f} µs | ≤ 5 µs | {_verdict(ours <= 5)} |"
    )
    print(f"| `mlflow.log_metric` per call (default SQLite store) | {theirs:.0f} µs | - | - |")
    print(f"| ratio mlflow / pipeline | {ratio:.0f}x | ≥ 100x | {_verdict(ratio >= 100)} |")
    ok = medians["ingest_s"] <= 2
    print(f"| ingest 100,000 points | {medians['ingest_s']:.2f} s | ≤ 2 s | {_verdict(ok)} |")
    if args.json:
        data: dict[str, Any] = {"samples": samples, "medians": medians, "ratio": ratio}
        args.json.write_text(json.dumps(data, indent=1))


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    main()
