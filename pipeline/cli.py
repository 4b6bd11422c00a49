"""The `pipeline` command line: parse options, call `pipeline.api`, render with `report`.

Kept thin and cheap to import: heavy modules (pydantic, networkx, rich) load inside the
commands, so `pipeline --version` and `--help` start in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from pipeline._version import __version__

if TYPE_CHECKING:
    from pipeline.api import ReproOptions

EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class GlobalOptions:
    """Options given before the subcommand."""

    directory: str  # a project directory, or a manifest file given with -f
    verbose: int


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "directory",
    default=".",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False),
    help="Run as if pipeline was started in DIR.",
)
@click.option(
    "-f",
    "--file",
    "manifest",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Use this manifest (an MLproject or dvc.yaml) instead of searching for one.",
)
@click.option("-v", "--verbose", count=True, help="Show tracebacks for errors.")
@click.version_option(__version__, "--version", prog_name="pipeline")
@click.pass_context
def cli(ctx: click.Context, directory: str, manifest: str | None, verbose: int) -> None:
    """Reproducible ML pipelines: run only what changed, and know why.

    Reads the manifest in the current directory or its nearest parent that has one: an
    MLproject, or else a dvc.yaml (with params.yaml), which runs unchanged.
    """
    os.chdir(directory)  # like `git -C`: paths on the command line are relative to DIR
    directory = "."
    if manifest is not None:
        if not Path(manifest).is_file():
            raise click.BadParameter(f"{manifest} is not a file", param_hint="'-f'")
        directory = manifest
    ctx.obj = GlobalOptions(directory, verbose)


_targets = click.argument("targets", nargs=-1, metavar="[STAGE]...")
_env_manager = click.option(
    "--env-manager",
    type=click.Choice(["declared", "local"]),
    default="declared",
    show_default=True,
    help="`local`: run every stage in the current environment, ignoring declared envs.",
)


@dataclass(frozen=True)
class ReproFlags:
    """The flags of `pipeline repro`, as parsed."""

    force: bool
    dry: bool
    single_item: bool
    downstream: bool
    force_downstream: bool
    jobs: int | None
    keep_going: bool
    no_wait: bool
    no_run_cache: bool
    env_manager: str


@cli.command()
@_targets
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Run the selected stages (targets and their upstream) even if up to date.",
)
@click.option("--dry", is_flag=True, help="Print what would run and why; run nothing.")
@click.option(
    "-s", "--single-item", is_flag=True, help="Only the named stages, not their upstream."
)
@click.option(
    "--downstream", is_flag=True, help="The named stages and everything that depends on them."
)
@click.option(
    "--force-downstream", is_flag=True, help="Rerun every stage downstream of one that runs."
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Run up to N stages (CPUs) at once [default: the CPU count].",
)
@click.option(
    "-k", "--keep-going", is_flag=True, help="After a failure, go on with independent stages."
)
@click.option("--no-wait", is_flag=True, help="Fail at once if another pipeline process runs here.")
@click.option(
    "--no-run-cache",
    is_flag=True,
    help="Run stages even when the cache holds a run with the same inputs.",
)
@_env_manager
@click.pass_obj
def repro(opts: GlobalOptions, /, targets: tuple[str, ...], **flags: Any) -> None:
    """Bring outputs up to date, running only stages whose inputs changed.

    STAGE may be a stage name, a foreach/matrix group (all its `name@...` members) or
    `MANIFEST:stage`. Each named stage brings the stages it depends on along.
    """
    from pipeline import api, report

    f = ReproFlags(**flags)
    options = api.ReproOptions(
        root=opts.directory,
        targets=targets,
        force=f.force,
        single_item=f.single_item,
        downstream=f.downstream,
        force_downstream=f.force_downstream,
        keep_going=f.keep_going,
        wait=not f.no_wait,
        run_cache=not f.no_run_cache,
        env_manager=f.env_manager,
        command=_command_line(),
    )
    if f.jobs:
        options = dataclasses.replace(options, jobs=f.jobs)
    if f.dry:
        plan = api.plan(options)
        report.dry_run_text(plan)
        report.stale_lock_warnings(plan)
        return
    _run_repro(options)


def _run_repro(options: ReproOptions) -> None:
    from pipeline import api, progress
    from pipeline.errors import StageFailed

    out = progress.console()
    started = time.monotonic()
    with progress.make_events(out, options.jobs) as events:
        result = api.repro(options, events, on_wait=_waiting)
    progress.summary(out, result, time.monotonic() - started)
    _record_warning(result)
    failed = result.failed
    if failed is not None:
        error = failed.error or StageFailed(failed.stage, f"stage {failed.stage} failed")
        _fail(error.message, error.hint, error.exit_code)


@cli.command()
@_targets
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_env_manager
@click.pass_obj
def status(opts: GlobalOptions, targets: tuple[str, ...], as_json: bool, env_manager: str) -> None:
    """Show which stages are stale and why (dep modified, param a→b, env changed, ...)."""
    from pipeline import api, report

    options = api.ReproOptions(root=opts.directory, targets=targets, env_manager=env_manager)
    plan = api.plan(options)
    if as_json:
        click.echo(report.plan_json(plan))
    else:
        report.status_text(plan)
        report.stale_lock_warnings(plan)


@cli.command()
@click.option("--mermaid", "fmt", flag_value="mermaid", help="Print a Mermaid flowchart.")
@click.option("--dot", "fmt", flag_value="dot", help="Print a Graphviz digraph.")
@click.pass_obj
def dag(opts: GlobalOptions, fmt: str | None) -> None:
    """Print the stage graph: each stage after the stages it reads from."""
    from pipeline import report
    from pipeline.project import load_project

    project = load_project(opts.directory)
    render = {"mermaid": report.dag_mermaid, "dot": report.dag_dot}.get(fmt or "", report.dag_text)
    click.echo(render(project))


@cli.command()
@click.argument("targets", nargs=-1, metavar="[RUN|STAGE|PATH]...")
@click.option("--verify", is_flag=True, help="Rehash every object before restoring it.")
@click.option("--force", is_flag=True, help="With RUN: overwrite params files with edits.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def checkout(
    opts: GlobalOptions, targets: tuple[str, ...], verify: bool, force: bool, as_json: bool
) -> None:
    """Make outputs and tracked data match pipeline.lock, from the cache.

    After `git checkout <commit>`, this brings back that commit's data and models without
    running anything. STAGE or PATH limits it to those outputs. RUN (a run id, prefix or name
    from `pipeline runs`) applies that experiment: its params files, lock and outputs.
    """
    from pipeline import api, report

    run = targets[0] if len(targets) == 1 and api.is_run(opts.directory, targets[0]) else None
    result = api.checkout(
        opts.directory,
        () if run else targets,
        verify=verify,
        on_wait=_waiting,
        run=run,
        force=force,
    )
    if as_json:
        click.echo(report.to_json(dataclasses.asdict(result)))
    else:
        if run is not None:
            report.echo(f"applied run {run}: its params and lock")
        report.checkout_text(result)
    if result.missing or result.corrupt:
        sys.exit(4)


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.pass_obj
def add(opts: GlobalOptions, paths: tuple[str, ...]) -> None:
    """Track raw data (files or directories no stage produces) in the cache.

    Records each PATH's hash in pipeline.lock under `data:` and keeps it out of git, so
    `status` notices changes and `checkout` restores it.
    """
    from pipeline import api, report

    for added in api.add(opts.directory, list(paths), on_wait=_waiting):
        state = "added" if added.changed else "unchanged"
        files = report.plural(added.info.nfiles, "file")
        report.echo(f"{state}: {added.path} ({files}, {report.size(added.info.size)})")


@cli.command()
@click.option(
    "--workspace", "scope", flag_value="workspace", help="Keep only what the current lock needs."
)
@click.option(
    "--all-commits",
    "scope",
    flag_value="all-commits",
    help="Keep what the lock of any commit (any ref, reflog included) needs.",
)
@click.option("--dry", is_flag=True, help="Only say what would be freed.")
@click.pass_obj
def gc(opts: GlobalOptions, scope: str | None, dry: bool) -> None:
    """Free cache objects that no lock refers to.

    By default keeps what the current lock and the lock of every commit of every local branch
    need. Never removes an object the current workspace needs.
    """
    from pipeline import api, report

    result = api.gc(opts.directory, scope or "branches", dry=dry, on_wait=_waiting)
    verb = "would free" if dry else "freed"
    report.echo(
        f"{verb} {report.plural(len(result.removed), 'object')} "
        f"({report.size(result.freed_bytes)}); kept {result.kept}; "
        f"{result.runs_removed} run-cache entries dropped; {result.locks_read} lock versions read"
    )


@cli.command()
@click.pass_obj
def fsck(opts: GlobalOptions) -> None:
    """Verify every cached object against its hash; move damaged ones aside."""
    from pipeline import api, progress, report

    with progress.counter("checking cached objects") as tick:
        corrupt = api.fsck(opts.directory, tick)
    for digest in corrupt:
        report.echo(f"corrupt: {digest} (moved to .pipeline/cache/corrupt/)", fg="red")
    if corrupt:
        _fail(
            f"{report.plural(len(corrupt), 'cached object')} did not match their hash",
            "`pipeline repro` rebuilds what they held; `pipeline checkout` reports what is lost",
            4,
        )
    report.echo("every cached object matches its hash", fg="green")


@cli.group()
def env() -> None:
    """Stage environments: list, build, lock, prune, show.

    Declared in the manifest with `python_env:`/`conda_env:` (the default env) and
    `environments:` (named ones a stage picks with `env: NAME`). Built envs live in a cache
    shared by all projects: $XDG_CACHE_HOME/pipeline/envs.
    """


@env.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def env_list(opts: GlobalOptions, as_json: bool) -> None:
    """The project's environments: kind, spec, lock state, built or not, stages using them."""
    from pipeline import api, report

    envs = api.env_list(opts.directory)
    if as_json:
        click.echo(report.to_json([e.to_json() for e in envs]))
    else:
        report.env_list_text(envs)


