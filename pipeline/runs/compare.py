"""`pipeline compare`: runs side by side, params and metrics as columns (like `dvc exp show`).

By default only the param columns whose values differ between the runs shown are kept, so a
sweep over one param shows that param and every metric. Metric keys lose their `file:` prefix when
only one metrics file is involved.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.errors import UsageError
from pipeline.runs.model import RunRow
from pipeline.runs.needs import Present, mark_missing

if TYPE_CHECKING:
    from pipeline.runs.runstore import RunStore


@dataclass(frozen=True)
class Table:
    """Rows of runs; `params` and `metrics` name the columns of each group."""

    runs: tuple[RunRow, ...]
    params: tuple[str, ...]
    metrics: tuple[str, ...]
    values: dict[str, dict[str, Any]]  # run id -> column -> value
    hosts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # run id -> cluster hosts

    @property
    def on_cluster(self) -> bool:
        """Whether a run shown ran stages elsewhere: then `hosts` is a column."""
        return any(self.hosts.values())

    def to_json(self) -> list[dict[str, Any]]:
        rows = []
        for r in self.runs:
            row: dict[str, Any] = {
                "id": r.id,
                "name": r.name,
                "status": r.status,
                "missing_objects": r.missing_objects,
                "started_at": r.started_at,
                "params": {k: self.values[r.id].get(k) for k in self.params},
                "metrics": {k: self.values[r.id].get(k) for k in self.metrics},
            }
            if self.on_cluster:
                row["hosts"] = list(self.hosts.get(r.id, ()))
            rows.append(row)
        return rows


def compare(
    store: RunStore,
    refs: tuple[str, ...] = (),
    *,
    limit: int = 20,
    all_columns: bool = False,
    sort_by: str | None = None,
    descending: bool = True,
    present: Present | None = None,
) -> Table:
    """The comparison table of `refs` (a sweep id expands to its points), or the latest runs.

    With `present` (does the cache hold this object?), runs that lost objects are marked.
    """
    runs = _runs(store, refs, limit)
    if present is not None:
        runs = mark_missing(store, runs, present)
    ids = [r.id for r in runs]
    params, metrics = store.params_of(ids), store.metrics_of(ids)
    metrics = _short_metric_keys(metrics, {k for v in params.values() for k in v})
    param_cols = _columns(params, all_columns)
    metric_cols = _columns(metrics, True)  # metrics are why one compares: always shown
    values = {i: {**params[i], **metrics[i]} for i in ids}
    if sort_by is not None:
        runs = _sorted(runs, values, sort_by, [*param_cols, *metric_cols], descending)
    hosts = store.stage_hosts(ids)
    return Table(tuple(runs), tuple(param_cols), tuple(metric_cols), values, hosts)


def _runs(store: RunStore, refs: tuple[str, ...], limit: int) -> list[RunRow]:
    if not refs:  # a sweep's own row has no params or metrics: its points stand for it
        return store.runs(limit=limit, sweeps=False)
    chosen: list[RunRow] = []
    for ref in refs:
        detail = store.detail(ref)
        chosen += list(detail.children) or [detail.run]
    return chosen


def _short_metric_keys(
    metrics: dict[str, dict[str, Any]], params: set[str]
) -> dict[str, dict[str, Any]]:
    files = {k.rsplit(":", 1)[0] for values in metrics.values() for k in values if ":" in k}
    short = {k.rsplit(":", 1)[-1] for values in metrics.values() for k in values}
    if len(files) != 1 or short & params:  # a short name must not shadow a param
        return metrics
    return {
        i: {k.rsplit(":", 1)[-1]: v for k, v in values.items()} for i, values in metrics.items()
    }


def _columns(rows: dict[str, dict[str, Any]], everything: bool) -> list[str]:
    keys = sorted({k for values in rows.values() for k in values})
    if everything or len(rows) < 2:
        return keys
    return [
        k for k in keys if len({json.dumps(v.get(k), sort_keys=True) for v in rows.values()}) > 1
    ]


def _sorted(
    runs: list[RunRow],
    values: dict[str, dict[str, Any]],
    key: str,
    columns: list[str],
    descending: bool,
) -> list[RunRow]:
    short = key.rsplit(":", 1)[-1]  # `metrics.json:score`, as `metrics show` names it
    matches = [c for c in columns if c in (key, short) or c.endswith((":" + key, "." + key))]
    known = {k for v in values.values() for k in v}
    if key in known:
        matches = [key]
    if not matches:
        raise UsageError(
            f"no param or metric {key!r} to sort by", "columns: " + ", ".join(sorted(known))
        )
    column = matches[0]

    def number(run: RunRow) -> float | None:
        value = values[run.id].get(column)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None if math.isnan(value) else float(value)
        return None

    present = [r for r in runs if values[r.id].get(column) is not None]
    missing = [r for r in runs if values[r.id].get(column) is None]  # always last
    if all(number(r) is not None for r in present):
        ordered = sorted(present, key=lambda r: number(r) or 0.0, reverse=descending)
    else:
        ordered = sorted(present, key=lambda r: str(values[r.id][column]), reverse=descending)
    return ordered + missing
