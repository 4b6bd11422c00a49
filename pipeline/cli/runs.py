"""Reading the run store: `pipeline runs [show|log]`, `compare`, `metrics`, `params`, `lineage`.

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

    detail = api.run_detail(opts.directory, ref)
    failures = api.failed_logs(opts.directory, detail.run.id)
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
        }
        click.echo(report.to_json(data))
    else:
        tables.detail_text(detail, failures)


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
    """
    from pipeline import api
    from pipeline.cli import report, tables

    node = api.lineage(".", path) if opts.directory == "." else api.lineage(opts.directory, path)
    if as_json:
        click.echo(report.to_json(node.to_json()))
    else:
        tables.lineage_text(node)


COMMANDS = {c.name: c for c in (runs, compare, metrics, params, lineage)}