@env.command("build")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "everything", is_flag=True, help="Every declared env, used or not.")
@click.option("--force", is_flag=True, help="Rebuild even if the env is already built.")
@click.pass_obj
def env_build(opts: GlobalOptions, names: tuple[str, ...], everything: bool, force: bool) -> None:
    """Build envs now rather than when a stage first needs them.

    Without NAME, builds the envs the project's stages use.
    """
    from pipeline import api, report

    for name, built in api.env_build(
        opts.directory, names, everything=everything, force=force, say=_say
    ):
        count = report.plural(len(built.packages), "package")
        report.echo(f"env {name!r}: {built.prefix} ({count})")


@env.command("lock")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.pass_obj
def env_lock(opts: GlobalOptions, names: tuple[str, ...]) -> None:
    """Pin exact package versions and hashes in a lock next to each spec.

    pip envs get `pylock.<spec>.toml` (PEP 751), conda envs `<spec>.conda-lock.yml`. Envs are
    then built from the lock; commit it so colleagues get the same packages. Without NAME,
    locks every env the project's stages use.
    """
    from pipeline import api, report

    for path in api.env_lock(opts.directory, names, say=_say):
        report.echo(f"wrote {report.display(path)}")


@env.command("prune")
@click.option(
    "--days",
    type=click.FloatRange(min=0),
    default=30,
    show_default=True,
    help="Keep envs used within this many days (by any project).",
)
@click.option("--dry", is_flag=True, help="Only say what would be removed.")
@click.pass_obj
def env_prune(opts: GlobalOptions, days: float, dry: bool) -> None:
    """Remove cached envs this project does not use and nobody used recently."""
    from pipeline import api, report

    result = api.env_prune(opts.directory, days=days, dry=dry)
    for line in result.removed:
        report.echo(("would remove " if dry else "removed ") + line)
    verb = "would free" if dry else "freed"
    report.echo(f"{verb} {report.size(result.freed_bytes)}; kept {result.kept} envs")


