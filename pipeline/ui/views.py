"""What each page of the UI shows, as JSON: built from the same queries the CLI uses.

The runs table is `compare` over every run with all columns (what `pipeline compare --all`
prints), sent column by column so 10,000 runs are one compact document the browser sorts and
filters itself. The compare view is `compare RUN…`; the run page is `runs show` (the run's
detail), `runs log` and the lineage of its outputs; the DAG is `pipeline dag`'s graph; the
registry is `registry list/versions/history`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.errors import PipelineError, UsageError
from pipeline.runs.compare import Table, compare
from pipeline.runs.lineage import Node, package_lineage
from pipeline.runs.logs import stage_logs, with_points
from pipeline.runs.model import RunDetail, RunRow
from pipeline.runs.needs import mark_detail
from pipeline.runs.registry import Registry
from pipeline.runs.tracking import logged
from pipeline.ui.curves import curves
from pipeline.ui.source import Source

ALL_RUNS = 1_000_000  # the runs table shows every run; paging is the browser's
MAX_COMPARE = 500  # runs in one compare view: beyond that, no table is readable
LOG_BYTES = 512 * 1024  # the tail of a log the run page shows
LINEAGE_OUTS = 30  # outputs of a run whose lineage the run page draws

JSON = dict[str, Any]


def project(source: Source) -> JSON:
    """The header: the project's name and where it lives."""
    return {"name": source.name(), "root": str(source.root)}


def runs_table(source: Source) -> JSON:
    """Every run (sweep points, not the sweep rows), params and metrics, column by column:
    `compare --all` over every run."""
    with source.store() as store:
        # without `present`: a stat per object of 10,000 runs would be a third of the time;
        # the run page marks a run whose objects are gone
        table = compare(store, limit=ALL_RUNS, all_columns=True)
    rows = table.runs
    values = [table.values[r.id] for r in rows]
    return {
        "count": len(rows),
        "runs": {
            "id": [r.id for r in rows],
            "name": [r.name for r in rows],
            "status": [r.status.value for r in rows],
            "kind": [r.kind for r in rows],
            "user": [r.user for r in rows],
            "started": [round(r.started_at, 3) for r in rows],
            "seconds": [None if r.seconds is None else round(r.seconds, 3) for r in rows],
            "parent": [r.parent_id for r in rows],
            "commit": [r.git_commit[:7] if r.git_commit else None for r in rows],
        },
        "params": {k: [v.get(k) for v in values] for k in table.params},
        "metrics": {k: [v.get(k) for v in values] for k in table.metrics},
    }


def compare_view(source: Source, refs: Sequence[str]) -> JSON:
    """`compare RUN…`: the params that differ, every metric, and the logged curves overlaid."""
    if not refs:
        raise UsageError("nothing to compare: give ?runs=ID,ID", "select runs in the table first")
    if len(refs) > MAX_COMPARE:
        raise UsageError(f"{len(refs)} runs to compare", f"compare at most {MAX_COMPARE}")
    with source.store() as store:
        table = compare(store, tuple(refs), limit=len(refs), present=source.present)
        charts = curves(store, table.runs)
    return {**_table(table), "curves": charts}


def _table(table: Table) -> JSON:
    return {
        "runs": [_run(r) for r in table.runs],
        "params": list(table.params),
        "metrics": list(table.metrics),
        "values": {r.id: table.values[r.id] for r in table.runs},
    }


def run_page(source: Source, ref: str) -> JSON:
    """`runs show RUN`: the run, its stages (timeline, decisions, packages), params, metrics,
    its points when it is a sweep, the lineage of its outputs, and what its code logged
    (curves, tags, artifacts, errors)."""
    with source.store() as store:
        detail = mark_detail(store, store.detail(ref), source.present)
        graph = _lineage(store, detail)
        charts = curves(store, (detail.run,))
        from_code = logged(store, detail.run.id).to_json()
    return {
        "run": _run(detail.run),
        "params": detail.params,
        "metrics": detail.metrics,
        "stages": [s.to_json() for s in detail.stages],
        "children": [_run(c) for c in detail.children],
        "lineage": graph,
        "curves": charts,
        "logged": from_code,
    }


def _run(run: RunRow) -> JSON:
    return {**run.to_json(), "seconds": run.seconds, "missing_objects": run.missing_objects}


def run_log(source: Source, ref: str, stage: str) -> JSON:
    """`runs log RUN STAGE`: the stage's log (its last `LOG_BYTES`), or that it is gone."""
    with source.store() as store:
        found = stage_logs(with_points(store, ref), stage, source.read)
    logs = []
    for log in found:
        data = log.data
        text = None if data is None else data[-LOG_BYTES:].decode("utf-8", errors="replace")
        cut = data is not None and len(data) > LOG_BYTES
        logs.append({"run": log.run.id, "stage": log.stage.stage, "text": text, "cut": cut})
    return {"logs": logs}


def _lineage(store: Any, detail: RunDetail) -> JSON:
    """The run's outputs back to raw data (`pipeline lineage`), as one graph of files and
    stage runs: file → stage run → file."""
    nodes: dict[str, JSON] = {}
    edges: set[tuple[str, str]] = set()
    outs = [o for s in detail.stages for o in s.outs][:LINEAGE_OUTS]
    for out in outs:
        try:
            node = package_lineage(store, out.path, out.path, out.hash, None).node
        except PipelineError:  # made by hand, or before runs were recorded
            continue
        _walk(node, nodes, edges)
    return {"nodes": list(nodes.values()), "edges": sorted(edges)}


def _walk(node: Node, nodes: dict[str, JSON], edges: set[tuple[str, str]]) -> str:
    file_id = f"file:{node.path}:{node.hash}"
    nodes.setdefault(file_id, {"id": file_id, "kind": "file", "label": node.path,
                               "title": f"{node.path} ({node.hash})"})  # fmt: skip
    if node.run is None or node.stage is None:
        nodes[file_id]["raw"] = True
        return file_id
    stage_id = f"stage:{node.run.id}:{node.stage.stage}"
    label = node.stage.stage
    title = f"{label} in run {node.run.id} ({node.stage.outcome})"
    nodes.setdefault(stage_id, {"id": stage_id, "kind": "stage", "label": label,
                                "run": node.run.id, "title": title})  # fmt: skip
    edges.add((stage_id, file_id))
    for parent in node.inputs:
        edges.add((_walk(parent, nodes, edges), stage_id))
    return file_id


def dag(source: Source) -> JSON:
    """`pipeline dag`: the stages and which reads from which, with each stage's command."""
    project = source.project()
    stages = [
        {"id": name, "label": name, "sub": " && ".join(project.stages[name].cmd), "title": name}
        for name in project.graph.order
    ]
    return {"nodes": stages, "edges": [list(e) for e in project.graph.edges]}


def models(source: Source) -> JSON:
    """`registry list`: every model with its versions, latest and aliases."""
    with source.store() as store:
        return {"models": [m.to_json() for m in Registry(store).names()]}


def model(source: Source, name: str) -> JSON:
    """`registry versions NAME` and `registry history NAME`."""
    with source.store() as store:
        registry = Registry(store)
        versions = [v.to_json() for v in registry.versions(name)]
        history = [e.to_json() for e in registry.history(name)]
    return {"name": name, "versions": versions, "history": history}
