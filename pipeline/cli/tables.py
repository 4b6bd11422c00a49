"""Tables and text of run records: `runs`, `runs show`, `compare`, diffs and lineage."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipeline.cli.report import echo, plural, to_json
from pipeline.runs.model import RunDetail, RunRow, RunStatus, StageRow

if TYPE_CHECKING:
    from pipeline.runs.compare import Table
    from pipeline.runs.diff import Change, Values
    from pipeline.runs.lineage import Node
    from pipeline.runs.logs import StageLog

_STATUS_COLOUR = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.INTERRUPTED: "yellow",
    RunStatus.RUNNING: "cyan",
}


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def commit(run: RunRow) -> str:
    if run.git_commit is None:
        return "-"
    return run.git_commit[:8] + ("+dirty" if run.git_dirty else "")


MISSING = "missing objects"  # a run whose objects are gone from the cache


def status(run: RunRow) -> str:
    """The run's status, marked when objects it needs are gone from the cache."""
    return f"{run.status} ({MISSING})" if run.missing_objects else str(run.status)


def runs_text(rows: list[RunRow]) -> None:
    """`pipeline runs`: one line per run, newest first."""
    if not rows:
        echo("no runs recorded yet: `pipeline repro` or `pipeline run` records one")
        return
    header = ["run", "started", "status", "time", "kind", "commit", "name / command"]
    table = [
        [
            r.id,
            when(r.started_at),
            status(r),
            duration(r.seconds),
            r.kind,
            commit(r),
            r.name or r.command,
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=True)]
    echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(), bold=True)
    for row, run in zip(table, rows, strict=True):
        cells = [str(x).ljust(w) for x, w in zip(row, widths, strict=True)]
        echo("  ".join(cells).rstrip(), fg=_STATUS_COLOUR.get(run.status))


def detail_text(detail: RunDetail, failures: Sequence[StageLog] = ()) -> None:
    """`pipeline runs show RUN`: the run, each stage with its inputs and outputs, then the
    last lines of each failed stage's log (a sweep: of its points')."""
    run = detail.run
    echo(f"run {run.id}" + (f" ({run.name})" if run.name else ""), bold=True)
    echo(
        f"  status   {status(run)}" + (f": {run.note}" if run.note else ""),
        fg=_STATUS_COLOUR.get(run.status),
    )
    echo(f"  command  {run.command}")
    echo(f"  when     {when(run.started_at)}, {duration(run.seconds)}")
    echo(f"  who      {run.user}@{run.host}")
    echo(f"  code     {commit(run)}" + (f" on {run.git_branch}" if run.git_branch else ""))
    if run.parent_id:
        echo(f"  sweep    {run.parent_id}")
    _mapping("params", detail.params)
    _mapping("metrics", detail.metrics)
    for child in detail.children:
        echo(f"  point {child.id} {child.name or ''} {status(child)}")
    for stage in detail.stages:
        _stage(stage)
    if failures:
        echo()
        failure_tails(failures)


def failure_tails(failures: Sequence[StageLog]) -> None:
    """Each failed stage (of which run), its error, and the last lines of its log."""
    for failed in failures:
        run, stage = failed.run, failed.stage
        label = f"{run.name} (run {run.id})" if run.name else f"run {run.id}"
        what = stage.error or "failed"
        if f"stage {stage.stage}" not in what:  # the stage's own errors name it already
            what = f"stage {stage.stage}: {what}"
        echo(f"✗ {label}: {what}", fg="red", bold=True)
        if failed.data is None:
            gone = "is gone from the cache" if stage.log_hash else "was not recorded"
            echo(f"    its log {gone}")
            continue
        tail = failed.tail()
        for line in tail:
            echo(f"    | {line}")
        whole = f"`pipeline runs log {run.id} {stage.stage}`"
        echo(f"    (last {plural(len(tail), 'line')} of its log; {whole} prints it all)", dim=True)


def _mapping(title: str, values: dict[str, Any]) -> None:
    if not values:
        return
    echo(f"  {title}")
    for key, value in values.items():
        echo(f"    {key} = {_show(value)}")


