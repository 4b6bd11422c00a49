"""`pipeline plots show` and `plots diff`: DVC's plot definitions drawn into one offline page.

The work is in `pipeline.plots`; this module resolves REFs (the workspace, a recorded run, a git
revision) into revisions, shows progress when rendering takes more than a second, and prints
where the result went.
"""

from __future__ import annotations

import contextlib
import threading
import webbrowser
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.options import GlobalOptions, json_flag

if TYPE_CHECKING:
    from pipeline.plots import Chart

WORKSPACE = "workspace"
_SLOW = 1.0  # seconds before a progress line appears: quick renders print nothing extra


@click.group()
def plots() -> None:
    """Draw the plots the manifest declares (DVC's `plots:`), offline, as HTML or images."""


def _output_options(function: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option(
                "-o",
                "--out",
                "out",
                metavar="DIR",
                help="Where to write (default: pipeline_plots/ in the project).",
            ),
            click.option(
                "--format",
                "fmt",
                type=click.Choice(["html", "png", "svg"]),
                default="html",
                show_default=True,
            ),
            click.option("--open", "open_page", is_flag=True, help="Open the page in a browser."),
            json_flag,
        ]
    ):
        function = option(function)
    return function


@plots.command("show")
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@_output_options
@click.pass_obj
def show(
    opts: GlobalOptions,
    targets: tuple[str, ...],
    *,
    out: str | None,
    fmt: str,
    open_page: bool,
    as_json: bool,
) -> None:
    """Draw the plots of the workspace (TARGETs: plot ids or data files; default all).

    Writes one self-contained `index.html` (Vega-Lite inlined: it works offline), or with
    `--format png|svg` an image per plot, rendered without a browser.
    """
    _draw(opts, targets, (WORKSPACE,), out=out, fmt=fmt, open_page=open_page, as_json=as_json)


@plots.command("diff")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--targets", "-t", multiple=True, metavar="TARGET", help="Plot ids or data files.")
@_output_options
@click.pass_obj
def diff(
    opts: GlobalOptions,
    refs: tuple[str, ...],
    *,
    targets: tuple[str, ...],
    out: str | None,
    fmt: str,
    open_page: bool,
    as_json: bool,
) -> None:
    """Draw the plots at several REFs in one chart each, coloured by REF.

    A REF is `workspace`, a run (id, prefix, name or `latest`) or a git revision. Without
    REFs: HEAD against the workspace; with one: that REF against the workspace.
    """
    chosen = refs if len(refs) > 1 else ((refs[0] if refs else "HEAD"), WORKSPACE)
    _draw(opts, targets, chosen, out=out, fmt=fmt, open_page=open_page, as_json=as_json)


def _draw(
    opts: GlobalOptions,
    targets: Sequence[str],
    refs: Sequence[str],
    *,
    out: str | None,
    fmt: str,
    open_page: bool,
    as_json: bool,
) -> None:
    from pipeline import api
    from pipeline import plots as drawing
    from pipeline.cli import report

    root, charts = api.plots_charts(opts.directory, targets, refs)
    if as_json:
        click.echo(report.to_json([_json(c) for c in charts]))
        return
    folder = Path(out) if out else root / drawing.DEFAULT_DIR
    with _progress() as step:
        if fmt == "html":
            written = [
                drawing.write_html(
                    charts,
                    folder,
                    heading=_heading(root, refs),
                    cache_dir=root / ".pipeline" / "plots",
                    step=step,
                )
            ]
        else:
            written = drawing.write_images(charts, folder, fmt, step=step)
    for path in written:
        click.echo(report.display(path))
    if open_page:
        webbrowser.open(written[0].resolve().as_uri())


def _heading(root: Path, refs: Sequence[str]) -> str:
    name = root.name
    return f"Plots of {name}" if len(refs) == 1 else f"Plots of {name}: {' vs '.join(refs)}"


def _json(chart: Chart) -> dict[str, object]:
    return {
        "id": chart.plot.id,
        "title": chart.title,
        "files": list(chart.plot.files),
        "template": chart.plot.template,
        "source": chart.plot.source,
        "revs": list(chart.revs),
        "missing": list(chart.missing),
        "spec": chart.spec,
    }


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[str], None]]:
    """A transient progress line, shown only once rendering has taken more than a second."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from pipeline.cli.progress import console

    out = console()
    if not out.is_terminal:
        yield lambda _: None
        return
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), console=out, transient=True)
    task = bar.add_task("rendering plots")
    lock, finished = threading.Lock(), threading.Event()

    def appear() -> None:
        with lock:  # never start the bar once the work is done (the timer may fire late)
            if not finished.is_set():
                bar.start()

    timer = threading.Timer(_SLOW, appear)
    timer.start()
    try:
        yield lambda what: bar.update(task, description=what)
    finally:
        timer.cancel()
        with lock:
            finished.set()
            bar.stop()


COMMANDS = {"plots": plots}
