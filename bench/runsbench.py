"""Projects, a run-store filler and a repro driver for the run-record benchmarks (issue 6).

Importable without `pipeline` (stdlib + PyYAML), for `bench/run.py`:

- `overhead_project(root, n)`: a git repository with `n` independent trivial stages, each with
  one dep, one out and one param, for the per-stage recording overhead;
- `ml_project(root)`: a three-stage project (`prepare`, `train`, `evaluate`) with 5 params and
  a `metrics.json` of 3 metrics, whose run store the `runs`/`compare` benchmarks fill.

Run as a script (in a fresh interpreter, importing this checkout's `pipeline` unless one is
installed):

    python bench/runsbench.py repro ROOT --record|--no-record [--no-force]
        `pipeline.api.repro(ReproOptions(root=ROOT, force=True, jobs=1, run_cache=False,
        record=...))`; prints JSON: {"seconds": <time inside repro()>, "stages": N, "ran": N,
        "run_id": ...}. Both variants pay the same imports and interpreter start-up. With
        `--no-force`, a plain `repro` that must find every stage up to date (a no-op).

    python bench/runsbench.py fill PROJECT COUNT [--seed S]
        Writes COUNT synthetic but realistic runs into PROJECT/.pipeline/runs.db through
        `pipeline.runs.runstore.RunStore` (start, record_stage, record_files, finish), all older
        than any run already there; prints JSON with what it wrote.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

# --- projects ------------------------------------------------------------------------------------


def _git_init(root: Path) -> None:
    """Make `root` a git repository with one commit, as a user's project would be."""
    env = {
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(root),
    }
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True, env=env)


def overhead_project(root: Path, stages: int, *, git: bool = True) -> Path:
    """`stages` independent stages `sNNN`: dep `data/in.txt`, param `common.seed`, one out."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "in.txt").write_text("input\n", encoding="utf-8")
    (root / "params.yaml").write_text("common:\n  seed: 42\n", encoding="utf-8")
    manifest = {
        "stages": {
            f"s{i:03d}": {
                "cmd": f"echo {i} > out/s{i:03d}.txt",
                "deps": ["data/in.txt"],
                "params": ["common.seed"],
                "outs": [f"out/s{i:03d}.txt"],
            }
            for i in range(stages)
        }
    }
    (root / "MLproject").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    if git:
        _git_init(root)
    return root


#: The params of `ml_project` (5, flattened) and the values the synthetic runs draw from.
PARAM_CHOICES: dict[str, list[Any]] = {
    "prepare.split": [0.2, 0.2, 0.2, 0.25, 0.3],
    "train.lr": [0.01, 0.03, 0.1, 0.3],
    "train.n_estimators": [10, 50, 100, 200, 400],
    "train.max_depth": [3, 5, 8, 12],
    "train.seed": [42, 42, 42, 7],
}
METRICS_FILE = "metrics.json"
METRIC_NAMES = ("accuracy", "auc", "loss")

ML_STAGES: dict[str, dict[str, Any]] = {
    "prepare": {
        "cmd": "mkdir -p data/prepared && cp data/raw.csv data/prepared/train.csv",
        "deps": ["data/raw.csv"],
        "params": ["prepare.split"],
        "outs": ["data/prepared"],
    },
    "train": {
        "cmd": "cat data/prepared/train.csv src/train.py > model.pkl",
        "deps": ["data/prepared", "src/train.py"],
        "params": ["train.lr", "train.n_estimators", "train.max_depth", "train.seed"],
        "outs": ["model.pkl"],
    },
    "evaluate": {
        "cmd": (
            'echo \'{"accuracy": 0.91, "auc": 0.95, "loss": 0.23}\' > metrics.json'
            " && wc -c model.pkl > scores.txt"
        ),
        "deps": ["model.pkl", "data/prepared"],
        "outs": ["scores.txt"],
        "metrics": [METRICS_FILE],
    },
}


def ml_project(root: Path, *, git: bool = True) -> Path:
    """A small train/evaluate git project: 3 stages, 5 params, a metrics file of 3 metrics."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "src").mkdir(exist_ok=True)
    rows = "".join(f"{i},{i % 7},{i % 3}\n" for i in range(2000))
    (root / "data" / "raw.csv").write_text("x,y,label\n" + rows, encoding="utf-8")
    (root / "src" / "train.py").write_text("print('training')\n", encoding="utf-8")
    params: dict[str, dict[str, Any]] = {}
    for key, choices in PARAM_CHOICES.items():
        group, name = key.split(".")
        params.setdefault(group, {})[name] = choices[0]
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    manifest = {"stages": ML_STAGES}
    (root / "MLproject").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    if git:
        _git_init(root)
    return root


