"""Values a stage logged with DVCLive or MLflow, turned into track-file lines after the stage.

The runner appends these lines to the stage's track file, so one ingestion path stores
everything (`runs/tracking.py`):

- **DVCLive** writes `dvclive/` under the stage's directory (its default `dir`): the history
  of each metric in `plots/metrics/<key>.tsv` (a `step` column, sometimes `timestamp` in ms),
  the latest values in `metrics.json` (a metric logged with `plot=False` is only there), and
  `params.yaml`. Only files written while the stage ran are read: an old `dvclive/` left in
  the workspace is not this stage's. When a stage declares that folder (or a file in it) as
  an out, only that stage reads it: stages running side by side in one folder would
  otherwise each take the other's values.
- **MLflow**: the runner points `MLFLOW_TRACKING_URI` at a per-stage file store (unless the
  environment already sets one: then the values go where the user said). Its layout is
  `<experiment>/<run>/metrics/<key>` with lines `timestamp value step`, `params/<key>` and
  `tags/<key>` (MLflow's own `mlflow.*` tags are left out).

Each file is read whole or not at all, and nothing in one fails the stage: a half-written file,
a number too large for a float, JSON nested past the decoder's depth cost that file's values
only. Keys and text the track-file parser would refuse are left to it (skipped and counted).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline.core.stage import Stage

DVCLIVE_DIR = "dvclive"
# what reading one foreign file may raise: a file is the stage's, so anything can be in it
_UNREADABLE = (OSError, ValueError, OverflowError, RecursionError, csv.Error)


def reads_dvclive(stages: Iterable[Stage], stage: Stage) -> bool:
    """Whether `stage` takes DVCLive's folder in its wdir: it is declared as an out of this
    stage, or of none of `stages` (then a stage takes what was written while it ran)."""
    folder = DVCLIVE_DIR if stage.wdir == "." else f"{stage.wdir}/{DVCLIVE_DIR}"

    def declares(other: Stage) -> bool:
        return any(o.path == folder or o.path.startswith(folder + "/") for o in other.outs)

    owners = [s.name for s in stages if declares(s)]
    return not owners or stage.name in owners


def foreign_lines(cwd: Path, mlruns: Path | None, since: float, *, dvclive: bool) -> list[str]:
    """Track-file lines for what the stage logged with DVCLive (if `dvclive`: the folder is
    this stage's to read) or into `mlruns`."""
    lines = list(_dvclive(cwd / DVCLIVE_DIR, since)) if dvclive else []
    if mlruns is not None:
        lines.extend(_mlflow(mlruns))
    return lines


def _fresh(path: Path, since: float) -> bool:
    try:
        # file times come from the kernel's coarse clock: a few ms behind time.time()
        return path.stat().st_mtime >= since - 0.05
    except OSError:
        return False


def _dvclive(folder: Path, since: float) -> Iterator[str]:
    plotted: set[str] = set()
    series = folder / "plots" / "metrics"
    if series.is_dir():
        for tsv in sorted(series.rglob("*.tsv")):
            if _fresh(tsv, since):
                key = tsv.relative_to(series).with_suffix("").as_posix()
                plotted.add(key)
                yield from _whole(_tsv_lines, tsv, key)
    summary = folder / "metrics.json"
    if _fresh(summary, since):
        yield from _whole(_summary_lines, summary, plotted)
    params = folder / "params.yaml"
    if _fresh(params, since):
        yield from _whole(_params_lines, params)


def _whole(read: Callable[..., Iterator[str]], path: Path, *args: Any) -> list[str]:
    """The lines `read` makes of `path`, or none when the file cannot be read."""
    try:
        return list(read(path, *args))
    except _UNREADABLE:
        return []


def _tsv_lines(path: Path, key: str) -> Iterator[str]:
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            value = _float(row.get(path.stem))
            if value is None:
                continue
            record: dict[str, Any] = {"type": "metric", "key": key, "value": value}
            record["step"] = _int(row.get("step"))
            stamp = _int(row.get("timestamp"))
            if stamp is not None:
                record["ts"] = stamp
            yield _line(record)


def _summary_lines(path: Path, plotted: set[str]) -> Iterator[str]:
    """Values only the summary holds (logged with `plot=False`), at its `step`."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(data, dict):
        return
    step = data.pop("step", None)
    for key, value in _flatten(data, "/"):
        number = _float(value)
        if key not in plotted and number is not None:
            record = {"type": "metric", "key": key, "value": number, "step": _int(step)}
            yield _line(record)


def _params_lines(path: Path) -> Iterator[str]:
    import yaml  # noqa: PLC0415 - only when a stage used DVCLive

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return
    if isinstance(data, dict):
        for key, value in _flatten(data, "."):
            yield _line({"type": "param", "key": key, "value": value})


def _mlflow(root: Path) -> Iterator[str]:
    """Every run in an MLflow file store (a stage may start several, nested or not)."""
    if not root.is_dir():
        return
    for run in sorted(p.parent for p in root.glob("*/*/meta.yaml")):
        for kind in ("metrics", "params", "tags"):
            folder = run / kind
            for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
                key = path.relative_to(folder).as_posix()
                if path.is_file() and (kind == "metrics" or not key.startswith("mlflow.")):
                    yield from _whole(_mlflow_file, path, kind, key)


def _mlflow_file(path: Path, kind: str, key: str) -> Iterator[str]:
    """A metric's lines `timestamp value step`, or a param's or tag's value."""
    if kind != "metrics":
        yield _line({"type": kind[:-1], "key": key, "value": path.read_text()})
        return
    for row in path.read_text().splitlines():
        parts = row.split()
        if len(parts) >= 2 and _float(parts[1]) is not None:
            step = _int(parts[2]) if len(parts) > 2 else 0
            record = {"type": "metric", "key": key, "value": _float(parts[1]), "step": step}
            record["ts"] = _int(parts[0])
            yield _line(record)


def _flatten(data: dict[str, Any], sep: str, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from _flatten(value, sep, name)
        else:
            yield name, value


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past 1e308
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def _line(record: dict[str, Any]) -> str:
    if record.get("step") is None:
        record.pop("step", None)
    if record.get("ts") is None:
        record.pop("ts", None)
    return json.dumps(record, default=str) + "\n"