def _stage(stage: StageRow) -> None:
    echo(f"  stage {stage.stage}: {stage.outcome}" + _times(stage), bold=True)
    if stage.reasons:
        echo("    why      " + "; ".join(stage.reasons))
    if stage.cmd and stage.outcome in ("ran", "failed"):
        echo("    cmd      " + " && ".join(stage.cmd))
    if stage.env_name:
        packages = plural(len(stage.packages), "package") if stage.packages else "packages unknown"
        echo(f"    env      {stage.env_name} ({(stage.env_digest or '')[9:21]}, {packages})")
    for role, group in (("in ", stage.deps), ("out", stage.outs)):
        for artifact in group:
            echo(f"    {role}      {artifact.path}  {artifact.hash}")
    if stage.error:
        echo(f"    error    {stage.error}", fg="red")
    if stage.log_hash:
        echo(f"    log      {stage.log_hash}")


def _times(stage: StageRow) -> str:
    if stage.started_at is None or stage.ended_at is None:
        return ""
    return f" in {duration(stage.ended_at - stage.started_at)}"


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, dict, list)) else str(value)


def values_text(values: Values) -> None:
    """`pipeline metrics show`: one `key = value` line each."""
    if not values.values:
        echo(f"no values in {values.label}")
        return
    for key, value in values.values.items():
        echo(f"{key} = {_show(value)}")


def diff_text(old: Values, new: Values, changes: list[Change]) -> None:
    """`metrics diff` / `params diff`: key, old, new, change."""
    if not changes:
        echo(f"no differences between {old.label} and {new.label}")
        return
    header = ["key", old.label, new.label, "change"]
    rows = [[c.key, _cell(c.old), _cell(c.new), _delta(c)] for c in changes]
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        echo("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else _show(value)


def _delta(change: Change) -> str:
    delta = change.delta
    if delta is None:
        return "added" if change.old is None else "removed" if change.new is None else "changed"
    return f"{delta:+.6g}"


def lineage_text(node: Node, depth: int = 0) -> None:
    """`pipeline lineage PATH`: a tree from the file back to its raw data."""
    pad = "  " * depth
    short = node.hash.split(":")[-1][:12]
    if node.run is None or node.stage is None:
        echo(f"{pad}{node.path}  {short}  raw data (no recorded stage produced it)", fg="cyan")
        return
    run, stage = node.run, node.stage
    echo(f"{pad}{node.path}  {short}", bold=True)
    at = when(stage.started_at or run.started_at)
    where = f" on {stage.host}" if stage.host else ""
    echo(f"{pad}  made by stage {stage.stage} ({stage.outcome}) in run {run.id}{where}, {at}")
    echo(f"{pad}  code {commit(run)}" + (f"  cmd: {' && '.join(stage.cmd)}" if stage.cmd else ""))
    if stage.params:
        echo(f"{pad}  params " + ", ".join(f"{k}={_show(v)}" for k, v in stage.params.items()))
    for child in node.inputs:
        lineage_text(child, depth + 1)


def render(table: Table, fmt: str) -> str:
    """`text` (aligned), `md`, `csv` or `json`."""
    if fmt == "json":
        return to_json(table.to_json()) + "\n"
    hosts = ["hosts"] if table.on_cluster else []  # where the stages ran: a cluster's workers
    header = ["run", "name", "status", *hosts, *table.params, *table.metrics]
    rows = [
        [
            r.id,
            r.name or "",
            status(r),
            *([",".join(table.hosts.get(r.id, ())) or "-"] if hosts else []),
            *(_table_cell(table.values[r.id].get(c)) for c in (*table.params, *table.metrics)),
        ]
        for r in table.runs
    ]
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
        return buffer.getvalue()
    if fmt == "md":
        cells = [[c.replace("|", "\\|") for c in row] for row in [header, *rows]]
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells[1:]]) + "\n"
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    return (
        "\n".join(
            "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]
        )
        + "\n"
    )


def _table_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
