"""`pipeline checkout`, `add`, `gc`, `fsck`, `push`, `fetch`, `pull`: commands over cached data.

Commands import `pipeline.api` and the renderers when they run, so that `--help` and
`--version` load only click and the options objects.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any

import click

from pipeline.cli.options import GlobalOptions, fail, from_fields, given, json_flag, waiting
from pipeline.core.sizes import human_size
from pipeline.data.options import SyncOptions

if TYPE_CHECKING:
    from pipeline.data.gc import GcReport


@click.command()
@click.argument("targets", nargs=-1, metavar="[RUN|STAGE|PATH]...")
@click.option("--verify", is_flag=True, help="Rehash every object before restoring it.")
@click.option("--force", is_flag=True, help="With RUN: overwrite params files with edits.")
@json_flag
@click.pass_obj
def checkout(
    opts: GlobalOptions, targets: tuple[str, ...], verify: bool, force: bool, as_json: bool
) -> None:
    """Make outputs and tracked data match pipeline.lock, from the cache.

    After `git checkout <commit>`, this brings back that commit's data and models without
    running anything. STAGE or PATH limits it to those outputs. RUN (a run id, prefix or name
    from `pipeline runs`) applies that experiment: its params files, lock and outputs.
    """
    from pipeline import api
    from pipeline.cli import report

    run = targets[0] if len(targets) == 1 and api.is_run(opts.directory, targets[0]) else None
    result = api.checkout(
        opts.directory,
        () if run else targets,
        verify=verify,
        on_wait=waiting,
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


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.pass_obj
def add(opts: GlobalOptions, paths: tuple[str, ...]) -> None:
    """Track raw data (files or directories no stage produces) in the cache.

    Records each PATH's hash in pipeline.lock under `data:` and keeps it out of git, so
    `status` notices changes and `checkout` restores it.
    """
    from pipeline import api
    from pipeline.cli import report

    for added in api.add(opts.directory, list(paths), on_wait=waiting):
        state = "added" if added.changed else "unchanged"
        files = report.plural(added.info.nfiles, "file")
        report.echo(f"{state}: {added.path} ({files}, {human_size(added.info.size)})")


@click.command()
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
@click.option(
    "-r",
    "--remote",
    metavar="NAME",
    help="Delete from the remote NAME instead of the local cache (same keep-rules).",
)
@click.option("-y", "--yes", is_flag=True, help="With --remote: do not ask for confirmation.")
@click.option(
    "--runs-older-than",
    metavar="AGE",
    help="First drop recorded runs started more than AGE ago (e.g. 30d, 12h, 2w).",
)
@click.option(
    "--drop-runs",
    is_flag=True,
    help="First drop the runs given as arguments (ids, id prefixes, names; a sweep with its "
    "points) from the run store.",
)
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@json_flag
@click.pass_obj
def gc(
    opts: GlobalOptions,
    *,
    scope: str | None,
    dry: bool,
    remote: str | None,
    yes: bool,
    runs_older_than: str | None,
    drop_runs: bool,
    runs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Free cache objects that no lock, recorded run or running experiment needs.

    By default keeps what the current lock and the lock of every commit of every local branch
    need, and everything a recorded run needs (`checkout RUN` works after gc): runs leave only
    when dropped with --runs-older-than or --drop-runs RUN... (with --dry: only say which).
    Never removes an object the current workspace needs. A remote is never touched unless
    named with --remote; there, what this project's run records need is kept too. A remote
    shared by several projects keeps only what this one needs: run it with --dry first.
    """
    from pipeline import api
    from pipeline.cli import report

    if bool(runs) != drop_runs:
        fail("--drop-runs needs RUN arguments, and RUN arguments need --drop-runs", None, 2)
    if remote is not None and not dry and not yes:
        _confirm_remote_gc(remote)
    result = api.gc(
        opts.directory,
        scope or "branches",
        dry=dry,
        on_wait=waiting,
        remote=remote,
        runs_older_than=runs_older_than,
        drop_runs=runs,
    )
    if as_json:
        click.echo(report.to_json(dataclasses.asdict(result)))
        return
    report.echo(_gc_summary(result, dry, remote))