# --- the driver ---------------------------------------------------------------------------------


def _import_pipeline() -> None:
    """This checkout's `pipeline`, unless one is installed (which then wins, as in run.py)."""
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))


def drive_repro(root: Path, record: bool, force: bool = True) -> dict[str, Any]:
    """One forced, serial `repro` without the run-cache, through the API; checks its result.

    Not `force`: a plain serial `repro` in which every stage must be up to date.
    """
    _import_pipeline()
    from pipeline.api import ReproOptions, repro  # noqa: PLC0415
    from pipeline.execute.scheduler import Outcome  # noqa: PLC0415

    options = ReproOptions(root=root, force=force, jobs=1, run_cache=False, record=record)
    start = time.perf_counter()
    result = repro(options)
    seconds = time.perf_counter() - start
    ran = result.count(Outcome.RAN)
    expected = Outcome.RAN if force else Outcome.UP_TO_DATE
    done = result.count(expected)
    if result.failed is not None or done != len(result.results):
        raise SystemExit(f"expected every stage {expected.value}: {done} of {len(result.results)}")
    if record and (result.run_id is None or result.record_error is not None):
        raise SystemExit(f"the run was not recorded: {result.record_error}")
    if not record and result.run_id is not None:
        raise SystemExit("record=False still recorded a run")
    return {"seconds": seconds, "stages": len(result.results), "ran": ran, "run_id": result.run_id}


# --- the filler ---------------------------------------------------------------------------------


def _digest(*parts: Any) -> str:
    return "xxh3_128:" + hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def _plan(count: int, rng: random.Random) -> list[tuple[str, int]]:
    """The runs to write, oldest first: ("repro", 1), ("run", 1) or ("sweep", points).

    About 2% of the rows are sweeps (a parent row and 5 points each), 18% single
    `run --param` experiments and the rest `repro` runs.
    """
    sweeps = count // 50
    singles = count * 18 // 100
    repros = count - sweeps * 6 - singles
    units = [("repro", 1)] * repros + [("run", 1)] * singles + [("sweep", 5)] * sweeps
    rng.shuffle(units)
    return units


@dataclasses.dataclass
class _Point:
    """What one synthetic run is: its kind, params, name, sweep and start time."""

    kind: str
    params: dict[str, Any]
    command: str
    name: str | None = None
    parent: str | None = None
    restored_prepare: bool = False  # a sweep point after the first restores the shared stage
    at: float | None = None  # start time (default: some time after the previous run)


