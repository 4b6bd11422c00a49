"""Reading the run store: `pipeline runs [show|log|metrics|export]`, `compare`, `metrics`,
`params`, `lineage`.

Commands import `pipeline.api` and the renderers when they run, so that `--help` and
`--version` load only click and the options objects.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from pipeline.cli.options import GlobalOptions, fail, json_flag
from pipeline.errors import DataError


@click.group(invoke_without_command=True)
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--all", "everything", is_flag=True, help="Every recorded run.")
@json_flag
@click.pass_context
def runs(ctx: click.Context, limit: int, everything: bool, as_json: bool) -> None:
    """Recorded runs, newest first: every `run`, and every `repro` that did something.

    A run marked `missing objects` lost files it needs from the cache (outputs, its kept params
    files and lock, logs): `checkout RUN` cannot bring it back whole.

    `pipeline runs show RUN` tells everything about one, `pipeline runs log RUN [STAGE]`
    prints its logs. RUN is a run id, a unique prefix of one, a run name, or `latest` (the
    latest top-level run: a sweep rather than one of its points).
    """
    if ctx.invoked_subcommand is not None:
        return
    from pipeline import api
    from pipeline.cli import report, tables
    found = api.runs(ctx.obj.directory, None if everything else limit)
    if as_json:
        rows = [{**r.to_json(), "missing_objects": r.missing_objects} for r in found]
        click.echo(report.to_json(rows))
    else:
        tables.runs_text(found)


@runs.command("show")
@click.argument("ref", metavar="RUN")
@json_flag
@click.pass_obj
def runs_show(opts: GlobalOptions, ref: str, as_json: bool) -> None:
    """Everything recorded about RUN: who, when, which code, params, metrics, each stage's
    inputs, outputs, env and log, and the last lines of each failed stage's log (a sweep: of
    its points')."""
    from pipeline import api
    from pipeline.cli import report, tables
    from pipeline.runs.tracking import run_logged

    detail = api.run_detail(opts.directory, ref)
    failures = api.failed_logs(opts.directory, detail.run.id)
    logged = run_logged(opts.directory, detail.run.id)
    if as_json:
        data = {
            **detail.run.to_json(),
            "missing_objects": detail.run.missing_objects,
            "params": detail.params,
            "metrics": detail.metrics,
            "stages": [s.to_json() for s in detail.stages],
            "children": [c.id for c in detail.children],
            "failures": [
                {"run": f.run.id, "stage": f.stage.stage, "error": f.stage.error, "tail": f.tail()}
                for f in failures
            ],
            "logged": logged.to_json(),
        }
        click.echo(report.to_json(data))
    else:
        tables.detail_text(detail, failures)
        _logged_text(logged)


def _logged_text(logged: Any) -> None:
    """The part of `runs show` about values logged from code (the latest metric values are
    among the run's metrics above)."""
    from pipeline.cli import report

    lines = [f"  param {k} = {v!r}" for k, v in sorted(logged.params.items())]
    lines += [f"  tag {k} = {v}" for tags in logged.tags.values() for k, v in sorted(tags.items())]
    lines += [f"  artifact {a['path']} ({a['stage'] or 'script'})" for a in logged.artifacts]
    counts = logged.metric_counts
    if counts:
        lines.append(f"  {len(counts)} metric(s), {sum(counts.values())} points")
    lines += [f"  error ({e['stage'] or 'script'}): {e['message']}" for e in logged.errors]
    if lines:
        report.echo(
            "\nlogged from code (`pipeline runs metrics RUN KEY` for a history):", bold=True
        )
        for line in lines:
            report.echo(line)


