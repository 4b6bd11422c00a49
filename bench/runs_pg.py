"""`pipeline runs` over 10,000 runs in a PostgreSQL run store (issue 16: ≤ 0.5 s).

A throwaway server is started the way the tests start theirs (tests/pg.py: Debian's binaries,
a cluster in /tmp, a unix socket only), a project points at it with `PIPELINE_RUNS_URL`, and
10,000 runs are bulk-inserted straight into the store (each with two params, a metric, three
stage records and an output, like a small sweep point). Then, alternating, each round times:

- `pipeline runs` (the newest 20, the default), the target;
- `pipeline runs --all --json` (all 10,000 rows), for scale;
- `pipeline runs` against the same 10,000 runs in SQLite, the embedded default, as baseline.

Every timing is the whole CLI process (interpreter start-up included). Medians are printed as
a markdown table:

    python bench/runs_pg.py [--runs 10000] [--rounds 7] [--json FILE]
"""

from __future__ import annotations

import argparse
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.pg import PgServer, _owner, _start, _stop, pg_bin  # noqa: E402

BUDGET = 0.5  # seconds, `pipeline runs` over 10,000 runs in PostgreSQL


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write samples and medians here")
    args = parser.parse_args()
    bindir = pg_bin()
    if bindir is None:
        print("PostgreSQL is not installed (Debian's postgresql package)", file=sys.stderr)
        return 2
    owner = _owner()
    root = Path(tempfile.mkdtemp(prefix="pipeline-bench-pg-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = _start(bindir, root, owner)
    try:
        results = _bench(server, root, args.runs, args.rounds)
    finally:
        _stop(server)
        shutil.rmtree(root, ignore_errors=True)
    _report(results, args.runs)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _bench(server: PgServer, root: Path, count: int, rounds: int) -> dict[str, Any]:
    url = server.create_database()
    project = _project(root / "proj")
    sqlite_project = _project(root / "proj-sqlite")
    t0 = time.perf_counter()
    _fill(url, None, count)
    _fill(None, sqlite_project / ".pipeline", count)
    print(f"inserted {count} runs twice in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    pg_env = {**os.environ, "PIPELINE_RUNS_URL": url}
    plain = {k: v for k, v in os.environ.items() if k != "PIPELINE_RUNS_URL"}
    cases = {
        "runs_pg_10k": (project, ["runs"], pg_env),
        "runs_pg_10k_all_json": (project, ["runs", "--all", "--json"], pg_env),
        "runs_sqlite_10k": (sqlite_project, ["runs"], plain),
    }
    for name, (where, argv, env) in cases.items():  # warm-up, and proof the runs are there
        out = _pipeline(where, argv, env)
        assert "r09999" in out.decode() or count < 10_000, f"{name}: {out[:300]!r}"
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (where, argv, env) in cases.items():
            start = time.perf_counter()
            _pipeline(where, argv, env)
            samples[name].append(time.perf_counter() - start)
    return {name: {"samples": s, "median": statistics.median(s)} for name, s in samples.items()}


def _project(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    (path / "MLproject").write_text("name: bench\nstages:\n  train:\n    cmd: 'true'\n")
    return path


def _fill(url: str | None, state_dir: Path | None, count: int) -> None:
    """`count` runs with params, metrics, stages and outputs, inserted in bulk."""
    from sqlalchemy import insert  # noqa: PLC0415

    from pipeline.runs import schema  # noqa: PLC0415
    from pipeline.runs.runstore import RunStore, server_url  # noqa: PLC0415

    store = RunStore(server_url(url)) if url else RunStore.for_project(state_dir)  # type: ignore[arg-type]
    rows = _rows(count)
    with store.engine.begin() as conn:
        for table, values in rows.items():
            conn.execute(insert(getattr(schema, table)), values)
    store.close()


def _rows(count: int) -> dict[str, list[dict[str, Any]]]:
    runs, params, metrics, stages, artifacts = [], [], [], [], []
    for i in range(count):
        run_id = f"r{i:05d}"
        runs.append(
            {"id": run_id, "name": f"lr={i}", "parent_id": None, "kind": "run",
             "command": "pipeline run --param train.lr=0.1", "started_at": 1.7e9 + i,
             "ended_at": 1.7e9 + i + 5, "status": "succeeded", "user": "ann", "host": "ci",
             "pid": 1, "git_commit": "0" * 40, "git_branch": "main", "git_dirty": False,
             "note": None}
        )  # fmt: skip
        params += [{"run_id": run_id, "key": k, "value": json.dumps(i)} for k in ("lr", "seed")]
        metrics.append({"run_id": run_id, "key": "metrics.json:score", "value": "0.5"})
        for stage in ("prepare", "train", "evaluate"):
            stages.append(
                {"run_id": run_id, "stage": stage, "outcome": "ran", "fingerprint": "f",
                 "started_at": 1.7e9 + i, "ended_at": 1.7e9 + i + 1, "exit_code": 0,
                 "attempts": 1, "cmd": "[]", "reasons": "[]", "params": "{}"}
            )  # fmt: skip
        artifacts.append(
            {"run_id": run_id, "stage": "train", "role": "out", "path": "model.pkl",
             "hash": f"xxh3_128:{i:032x}", "size": 10, "nfiles": 1}
        )  # fmt: skip
    return {"runs": runs, "params": params, "metrics": metrics, "stage_runs": stages,
            "artifacts": artifacts}  # fmt: skip


def _pipeline(project: Path, argv: list[str], env: dict[str, str]) -> bytes:
    command = [sys.executable, "-m", "pipeline", "-C", str(project), *argv]
    return subprocess.run(command, env=env, check=True, capture_output=True).stdout


def _report(results: dict[str, Any], count: int) -> None:
    print(f"| benchmark ({count} runs) | median | budget | result |")
    print("|---|---|---|---|")
    for name, found in results.items():
        median = found["median"]
        verdict = ("PASS" if median <= BUDGET else "FAIL") if name == "runs_pg_10k" else ""
        budget = f"≤ {BUDGET} s" if name == "runs_pg_10k" else ""
        print(f"| `{name}` | {median:.3f} s | {budget} | {verdict} |")


if __name__ == "__main__":
    sys.exit(main())
