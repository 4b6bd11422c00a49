"""`pipeline repro`, `status` and `dag`: bring outputs up to date, say what is stale and why.

Commands import `pipeline.api` and the renderers when they run, so that `--help` and
`--version` load only click and the options objects.
"""

from __future__ import annotations

import dataclasses
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
    json_flag,
    record_warning,
    waiting,
)
from pipeline.data.options import SyncOptions
from pipeline.errors import StageFailed
from pipeline.execute.options import ReproOptions


@click.command()
@from_fields(ReproOptions, "targets", "force")
@click.option("--dry", is_flag=True, help="Print what would run and why; run nothing.")
@from_fields(
    ReproOptions,
    "single_item",
    "downstream",
    "force_downstream",
    "jobs",
    "keep_going",
    "wait",
    "run_cache",
    "pull",
    "env_manager",
    "executor",
    "scheduler",
)
@click.pass_obj
def repro(opts: GlobalOptions, /, dry: bool, **values: Any) -> None:
    """Bring outputs up to date, running only stages whose inputs changed.

    STAGE may be a stage name, a foreach/matrix group (all its `name@...` members) or
    `MANIFEST:stage`. Each named stage brings the stages it depends on along.
    """
    from pipeline import api
    from pipeline.cli import progress, report, transferbar

    options = ReproOptions(root=opts.directory, command=command_line(), **given(values))
    if dry:
        plan = api.plan(options)
        report.dry_run_text(plan)
        report.stale_lock_warnings(plan)
        return
    if options.pull:
        with transferbar.transfer_meter() as meter:
            pulled = api.pull_missing(options, meter=meter, on_wait=waiting)
        if pulled:
            report.sync_text("pull", pulled)
        options = dataclasses.replace(options, pull=False)
    out = progress.console()
    started = time.monotonic()
    with progress.make_events(out, options.jobs) as events:
        result = api.repro(options, events, on_wait=waiting)
    progress.summary(out, result, time.monotonic() - started)
    record_warning(result)
    failed = result.failed
    if failed is not None:
        error = failed.error or StageFailed(failed.stage, f"stage {failed.stage} failed")
        fail(error.message, error.hint, error.exit_code)


@click.command()
@from_fields(ReproOptions, "targets")
@json_flag
@from_fields(ReproOptions, "env_manager")
@click.option(
    "--remote",
    "remote",
    is_flag=True,
    help="Compare the cache with a remote instead: what to push, what to pull.",
)
@click.option(
    "-r", "remote_name", metavar="NAME", help="The remote for --remote [default: the default]."
)
@click.pass_obj
def status(
    opts: GlobalOptions, /, as_json: bool, remote: bool, remote_name: str | None, **values: Any
) -> None:
    """Show which stages are stale and why (dep modified, param a→b, env changed, ...)."""
    from pipeline import api
    from pipeline.cli import report

    if remote or remote_name is not None:
        sync = SyncOptions(targets=values["targets"], remote=remote_name)
        found = api.remote_status(sync, opts.directory)
        if as_json:
            click.echo(report.to_json(found.to_json()))
        else:
            report.remote_status_text(found)
        return
    plan = api.plan(ReproOptions(root=opts.directory, **given(values)))
    if as_json:
        click.echo(report.plan_json(plan))
    else:
        report.status_text(plan)
        report.stale_lock_warnings(plan)


@click.command()
@click.option("--mermaid", "fmt", flag_value="mermaid", help="Print a Mermaid flowchart.")
@click.option("--dot", "fmt", flag_value="dot", help="Print a Graphviz digraph.")
@click.pass_obj
def dag(opts: GlobalOptions, fmt: str | None) -> None:
    """Print the stage graph: each stage after the stages it reads from."""
    from pipeline.cli import report
    from pipeline.load.project import load_project

    project = load_project(opts.directory)
    render = {"mermaid": report.dag_mermaid, "dot": report.dag_dot}.get(fmt or "", report.dag_text)
    click.echo(render(project))


@click.command("exec-stage")
@click.argument("job", type=click.Path(dir_okay=False))
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    help="This worker's cache and scratch directories "
    "[default: $PIPELINE_WORKER_HOME, else $XDG_CACHE_HOME/pipeline/worker, "
    "by default ~/.cache/pipeline/worker].",
)
def exec_stage(job: str, home: str | None) -> None:
    """Run one stage job here, the worker's half of `repro --executor`; print its result.

    JOB is a stage job file (JSON: fingerprint, command, env, dependency hashes, the remote).
    The stage's source and inputs are fetched by hash from that remote, its outputs and log
    pushed there; with `executor.shared_fs` it runs in the project itself. The result (exit
    code, output hashes, log hash, host, timings, logged values) goes to stdout as JSON. Exit
    code 0 when the stage succeeded, 1 when its command failed or left an output unwritten.
    """
    import json

    from pipeline import api

    result = api.exec_stage(job, home)
    click.echo(json.dumps(result.to_dict(), sort_keys=True))
    if not result.succeeded:
        sys.exit(1)


COMMANDS = {c.name: c for c in (repro, status, dag, exec_stage)}