@env.command("show")
@click.argument("stage")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def env_show(opts: GlobalOptions, stage: str, as_json: bool) -> None:
    """The env STAGE runs in: spec, lock, digest, where it is built, its packages."""
    from pipeline import api, report

    found = api.env_show(opts.directory, stage)
    if as_json:
        click.echo(report.to_json(found.to_json(packages=True) if found else None))
    else:
        report.env_show_text(stage, found)


@cli.command("run")
@_targets
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a param for this run (repeatable); `file.yaml:key=v` for other files.",
)
@click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    metavar="KEY=A,B,...",
    help="Run once per value (repeatable: the grid of all combinations).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Run up to N stages or sweep points at once [default: the CPU count].",
)
@click.option("-n", "--name", help="A name for the run (sweep points add their values).")
@click.option(
    "-k", "--keep-going", is_flag=True, help="After a failure, go on with independent stages."
)
@click.option(
    "--no-run-cache", is_flag=True, help="Run stages even when the cache holds their result."
)
@click.option("-e", "--entry-point", metavar="NAME", help="Run this MLflow entry point instead.")
@click.option(
    "-P", "entry_params", multiple=True, metavar="KEY=VALUE", help="An entry point parameter."
)
@_env_manager
@click.pass_obj
def run_cmd(opts: GlobalOptions, /, targets: tuple[str, ...], **flags: Any) -> None:
    """Run an experiment in an isolated workspace and record it, leaving your files untouched.

    --param sets values for this run only; --sweep runs every combination, in parallel with
    -j, each point a recorded run (stages they share run once). Results go to the cache and the
    run store: `pipeline compare` shows them, `pipeline checkout RUN` brings one into your
    workspace.
    """
    from pipeline import api, progress
    from pipeline.experiments.run import RunOptions

    entry = flags["entry_point"] or (None if targets else api.default_entry(opts.directory))
    if entry is not None or flags["entry_params"]:
        _run_entry(opts, entry or "main", targets, flags)
        return
    options = RunOptions(
        root=opts.directory,
        targets=targets,
        params=flags["params"],
        sweeps=flags["sweeps"],
        jobs=flags["jobs"] or os.cpu_count() or 1,
        name=flags["name"],
        keep_going=flags["keep_going"],
        run_cache=not flags["no_run_cache"],
        env_manager=flags["env_manager"],
        command=_command_line(),
    )
    out = progress.console()
    started = time.monotonic()
    single = not options.sweeps

    def events_for(point: Any, count: int) -> Any:
        if count == 1:
            return progress.make_events(out, options.jobs)
        return progress.PointEvents(out, point.name or "run")

    experiment = api.run(options, events_for)
    _report_experiment(opts, experiment, single, time.monotonic() - started)


