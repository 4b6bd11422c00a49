"""`pipeline ui`: the web app over the project's runs, on loopback.

Flags and printing only: the server is `pipeline.ui.server`, loaded when the command runs.
One plain line on stderr says where it listens, so it reads the same with NO_COLOR or in a log.
"""

from __future__ import annotations

import click

from pipeline.cli.options import GlobalOptions


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Loopback by default: anyone who reaches the port sees every run.",
)
@click.option(
    "-p",
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port; the printed address says which).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser.")
@click.pass_obj
def ui(opts: GlobalOptions, host: str, port: int, open_browser: bool) -> None:
    """Browse runs in a web page: sort and filter them, compare their metrics and curves.

    \b
    Pages:
      Runs      every run: sort, filter (text, status, user, lr>0.01 ...), select
      Compare   the params that differ, metrics side by side, logged metric curves
      Run       stages with a timeline and why each ran, logs, packages, lineage
      DAG       the stage graph (as `pipeline dag`)
      Models    the registry: versions, aliases, history

    Everything shown comes from the same queries as `pipeline runs`, `compare`, `runs
    show`, `lineage` and `registry`; each page's data is also JSON under /api/ (/api/runs,
    /api/compare?runs=ID,ID, /api/runs/ID, /api/dag, /api/models). Nothing is loaded from
    the network. Ctrl-C stops the server.

    \b
    Example:
      pipeline ui --open
    """
    from pipeline.ui.server import UiOptions, serve

    serve(UiOptions(opts.directory, host, port, open_browser), _say)
    click.echo("stopped", err=True)


def _say(line: str) -> None:
    click.echo(line, nl=False, err=True)


COMMANDS = {"ui": ui}
