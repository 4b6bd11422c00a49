"""A project with many recorded runs, bulk-inserted straight into its SQLite run store.

Recording 10,000 runs through `pipeline run` would take an hour; the UI only reads the store,
so its tests and `bench/ui.py` fill the tables directly (the store's own schema, opened with
`RunStore.for_project`). Every run has params and metrics; every `HISTORY_EVERY`-th run logged
metric histories as `pipeline.track` would; the newest run is a full three-stage record with a
log in the cache and outputs whose lineage goes back to raw data; a model is registered twice.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from pipeline.core.hashing import digest_bytes
from pipeline.runs import schema
from pipeline.runs.registry import Registry
from pipeline.runs.runstore import RunStore
from pipeline.store.objects import ObjectStore

HISTORY_EVERY = 50  # runs with logged curves: 1 in 50
STEPS = 40
USERS = ("ana", "ben", "chloe", "dev")
MODELS = ("forest", "boosting", "linear")
WORDS = ("bold", "calm", "keen", "wise", "swift", "bright", "quiet", "brave")
ANIMALS = ("lark", "otter", "fox", "heron", "lynx", "wren", "seal", "yak")
SHOWCASE = "showcase"  # the name of the newest run, the one with stages

MANIFEST = """\
name: churn
stages:
  prepare:
    cmd: python src/prepare.py
    deps: [data/raw.csv, src/prepare.py]
    outs: [data/clean.csv]
  featurize:
    cmd: python src/featurize.py
    deps: [data/clean.csv]
    outs: [data/features.csv]
  train:
    cmd: python src/train.py
    deps: [data/features.csv, src/train.py]
    params: [train.lr, train.n_estimators]
    outs: [models/model.pkl]
  evaluate:
    cmd: python src/evaluate.py
    deps: [models/model.pkl, data/features.csv]
    metrics: [metrics/scores.json]
"""


def make_project(root: Path, runs: int) -> dict[str, Any]:
    """A git project at `root` with `runs` recorded runs; what the tests need to know of it."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "dvc.yaml").write_text(MANIFEST, encoding="utf-8")
    (root / "params.yaml").write_text("train:\n  lr: 0.1\n  n_estimators: 100\n", "utf-8")
    store = RunStore.for_project(root / ".pipeline")
    try:
        rng = random.Random(16)
        ids = _bulk(store, runs, rng)
        showcase = _showcase(store, root, ids[-1])
        _register(store, showcase)
    finally:
        store.close()
    with_history = [ids[i] for i in range(0, runs, HISTORY_EVERY)]
    return {"ids": ids, "with_history": with_history, "showcase": showcase["id"]}


def _bulk(store: RunStore, count: int, rng: random.Random) -> list[str]:
    start = time.time() - count * 90.0
    rows, params, metrics, points = [], [], [], []
    ids = []
    for i in range(count):
        run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(start + i * 90))}-{i:06x}"
        ids.append(run_id)
        rows.append(_run(run_id, i, start + i * 90, rng))
        lr = rng.choice((0.001, 0.003, 0.01, 0.03, 0.1, 0.3))
        trees = rng.choice((10, 50, 100, 200, 500))
        model = rng.choice(MODELS)
        for key, value in (("train.lr", lr), ("train.n_estimators", trees), ("model", model)):
            params.append({"run_id": run_id, "key": key, "value": json.dumps(value)})
        quality = 0.7 + 0.2 * rng.random() - abs(lr - 0.03)
        for key, value in (("accuracy", quality), ("f1", quality - 0.05), ("loss", 1 - quality)):
            metrics.append(
                {"run_id": run_id, "key": f"metrics/scores.json:{key}", "value": json.dumps(value)}
            )
        if i % HISTORY_EVERY == 0:
            points += _history(run_id, lr, start + i * 90, rng)
    with store.engine.begin() as conn:
        conn.execute(insert(schema.runs), rows)
        conn.execute(insert(schema.params), params)
        conn.execute(insert(schema.metrics), metrics)
        conn.execute(insert(schema.track_metrics), points)
    return ids


def _run(run_id: str, i: int, started: float, rng: random.Random) -> dict[str, Any]:
    status = "succeeded" if rng.random() > 0.06 else rng.choice(("failed", "interrupted"))
    return {
        "id": run_id,
        "name": f"{rng.choice(WORDS)}-{rng.choice(ANIMALS)}-{i:05d}",
        "parent_id": None,
        "kind": "run",
        "command": "pipeline run --param train.lr=...",
        "started_at": started,
        "ended_at": started + rng.uniform(5, 400),
        "status": status,
        "user": rng.choice(USERS),
        "host": "ci",
        "pid": None,
        "git_commit": f"{rng.getrandbits(160):040x}",
        "git_branch": "main",
        "git_dirty": False,
        "note": "stage train failed (exit 1)" if status == "failed" else None,
    }


def _history(run_id: str, lr: float, started: float, rng: random.Random) -> list[dict[str, Any]]:
    """Falling losses, as `pipeline.track.log_metric(..., step=)` would have logged them."""
    rows = []
    for step in range(STEPS):
        decay = 1.0 / (1.0 + lr * 30 * step)
        for key, value in (("train_loss", decay), ("val_loss", decay * 1.1 + 0.05)):
            noisy = value + rng.uniform(-0.02, 0.02)
            rows.append(
                {
                    "run_id": run_id,
                    "stage": "train",
                    "key": key,
                    "step": step,
                    "ts": started + step,
                    "seq": len(rows),
                    "value": noisy,
                }
            )
    return rows


