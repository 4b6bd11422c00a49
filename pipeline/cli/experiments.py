"""`pipeline run`: experiments in isolated workspaces, sweeps, and MLflow entry points.

Commands import `pipeline.api` and the renderers when they run, so that `--help` and
`--version` load only click and the options objects.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from pipeline.cli.options import (
    GlobalOptions,
    command_line,
    fail,
    from_fields,
    given,
    record_warning,
)
from pipeline.experiments.options import RunOptions


@click.command("run")
@from_fields(
    RunOptions,
    "targets",
    "params",
    "sweeps",
    "jobs",
    "name",
    "keep_going",
    "run_cache",
    "executor",
    "scheduler",
)
@click.option("-e", "--entry-point", metavar="NAME", help="Run this MLflow entry point instead.")
@click.option(
    "-P", "entry_params", multiple=True, metavar="KEY=VALUE", help="An entry point parameter."
)
@from_fields(RunOptions, "env_manager")
@click.option(
    "--dry", is_flag=True, help="Print what each point would run and why; run and record nothing."
)
@click.pass_obj
def run_cmd(
    opts: GlobalOptions,
    /,
    entry_point: str | None,
    entry_params: tuple[str, ...],
    dry: bool,
    **values: Any,
) -> None:
    """Run an experiment in an isolated workspace and record it, leaving your files untouched.

    --param sets values for this run only; --sweep runs every combination, in parallel with
    -j, each point a recorded run (stages they share run once). A sweep shows which points are
    running (stage, elapsed time), with -j 1 their output too, and at the end the last lines
    of each failed point's log. Results go to the cache and the run store: `pipeline compare`
    shows them, `pipeline runs log RUN` a run's logs, `pipeline checkout RUN` brings one into
    your workspace.
    """
    from pipeline import api
    from pipeline.cli import progress

    options = RunOptions(root=opts.directory, command=command_line(), **given(values))
    if dry:
        _dry_run(options, entry_point is not None or bool(entry_params))
        return
    entry = entry_point or (None if options.targets else api.default_entry(opts.directory))
    if entry is not None or entry_params:
        _run_entry(options, entry or "main", entry_params)
        return
    started = time.monotonic()
    single = not options.sweeps
    with progress.SweepView(progress.console(), options.jobs) as view:

        def events_for(point: Any, count: int) -> Any:
            return view.events_for(point.name or "run", count)

        experiment = api.run(options, events_for)
    _report_experiment(options, experiment, single, time.monotonic() - started)


def _dry_run(options: RunOptions, entry: bool) -> None:
    """`run --dry`: each point's plan, as `repro --dry` shows one."""
    from pipeline import api
    from pipeline.cli import report

    if entry:
        raise click.UsageError("--dry plans stages; an entry point (-e/-P) has none to plan")
    planned = api.run_plan(options)
    for number, each in enumerate(planned):
        if len(planned) > 1:  # a sweep: each point under its name
            click.echo("\n" if number else "", nl=False)
            report.echo(f"point {each.point.name}:", bold=True)
        report.dry_run_text(each.plan)


def _run_entry(options: RunOptions, name: str, entry_params: tuple[str, ...]) -> None:
    from pipeline import api
    from pipeline.cli import report

    if options.targets or options.params or options.sweeps:
        raise click.UsageError("-e/-P run an entry point: give no stages, --param or --sweep")

    def sink(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    done = api.run_entry(
        options.root,
        name,
        entry_params,
        sink,
        env_manager=options.env_manager,
        command=options.command,
    )
    report.echo(f"entry point {name} exited {done.code}; recorded as run {done.run_id}")
    if done.code != 0:
        fail(f"entry point {name} failed with exit code {done.code}", None, 1)


def _point_line(point: Any) -> str:
    from pipeline.execute.scheduler import Outcome

    label = point.point.name or "run"
    if point.result is None:
        return f"✗ {label}: not run"
    counts = [f"{n} {o.value}" for o in Outcome if (n := point.result.count(o))]
    mark = "✓" if point.succeeded else "✗"
    return f"{mark} {label} (run {point.run_id}): " + ", ".join(counts)


def _report_experiment(options: RunOptions, experiment: Any, single: bool, seconds: float) -> None:
    from pipeline import api
    from pipeline.cli import progress, report
    from pipeline.cli.tables import render

    out = progress.console()
    for point in experiment.points:
        if point.result is not None and single:
            progress.summary(out, point.result, seconds)
        if point.error is not None:
            report.error_line(
                f"{point.point.name or 'run'}: {point.error.message}", point.error.hint
            )
    if experiment.parent_id is not None:
        out.print()
        for point in experiment.points:
            report.echo(_point_line(point), fg="green" if point.succeeded else "red")
        out.print()
        table = api.compare(options.root, (experiment.parent_id,))
        click.echo(render(table, "text"), nl=False)
        parent = experiment.parent_id
        report.echo(f"sweep recorded as run {parent}; `pipeline compare {parent}` shows it again")
        _failure_tails(options, experiment)
    else:
        only = experiment.points[0]
        if only.result is not None and only.result.record_error is None:
            report.echo(f"recorded as run {only.run_id}")
    for point in experiment.points:
        if point.result is not None:
            record_warning(point.result)
    _fail_if_any_failed(experiment)


def _failure_tails(options: RunOptions, experiment: Any) -> None:
    """Why each failed point failed: its stage's error and the last lines of its log."""
    from pipeline import api
    from pipeline.cli import tables

    if all(p.succeeded for p in experiment.points):
        return
    failures = api.failed_logs(options.root, experiment.parent_id)
    if failures:
        click.echo()
        tables.failure_tails(failures)


def _fail_if_any_failed(experiment: Any) -> None:
    failed = [p for p in experiment.points if not p.succeeded]
    if failed:
        first = failed[0]
        error = first.error or (
            first.result.failed.error if first.result and first.result.failed else None
        )
        code = error.exit_code if error is not None else 1
        fail(f"{len(failed)} of {len(experiment.points)} runs failed", None, code)


COMMANDS = {"run": run_cmd}