@runs.command("metrics")
@click.argument("ref", metavar="RUN")
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@json_flag
@click.pass_obj
def runs_metrics(opts: GlobalOptions, ref: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Metrics RUN's code logged (`pipeline.track`, DVCLive, MLflow).

    Without KEY: one line per stage and metric, with its points, steps, last, min and max.
    With KEY: every point of that metric (step, time, value), oldest step first.
    """
    from pipeline.cli import report
    from pipeline.runs.tracking import run_history

    run, found = run_history(opts.directory, ref, keys)
    if as_json:
        click.echo(report.to_json({"run": run.id, "metrics": [s.to_json() for s in found]}))
        return
    if not found:
        report.echo(f"run {run.id} logged no metrics from code")
    for series in found:
        if keys:
            report.echo(f"{series.key} ({series.stage or 'script'})", bold=True)
            for step, ts, value in series.points:
                report.echo(f"  {step:>8}  {_clock(ts)}  {_num(value)}")
        else:
            report.echo(_summary(series))


@runs.command("export")
@click.argument("refs", nargs=-1, metavar="[RUN]...")
@click.option("--mlflow", "uri", required=True, metavar="URI", help="The MLflow tracking URI.")
@click.option("--experiment", default="pipeline", show_default=True, help="MLflow experiment.")
@json_flag
@click.pass_obj
def runs_export(
    opts: GlobalOptions, refs: tuple[str, ...], uri: str, experiment: str, as_json: bool
) -> None:
    """Copy runs (default: all; a sweep: its points) into an MLflow tracking store.

    URI is a `file:` path (MLflow's file-store layout), an `http(s)://` MLflow server (its REST
    API), or a database URI such as `sqlite:///mlflow.db` (needs `pip install mlflow`). Runs
    exported there before are skipped.
    """
    from pipeline.cli import report
    from pipeline.runs.mlflowexport import export_refs

    done = export_refs(opts.directory, refs, uri, experiment)
    if as_json:
        click.echo(report.to_json([{"run": r, "mlflow_run": m} for r, m in done]))
        return
    for run, mlflow_run in done:
        report.echo(f"{run} -> {mlflow_run}")
    report.echo(f"exported {len(done)} run(s) to {uri} (experiment {experiment})")


def _summary(series: Any) -> str:
    values = [v for _, _, v in series.points if v is not None]
    last = series.points[-1]
    low, high = (min(values), max(values)) if values else (None, None)
    where = series.stage or "script"
    return (
        f"{series.key}  [{where}]  {len(series.points)} points, steps {series.points[0][0]}"
        f"..{last[0]}, last {_num(last[2])}, min {_num(low)}, max {_num(high)}"
    )


def _num(value: float | None) -> str:
    return "NaN" if value is None else f"{value:.6g}"


def _clock(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


@runs.command("log")
@click.argument("ref", metavar="RUN")
@click.argument("stage", required=False)
@click.pass_obj
def runs_log(opts: GlobalOptions, ref: str, stage: str | None) -> None:
    """Print the whole log of STAGE in RUN, as the cache keeps it.

    Without STAGE, the log of every stage of RUN that has one (a sweep: of its points'), each
    after a header line. A stage that was up to date or skipped did not run: it has no log.
    """
    from pipeline import api
    from pipeline.cli import report

    logs = api.run_logs(opts.directory, ref, stage)
    gone = [log for log in logs if log.data is None]
    for log in logs:
        if stage is None:
            label = f"{log.run.name or log.run.id}: stage {log.stage.stage}"
            report.echo(f"==> {label} ({log.stage.outcome}) <==", bold=True)
        _write_log(log.data)
    if gone:
        names = ", ".join(f"{g.stage.stage} of run {g.run.id}" for g in gone)
        fail(
            f"the log of {names} is gone from the cache",
            "`pipeline pull` brings logs back from a remote that has them; `gc` removes only"
            " what no kept run needs",
            DataError.exit_code,
        )


def _write_log(data: bytes | None) -> None:
    """The log's bytes as they were written (escapes and all), ending in a newline."""
    if not data:
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
    sys.stdout.buffer.flush()


@click.command()
@click.argument("refs", nargs=-1, metavar="[RUN]...")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Without RUN: compare this many latest runs.",
)
@click.option(
    "-a", "--all-columns", is_flag=True, help="Show every column, not only differing ones."
)
@click.option("--sort-by", metavar="KEY", help="Sort by this metric or param (highest first).")
@click.option("--ascending", is_flag=True, help="With --sort-by: lowest first.")
@click.option("--json", "fmt", flag_value="json", help="Print JSON.")
@click.option("--csv", "fmt", flag_value="csv", help="Print CSV.")
@click.option("--md", "fmt", flag_value="md", help="Print a Markdown table.")
@click.pass_obj
def compare(opts: GlobalOptions, /, refs: tuple[str, ...], fmt: str | None, **flags: Any) -> None:
    """Runs side by side: their params and metrics (like `dvc exp show`).

    RUN may be a sweep, which stands for all its points. By default only the columns whose
    values differ are shown.
    """
    from pipeline import api
    from pipeline.cli.tables import render
    table = api.compare(opts.directory, refs, **flags)
    click.echo(render(table, fmt or "text"), nl=False)


@click.group()
def metrics() -> None:
    """Metrics of the workspace, of runs, or of git revisions."""


@metrics.command("show")
@click.argument("ref", default="workspace", metavar="[REF]")
@json_flag
@click.pass_obj
def metrics_show(opts: GlobalOptions, ref: str, as_json: bool) -> None:
    """The metrics of REF: `workspace` (default), a run, or a git revision."""
    from pipeline import api
    from pipeline.cli import report, tables

    values = api.metrics_show(opts.directory, ref)
    if as_json:
        click.echo(report.to_json(values.values))
    else:
        tables.values_text(values)


_DIFF_HELP = (
    "A and B are `workspace`, a run (id, prefix, name, `latest`) or a git revision; "
    "A defaults to HEAD and B to the workspace."
)


def _diff_command(group: click.Group) -> Callable[[Callable[..., None]], click.Command]:
    """`metrics diff` and `params diff` take the same arguments and say the same about them."""

    def decorate(function: Callable[..., None]) -> click.Command:
        function.__doc__ = (function.__doc__ or "") + "\n\n" + _DIFF_HELP
        for wrap in (
            click.pass_obj,
            json_flag,
            click.option("--all", "all_keys", is_flag=True, help="Show unchanged values too."),
            click.argument("new", default="workspace", metavar="[B]"),
            click.argument("old", default="HEAD", metavar="[A]"),
        ):
            function = wrap(function)
        return group.command("diff")(function)

    return decorate


@_diff_command(metrics)
def metrics_diff(opts: GlobalOptions, old: str, new: str, all_keys: bool, as_json: bool) -> None:
    """How the metrics changed from A to B."""
    from pipeline import api

    _print_diff(*api.metrics_diff(opts.directory, old, new, all_keys=all_keys), as_json)


@click.group()
def params() -> None:
    """Params of the workspace, of runs, or of git revisions."""


@_diff_command(params)
def params_diff(opts: GlobalOptions, old: str, new: str, all_keys: bool, as_json: bool) -> None:
    """How the params changed from A to B."""
    from pipeline import api

    _print_diff(*api.params_diff(opts.directory, old, new, all_keys=all_keys), as_json)


def _print_diff(old: Any, new: Any, changes: list[Any], as_json: bool) -> None:
    from pipeline.cli import report, tables

    if as_json:
        rows = {c.key: {"old": c.old, "new": c.new, "change": c.delta} for c in changes}
        click.echo(report.to_json({"old": old.label, "new": new.label, "changes": rows}))
    else:
        tables.diff_text(old, new, changes)


@click.command()
@click.argument("path")
@json_flag
@click.pass_obj
def lineage(opts: GlobalOptions, path: str, as_json: bool) -> None:
    """Which run and stage produced PATH as it is now, from which inputs, back to raw data.

    Found by content: the file's hash is looked up among the outputs of recorded runs, with
    the commit, params and command at each step.

    PATH may also be a model: `models:/NAME@ALIAS`, `models:/NAME/N`, `models:/NAME/latest` or
    `runs:/RUN/PATH`. Then the run (commit and dirty flag), params, metrics and environment
    (name, digest, packages) that made the package are shown too, with the commands that
    build it again.
    """
    from pipeline import api
    from pipeline.cli import report, tables
    from pipeline.runs.modeluri import is_uri

    if is_uri(path):
        found = api.model_lineage(opts.directory, path)
        if as_json:
            click.echo(report.to_json(found.to_json()))
        else:
            _model_lineage_text(found)
        return
    node = api.lineage(".", path) if opts.directory == "." else api.lineage(opts.directory, path)
    if as_json:
        click.echo(report.to_json(node.to_json()))
    else:
        tables.lineage_text(node)


def _model_lineage_text(found: Any) -> None:
    """A model's provenance: its run, code, params, metrics, env, rebuild; then its inputs."""
    from pipeline.cli import tables
    from pipeline.cli.report import echo, plural

    data, run, stage = found.to_json(), found.node.run, found.node.stage
    label = f"{data['name']} v{data['version']}" if data["name"] else found.path
    echo(f"{found.ref}: {label}  {found.hash}", bold=True)
    echo(f"  run      {run.id}" + (f" ({run.name})" if run.name else "") + f", stage {stage.stage}")
    echo(f"  code     {tables.commit(run)}" + (" (uncommitted changes)" if run.git_dirty else ""))
    for title, values in (("params", stage.params), ("metrics", found.metrics)):
        if values:
            echo(f"  {title:8} " + ", ".join(f"{k}={v}" for k, v in values.items()))
    if stage.env_name:
        count = plural(len(stage.packages), "package") if stage.packages else "packages unknown"
        echo(f"  env      {stage.env_name} {stage.env_digest or ''} ({count})")
    for command in found.rebuild:
        echo(f"  rebuild  {command}")
    echo("  inputs")
    for child in found.node.inputs:
        tables.lineage_text(child, 2)


COMMANDS = {c.name: c for c in (runs, compare, metrics, params, lineage)}