def _showcase(store: RunStore, root: Path, last_id: str) -> dict[str, Any]:
    """A complete three-stage run (the newest): stages, reasons, packages, a log, lineage."""
    run_id = last_id[:-6] + "ffffff"
    started = time.time() - 30
    cache = ObjectStore(root / ".pipeline" / "cache")
    log = b"loading data/features.csv\nfitting 100 trees\nepoch 1 loss 0.52\nsaved model\n"
    log_hash = digest_bytes(log)
    cache.put_bytes(log, log_hash)
    files = {p: digest_bytes(p.encode()) for p in _FILES}
    for path, digest in files.items():  # the outputs are in the cache: nothing is missing
        cache.put_bytes(path.encode(), digest)
    row = _run(run_id, 99999, started, random.Random(1))
    row.update(name=SHOWCASE, status="succeeded", ended_at=started + 21, command="pipeline repro")
    with store.engine.begin() as conn:
        conn.execute(insert(schema.runs).values(row))
        conn.execute(
            insert(schema.params),
            [{"run_id": run_id, "key": "train.lr", "value": "0.03"}],
        )
        conn.execute(
            insert(schema.metrics),
            [{"run_id": run_id, "key": "metrics/scores.json:accuracy", "value": "0.91"}],
        )
        for k, (stage, outcome, deps, outs, took) in enumerate(_STAGES):
            conn.execute(
                insert(schema.stage_runs).values(
                    _stage(run_id, stage, outcome, (started + 3 * k, took), log_hash)
                )
            )
            conn.execute(
                insert(schema.artifacts),
                [_artifact(run_id, stage, "dep", p, files[p]) for p in deps]
                + [_artifact(run_id, stage, "out", p, files[p]) for p in outs],
            )
        conn.execute(
            insert(schema.track_metrics), _history(run_id, 0.03, started, random.Random(2))
        )
        conn.execute(
            insert(schema.track_tags),
            [{"run_id": run_id, "stage": "train", "key": "framework", "value": "scikit-learn"}],
        )
        conn.execute(
            insert(schema.track_artifacts),
            [
                {
                    "run_id": run_id,
                    "stage": "train",
                    "path": "plots/importance.png",
                    "hash": digest_bytes(b"png"),
                    "size": 48213,
                }
            ],
        )
    return {"id": run_id, "model_hash": files["models/model.pkl"]}


_FILES = ("data/raw.csv", "data/clean.csv", "data/features.csv", "models/model.pkl",
          "metrics/scores.json")  # fmt: skip
_STAGES = (
    ("prepare", "up to date", ["data/raw.csv"], ["data/clean.csv"], 0.0),
    ("featurize", "ran", ["data/clean.csv"], ["data/features.csv"], 2.5),
    ("train", "ran", ["data/features.csv"], ["models/model.pkl"], 12.0),
    ("evaluate", "ran", ["models/model.pkl", "data/features.csv"], ["metrics/scores.json"], 1.5),
)


def _stage(
    run_id: str, stage: str, outcome: str, when: tuple[float, float], log: str
) -> dict[str, Any]:
    started, took = when
    ran = outcome == "ran"
    reasons = {"featurize": ["dep data/clean.csv modified"], "train": ["param train.lr 0.1 → 0.03"]}
    return {
        "run_id": run_id,
        "stage": stage,
        "outcome": outcome,
        "fingerprint": digest_bytes(stage.encode()),
        "started_at": started if ran else None,
        "ended_at": started + took if ran else None,
        "exit_code": 0 if ran else None,
        "attempts": 1 if ran else None,
        "cmd": json.dumps(["python", f"src/{stage}.py"]),
        "reasons": json.dumps(reasons.get(stage, ["metrics/scores.json missing"] if ran else [])),
        "params": json.dumps({"train.lr": 0.03} if stage == "train" else {}),
        "env_name": "sklearn" if ran else None,
        "env_digest": None,
        "packages": json.dumps([["numpy", "2.1.3"], ["pandas", "2.2.3"], ["scikit-learn", "1.5.2"]])
        if ran
        else None,
        "log_hash": log if ran else None,
        "error": None,
    }


def _artifact(run_id: str, stage: str, role: str, path: str, digest: str) -> dict[str, Any]:
    return {"run_id": run_id, "stage": stage, "role": role, "path": path, "hash": digest,
            "size": 100, "nfiles": None}  # fmt: skip


def _register(store: RunStore, showcase: dict[str, Any]) -> None:
    registry = Registry(store)
    first = digest_bytes(b"an older model package")
    registry.add("churn-classifier", first, path="models/model.pkl", message="baseline")
    registry.add(
        "churn-classifier",
        showcase["model_hash"],
        path="models/model.pkl",
        run_id=showcase["id"],
        stage="train",
        message="lr 0.03",
    )
    registry.alias("churn-classifier", "champion", 2, "beats v1 on accuracy")
    registry.alias("churn-classifier", "baseline", 1)