class _Filler:
    """Writes runs through the store's own API, one transaction per call as `repro` does."""

    def __init__(self, store: Any, rows: Any, seed: int, oldest: float, count: int) -> None:
        self.store = store
        self.rows = rows  # pipeline.runs.runstore, for RunRow, StageRow, Artifact
        self.rng = random.Random(seed)
        self.taken = {r.id for r in store.runs(limit=None)}
        self.when = oldest - 60 * 86400  # 60 days of history, evenly spread
        self.step = 60 * 86400 / (count + 1)
        self.commits = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(count // 20 + 1)]
        self.current = {k: v[0] for k, v in PARAM_CHOICES.items()}
        self.written = {"runs": 0, "stage_rows": 0, "artifacts": 0, "params": 0, "metrics": 0}

    def _run_id(self, when: float) -> str:
        while True:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
            run_id = f"{stamp}-{self.rng.getrandbits(24):06x}"
            if run_id not in self.taken:
                self.taken.add(run_id)
                return run_id

    def run_row(self, point: _Point) -> Any:
        if point.at is None:
            self.when += self.step * self.rng.uniform(0.5, 1.5)
        start = self.when if point.at is None else point.at
        rng = self.rng
        return self.rows.RunRow(
            id=self._run_id(start),
            kind=point.kind,
            command=point.command,
            started_at=start,
            status="running",
            name=point.name,
            parent_id=point.parent,
            user=rng.choice(["alice", "alice", "bob", "chen"]),
            host=rng.choice(["ws-alice", "gpu-01", "gpu-02"]),
            pid=rng.randrange(1000, 60000),
            git_commit=self.commits[self.written["runs"] // 20],
            git_branch=rng.choice(["main", "main", "main", "exp/features"]),
            git_dirty=rng.random() < 0.3,
        )

    def run(self, point: _Point) -> float:
        """Write one run with its 3 stages; returns when it ended."""
        rows, rng, params = self.rows, self.rng, point.params
        run = self.run_row(point)
        self.store.start(run, params)
        failed = rng.random() < 0.05
        raw = rows.Artifact("data/raw.csv", _digest("raw"), 31_890, 1)
        code = rows.Artifact("src/train.py", _digest("code"), 18, 1)
        prepared = rows.Artifact(
            "data/prepared", _digest("prep", params["prepare.split"]), 21_000, 1
        )
        model = rows.Artifact("model.pkl", _digest("model", sorted(params.items())), 2_400_000, 1)
        scores = rows.Artifact("scores.txt", _digest("scores", run.id), 18, 1)
        metrics_file = rows.Artifact(METRICS_FILE, _digest("metrics", run.id), 52, 1)
        prepare = "restored" if point.restored_prepare else rng.choice(["ran", "up to date"])
        stages = [
            ("prepare", prepare, (raw,), (prepared,), rng.uniform(0.5, 3)),
            (
                "train",
                "failed" if failed else "ran",
                (prepared, code),
                (model,),
                rng.uniform(5, 60),
            ),
            (
                "evaluate",
                "skipped" if failed else "ran",
                (model, prepared),
                (scores, metrics_file),
                3,
            ),
        ]
        t: float = run.started_at
        for stage, outcome, deps, outs, seconds in stages:
            self.store.record_stage(
                run.id, self.stage_row(run.id, stage, outcome, deps, outs, t, seconds, params)
            )
            self.written["stage_rows"] += 1
            if outcome in ("ran", "restored", "up to date"):
                self.written["artifacts"] += len(deps) + len(outs)
            if outcome in ("ran", "failed"):
                t += seconds
        if point.kind == "run":  # an experiment keeps its params file and lock, for checkout
            files = [
                rows.Artifact("params.yaml", _digest("params", sorted(params.items())), 120, 1),
                rows.Artifact("pipeline.lock", _digest("lock", run.id), 1_900, 1),
            ]
            self.store.record_files(run.id, files)
            self.written["artifacts"] += len(files)
        metrics = {} if failed else self.metrics()
        self.store.finish(run.id, "failed" if failed else "succeeded", t + 0.3, metrics)
        self.written["runs"] += 1
        self.written["params"] += len(params)
        self.written["metrics"] += len(metrics)
        return t + 0.3

    def stage_row(  # noqa: PLR0917
        self,
        run_id: str,
        stage: str,
        outcome: str,
        deps: tuple[Any, ...],
        outs: tuple[Any, ...],
        start: float,
        seconds: float,
        params: dict[str, Any],
    ) -> Any:
        """A stage record shaped like `StageRows.row` makes: no artifacts unless it settled."""
        mine = {k: v for k, v in params.items() if k.split(".")[0] == stage}
        settled = outcome in ("ran", "restored", "up to date")
        ran = outcome in ("ran", "failed")
        reasons: tuple[str, ...] = ()
        if outcome == "ran":
            reasons = ("params changed: " + ", ".join(mine),) if mine else ("deps changed",)
        return self.rows.StageRow(
            stage=stage,
            outcome=outcome,
            fingerprint=_digest(stage, sorted(mine.items()), run_id) if settled else None,
            started_at=start if ran else None,
            ended_at=start + seconds if ran else None,
            exit_code=(1 if outcome == "failed" else 0) if ran else None,
            attempts=1 if ran else None,
            cmd=(ML_STAGES[stage]["cmd"],),
            reasons=reasons,
            params=mine,
            log_hash=_digest("log", run_id, stage) if ran else None,
            error="command exited with status 1" if outcome == "failed" else None,
            deps=deps if settled else (),
            outs=outs if settled else (),
        )

    def metrics(self) -> dict[str, Any]:
        rng = self.rng
        quality = 0.7 + 0.25 * rng.random()
        return {
            f"{METRICS_FILE}:accuracy": round(quality, 4),
            f"{METRICS_FILE}:auc": round(min(0.999, quality + 0.04 * rng.random()), 4),
            f"{METRICS_FILE}:loss": round(1.2 - quality + 0.05 * rng.random(), 4),
        }

    def repro(self) -> None:
        if self.rng.random() < 0.4:  # the user edited params.yaml since the last repro
            key = self.rng.choice(list(PARAM_CHOICES))
            self.current[key] = self.rng.choice(PARAM_CHOICES[key])
        self.run(_Point("repro", dict(self.current), "pipeline repro"))

    def single(self) -> None:
        key = self.rng.choice(list(PARAM_CHOICES)[1:])
        value = self.rng.choice(PARAM_CHOICES[key])
        name = f"{key}={value}"
        self.run(_Point("run", {**self.current, key: value}, f"pipeline run --param {name}", name))

    def sweep(self, points: int) -> None:
        """A sweep row and its points, 3 at a time (`-j 3`); the first runs `prepare`."""
        key = self.rng.choice(["train.n_estimators", "train.lr", "train.max_depth"])
        values = self.rng.sample(PARAM_CHOICES[key], min(points, len(PARAM_CHOICES[key])))
        while len(values) < points:
            values.append(values[-1] * 2)
        command = f"pipeline run --sweep {key}={','.join(map(str, values))} -j 3"
        parent = self.run_row(_Point("sweep", {}, command))
        self.store.start(parent, {})
        ends = [
            self.run(
                _Point(
                    "run",
                    {**self.current, key: value},
                    command,
                    f"{key}={value}",
                    parent.id,
                    restored_prepare=i > 0,
                    at=parent.started_at + 0.5 + 40 * (i // 3) + 0.01 * i,
                )
            )
            for i, value in enumerate(values)
        ]
        self.store.finish(parent.id, "succeeded", max(ends), {})
        self.written["runs"] += 1


def fill(project: Path, count: int, seed: int = 0) -> dict[str, Any]:
    """Write `count` runs (rows of the `runs` table) into the project's store, before any."""
    _import_pipeline()
    from pipeline.runs import runstore as rows  # noqa: PLC0415

    start = time.perf_counter()
    store = rows.RunStore.for_project(project / ".pipeline")
    existing = store.runs(limit=None)
    oldest = min((r.started_at for r in existing), default=time.time())
    filler = _Filler(store, rows, seed, oldest, count)
    for kind, points in _plan(count, filler.rng):
        if kind == "repro":
            filler.repro()
        elif kind == "run":
            filler.single()
        else:
            filler.sweep(points)
    total = len(store.runs(limit=None))
    store.close()
    return {**filler.written, "total_runs_in_store": total, "seconds": time.perf_counter() - start}


# --- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    rep = sub.add_parser("repro", help="time one forced serial repro through the API")
    rep.add_argument("root", type=Path)
    rep.add_argument("--record", action=argparse.BooleanOptionalAction, required=True)
    rep.add_argument("--force", action=argparse.BooleanOptionalAction, default=True)
    fil = sub.add_parser("fill", help="write COUNT synthetic runs into PROJECT's run store")
    fil.add_argument("project", type=Path)
    fil.add_argument("count", type=int)
    fil.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "repro":
        print(json.dumps(drive_repro(args.root, args.record, args.force)))
    else:
        print(json.dumps(fill(args.project, args.count, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