def _gc_summary(result: GcReport, dry: bool, remote: str | None) -> str:
    """One line; the parts about runs and running experiments only when there is news."""
    from pipeline.cli import report

    verb = "would free" if dry else "freed"
    where = f" on remote {remote}" if remote else ""
    parts = [
        f"{verb} {report.plural(len(result.removed), 'object')} "
        f"({human_size(result.freed_bytes)}){where}",
        f"kept {result.kept}",
    ]
    if result.runs_dropped or not remote:
        dropped = "would drop" if dry else "dropped"
        parts.append(f"{dropped} {report.plural(len(result.runs_dropped), 'recorded run')}")
    if result.kept_for_live:
        parts.append(
            f"kept {report.plural(result.kept_for_live, 'newer object')} for "
            f"{report.plural(result.live_experiments, 'running experiment')}"
        )
    if result.workspaces_cleared:
        cleared = "would remove" if dry else "removed"
        parts.append(
            f"{cleared} {report.plural(len(result.workspaces_cleared), 'workspace')} "
            "of killed experiments"
        )
    parts.append(f"{report.plural(result.runs_removed, 'run-cache entry')} dropped")
    parts.append(f"{report.plural(result.locks_read, 'lock version')} read")
    return "; ".join(parts)


def _confirm_remote_gc(remote: str) -> None:
    question = (
        f"Delete from remote {remote!r} every object this project's locks and runs do not need "
        "(other projects sharing it lose theirs)?"
    )
    if not sys.stdin.isatty():
        fail(f"gc --remote {remote} needs confirmation", "add --yes (or look first with --dry)", 2)
    if not click.confirm(question, default=False):
        fail("nothing deleted", None, 1)


@click.command()
@click.pass_obj
def fsck(opts: GlobalOptions) -> None:
    """Verify every cached object against its hash; move damaged ones aside."""
    from pipeline import api
    from pipeline.cli import progress, report

    with progress.counter("checking cached objects") as tick:
        corrupt = api.fsck(opts.directory, tick)
    for digest in corrupt:
        report.echo(f"corrupt: {digest} (moved to .pipeline/cache/corrupt/)", fg="red")
    if corrupt:
        fail(
            f"{report.plural(len(corrupt), 'cached object')} did not match"
            f" {'its' if len(corrupt) == 1 else 'their'} hash",
            "`pipeline repro` rebuilds what they held; `pipeline checkout` reports what is lost",
            4,
        )
    report.echo("every cached object matches its hash", fg="green")


def _sync_command(name: str, doc: str) -> click.Command:
    """`push`, `fetch` and `pull` take the same options and report alike."""

    @click.command(name, help=doc)
    @from_fields(SyncOptions, "targets", "remote", "jobs", "all_commits", "runs")
    @json_flag
    @click.pass_obj
    def command(opts: GlobalOptions, /, as_json: bool, **values: Any) -> None:
        from pipeline import api
        from pipeline.cli import report, transferbar

        options = SyncOptions(**given(values))
        action = {"push": api.push, "fetch": api.fetch, "pull": api.pull}[name]
        with transferbar.transfer_meter() as meter:
            reports = action(options, opts.directory, meter=meter)
        if as_json:
            click.echo(report.to_json([r.to_json() for r in reports]))
        else:
            report.sync_text(name, reports)
        _fail_if_incomplete(name, reports)

    return command


def _fail_if_incomplete(verb: str, reports: list[Any]) -> None:
    """Exit 4, with one line, when an object was missing, corrupt, or could not be restored."""
    from pipeline.cli.report import plural

    missing = sum(len(r.objects.missing) for r in reports)
    corrupt = sum(len(r.objects.corrupt) for r in reports)
    unrestored = sum(
        len(r.checkout.missing) + len(r.checkout.corrupt) for r in reports if r.checkout
    )
    if corrupt:
        fail(
            f"{verb}: {plural(corrupt, 'object')} on the remote did not match their hash; "
            "none was used",
            "the remote copy is damaged: push it again from a machine that has it",
            4,
        )
    if missing or unrestored:
        what = "not on the remote" if missing else "could not be restored"
        fail(
            f"{verb}: {plural(missing or unrestored, 'object')} {what}",
            "push them from a machine that has them, or `pipeline repro` to rebuild",
            4,
        )


push = _sync_command(
    "push",
    """Send the lock's data and outputs, and their run-cache entries, to a remote.

    Only what the remote lacks is sent: small files go in packs, each directory's listing goes
    last. TARGET (a stage or path) limits it; --all-commits sends what any commit's lock needs;
    --runs also shares run records, so teammates see them in `pipeline runs`.
    """,
)
fetch = _sync_command(
    "fetch",
    """Download the lock's data and outputs into the cache, without touching the workspace.

    Every object is checked against its hash before it enters the cache.
    """,
)
pull = _sync_command(
    "pull",
    """Download the lock's data and outputs, then check them out into the workspace.

    After `git clone` or `git pull`, this brings the data and models of that commit; `pipeline
    status` then says what is up to date. --runs also brings teammates' run records.
    """,
)

COMMANDS = {c.name: c for c in (checkout, add, gc, fsck, push, fetch, pull)}
