"""Metric curves for the compare view and the run page: logged histories as Vega-Lite lines.

The histories come from the tracking queries (`pipeline.runs.tracking`, what `pipeline runs
metrics` prints); each metric is one chart with a line per run, drawn by the plots package's
`linear` template through its `chart` seam, so a curve here looks like one in `plots show`.
A series longer than `MAX_POINTS` is thinned to every n-th point (the last one kept): the
browser draws 100 runs at once, and more points than pixels only slow it down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.plots.charts import Series, chart
from pipeline.plots.definitions import PlotDef
from pipeline.runs.model import RunRow
from pipeline.runs.tracking import history

if TYPE_CHECKING:
    from pipeline.runs.runstore import RunStore

MAX_CHARTS = 24  # metrics drawn at once; the rest are in the table
MAX_POINTS = 500  # points per line
STEP = "step"
DRAWN = ("x", "y", "series")  # what the linear template reads of each point; the rest is dropped

History = Mapping[str, Mapping[str, Sequence[tuple[float, float]]]]  # run → key → (step, y)


def curves(store: RunStore, runs: Sequence[RunRow]) -> list[dict[str, Any]]:
    """One chart per logged metric of `runs` (a line per run that logged it)."""
    found = histories(store, [r.id for r in runs])
    keys = sorted({k for per_run in found.values() for k in per_run})[:MAX_CHARTS]
    labels = _labels(runs)
    return [_chart(key, runs, labels, found) for key in keys]


def _chart(
    key: str, runs: Sequence[RunRow], labels: Mapping[str, str], found: History
) -> dict[str, Any]:
    plot = PlotDef(id=key, y=((key, (key,)),), x=((key, STEP),), title=key, x_label=STEP)
    series = [
        Series(labels[r.id], key, [{STEP: s, key: v} for s, v in _thin(found[r.id][key])])
        for r in runs
        if key in found.get(r.id, {})
    ]
    spec = chart(plot, series).spec or {}
    data = spec.get("data", {})
    values = [{k: p[k] for k in DRAWN if k in p} for p in data.get("values", ())]
    return {"key": key, "spec": {**spec, "data": {**data, "values": values}}, "lines": len(series)}


def _labels(runs: Sequence[RunRow]) -> dict[str, str]:
    """Each run's name, or its id when it has none or shares its name."""
    names = [r.name for r in runs]
    return {r.id: r.name if r.name and names.count(r.name) == 1 else r.id for r in runs}


def _thin(points: Sequence[tuple[float, float]]) -> Sequence[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    every = -(-len(points) // MAX_POINTS)
    kept = list(points[::every])
    return kept if kept[-1] == points[-1] else [*kept, points[-1]]


def histories(store: RunStore, run_ids: Sequence[str]) -> History:
    """The logged metric histories of `run_ids`: run → key → [(step, value)] by step.

    A key two stages of one run both logged is named `key (stage)` for each; NaN points
    (stored as None) are left out, as a line cannot draw them.
    """
    found: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for run_id in run_ids:
        series = history(store, run_id)
        stages: dict[str, int] = {}
        for one in series:
            stages[one.key] = stages.get(one.key, 0) + 1
        found[run_id] = {
            (s.key if stages[s.key] == 1 else f"{s.key} ({s.stage})"): [
                (step, value) for step, _, value in s.points if value is not None
            ]
            for s in series
        }
    return found