def _point_line(point: Any) -> str:
    from pipeline.execute import Outcome

    label = point.point.name or "run"
    if point.result is None:
        return f"✗ {label}: not run"
    counts = [f"{n} {o.value}" for o in Outcome if (n := point.result.count(o))]
    mark = "✓" if point.succeeded else "✗"
    return f"{mark} {label} (run {point.run_id}): " + ", ".join(counts)


def _run_entry(opts: GlobalOptions, name: str, targets: tuple[str, ...], flags: Any) -> None:
    from pipeline import api, report

    if targets or flags["params"] or flags["sweeps"]:
        raise click.UsageError("-e/-P run an entry point: give no stages, --param or --sweep")

    def sink(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    done = api.run_entry(
        opts.directory,
        name,
        flags["entry_params"],
        sink,
        env_manager=flags["env_manager"],
        command=_command_line(),
    )
    report.echo(f"entry point {name} exited {done.code}; recorded as run {done.run_id}")
    if done.code != 0:
        _fail(f"entry point {name} failed with exit code {done.code}", None, 1)


def _report_experiment(opts: GlobalOptions, experiment: Any, single: bool, seconds: float) -> None:
    from pipeline import api, progress, report
    from pipeline.runs.compare import render

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
        table = api.compare(opts.directory, (experiment.parent_id,))
        click.echo(render(table, "text"), nl=False)
        parent = experiment.parent_id
        report.echo(f"sweep recorded as run {parent}; `pipeline compare {parent}` shows it again")
    else:
        only = experiment.points[0]
        if only.result is not None and only.result.record_error is None:
            report.echo(f"recorded as run {only.run_id}")
    for point in experiment.points:
        if point.result is not None:
            _record_warning(point.result)
    failed = [p for p in experiment.points if not p.succeeded]
    if failed:
        first = failed[0]
        error = first.error or (
            first.result.failed.error if first.result and first.result.failed else None
        )
        code = error.exit_code if error is not None else 1
        _fail(f"{len(failed)} of {len(experiment.points)} runs failed", None, code)


@cli.group(invoke_without_command=True)
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--all", "everything", is_flag=True, help="Every recorded run.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def runs(ctx: click.Context, limit: int, everything: bool, as_json: bool) -> None:
    """Recorded runs, newest first: every `repro` and `run` is one.

    `pipeline runs show RUN` tells everything about one. RUN is a run id, a unique prefix of
    one, a run name, or `latest`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from pipeline import api, report
    from pipeline.runs import text

    found = api.runs(ctx.obj.directory, None if everything else limit)
    if as_json:
        click.echo(report.to_json([r.to_json() for r in found]))
    else:
        text.runs_text(found)


@runs.command("show")
@click.argument("ref", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def runs_show(opts: GlobalOptions, ref: str, as_json: bool) -> None:
    """Everything recorded about RUN: who, when, which code, params, metrics, each stage's
    inputs, outputs, env and log."""
    from pipeline import api, report
    from pipeline.runs import text

    detail = api.run_detail(opts.directory, ref)
    if as_json:
        data = {
            **detail.run.to_json(),
            "params": detail.params,
            "metrics": detail.metrics,
            "stages": [s.to_json() for s in detail.stages],
            "children": [c.id for c in detail.children],
        }
        click.echo(report.to_json(data))
    else:
        text.detail_text(detail)


@cli.command()
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
def compare(opts: GlobalOptions, /, refs: tuple[str, ...], **flags: Any) -> None:
    """Runs side by side: their params and metrics (like `dvc exp show`).

    RUN may be a sweep, which stands for all its points. By default only the columns whose
    values differ are shown.
    """
    from pipeline import api
    from pipeline.runs.compare import render

    f = CompareFlags(**flags)
    table = api.compare(
        opts.directory,
        refs,
        limit=f.limit,
        all_columns=f.all_columns,
        sort_by=f.sort_by,
        ascending=f.ascending,
    )
    click.echo(render(table, f.fmt or "text"), nl=False)


@dataclass(frozen=True)
class CompareFlags:
    """The flags of `pipeline compare`, as parsed."""

    limit: int
    all_columns: bool
    sort_by: str | None
    ascending: bool
    fmt: str | None


@cli.group()
def metrics() -> None:
    """Metrics of the workspace, of runs, or of git revisions."""


@metrics.command("show")
@click.argument("ref", default="workspace", metavar="[REF]")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def metrics_show(opts: GlobalOptions, ref: str, as_json: bool) -> None:
    """The metrics of REF: `workspace` (default), a run, or a git revision."""
    from pipeline import api, report
    from pipeline.runs import text

    values = api.metrics_show(opts.directory, ref)
    if as_json:
        click.echo(report.to_json(values.values))
    else:
        text.values_text(values)


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
            click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON."),
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


@cli.group()
def params() -> None:
    """Params of the workspace, of runs, or of git revisions."""


@_diff_command(params)
def params_diff(opts: GlobalOptions, old: str, new: str, all_keys: bool, as_json: bool) -> None:
    """How the params changed from A to B."""
    from pipeline import api

    _print_diff(*api.params_diff(opts.directory, old, new, all_keys=all_keys), as_json)


def _print_diff(old: Any, new: Any, changes: list[Any], as_json: bool) -> None:
    from pipeline import report
    from pipeline.runs import text

    if as_json:
        rows = {c.key: {"old": c.old, "new": c.new, "change": c.delta} for c in changes}
        click.echo(report.to_json({"old": old.label, "new": new.label, "changes": rows}))
    else:
        text.diff_text(old, new, changes)


@cli.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def lineage(opts: GlobalOptions, path: str, as_json: bool) -> None:
    """Which run and stage produced PATH as it is now, from which inputs, back to raw data.

    Found by content: the file's hash is looked up among the outputs of recorded runs, with
    the commit, params and command at each step.
    """
    from pipeline import api, report
    from pipeline.runs import text

    node = api.lineage(".", path) if opts.directory == "." else api.lineage(opts.directory, path)
    if as_json:
        click.echo(report.to_json(node.to_json()))
    else:
        text.lineage_text(node)


def _record_warning(result: Any) -> None:
    """A run that could not be recorded ran all the same; say so rather than fail it."""
    from pipeline import report

    if result.record_error:
        warning = f"warning: the run was not recorded: {result.record_error}"
        report.echo(warning, fg="yellow", err=True)
        report.echo("    check .pipeline/runs.db (move it aside to start a new one)", err=True)


def _command_line() -> str:
    import shlex

    return shlex.join(["pipeline", *sys.argv[1:]])


def _say(text: str) -> None:
    from pipeline import report

    report.echo(text.rstrip("\n"), err=True)


def _waiting(message: str) -> None:
    from pipeline import report

    report.echo(message, err=True)


def _fail(message: str, hint: str | None, code: int) -> NoReturn:
    from pipeline import report

    report.error_line(message, hint)
    sys.exit(code)


def run() -> NoReturn:
    """The `pipeline` executable: `main()`, then exit without interpreter teardown.

    Tearing down the several hundred modules a command loaded costs up to 0.1 s and does
    nothing useful here: every file is closed and every write committed before this point.
    """
    code: int | str | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: `pipeline dag | head`
            stream.flush()
    os._exit(code if isinstance(code, int) else (1 if code else 0))


def main(argv: list[str] | None = None) -> None:
    """The command line as a function: user errors become one line and an exit code."""
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="pipeline", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _fail("interrupted", None, EXIT_INTERRUPTED)
    except Exception as exc:
        _handle(exc, verbose)


def _handle(exc: Exception, verbose: bool) -> NoReturn:
    from pipeline.errors import PipelineError

    if verbose:
        raise exc
    if isinstance(exc, PipelineError):
        _fail(exc.message, exc.hint, exc.exit_code)
    _fail(
        f"internal error: {type(exc).__name__}: {exc}",
        "rerun with -v for the traceback, and please report it",
        1,
    )
