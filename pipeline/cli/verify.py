"""`pipeline verify`: rerun stages in isolation and compare their outputs with the lock.

Rendering only: the audit is `pipeline.experiments.verify`, loaded when the command runs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from pipeline.cli.options import GlobalOptions, json_flag

if TYPE_CHECKING:
    from pipeline.experiments.verify import StageCheck, VerifyReport


@click.command()
@click.argument("targets", nargs=-1, metavar="[STAGE]...")
@json_flag
@click.pass_obj
def verify(opts: GlobalOptions, targets: tuple[str, ...], as_json: bool) -> None:
    """Rerun stages in an isolated workspace and compare their outputs with pipeline.lock.

    The reproducibility audit: each STAGE (default: every stage in the lock) runs again on the
    exact inputs the lock names, and each output is compared byte for byte. Reports stages
    that are nondeterministic, and run-cache entries that do not match a real run. Your
    workspace, lock and cache are only read. Exit code 0 when everything reproduced, else 1.
    """
    from pipeline import api
    from pipeline.cli import report

    result = api.verify(opts.directory, targets, on_check=None if as_json else _print_check)
    if as_json:
        click.echo(report.to_json(result.to_json()))
    else:
        report.echo(_summary(result))
    if not result.ok:
        sys.exit(1)


def _print_check(check: StageCheck) -> None:
    from pipeline.cli import report
    from pipeline.experiments.verify import Verdict

    seconds = f"({check.seconds:.2f}s)"
    if check.verdict is Verdict.REPRODUCIBLE:
        report.echo(f"✓ {check.stage}: reproducible {seconds}", fg="green")
    elif check.verdict is Verdict.NONDETERMINISTIC:
        paths = ", ".join(d.path for d in check.differs)
        report.echo(f"✗ {check.stage}: NONDETERMINISTIC, differs: {paths} {seconds}", fg="red")
    else:
        report.echo(f"? {check.stage}: could not run: {check.why}", fg="yellow")
    if check.run_cache:
        report.echo(f"    run-cache: {check.run_cache}", fg="red")


def _summary(result: VerifyReport) -> str:
    from pipeline.cli import report
    from pipeline.experiments.verify import Verdict

    counts = [
        f"{sum(c.verdict is v for c in result.stages)} {v}"
        for v in Verdict
        if any(c.verdict is v for c in result.stages)
    ]
    bad_entries = sum(bool(c.run_cache) for c in result.stages)
    if bad_entries:
        counts.append(f"{report.plural(bad_entries, 'bad run-cache entry')}")
    return ", ".join(counts) if counts else "nothing to verify: no stage is in pipeline.lock"


COMMANDS = {"verify": verify}
