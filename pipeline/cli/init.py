"""`pipeline init` and `pipeline completion`: starting a project, and shell completion.

Both are cheap: `init` imports the starter only when it runs, `completion` only click.
"""

from __future__ import annotations

import click

from pipeline.cli.options import GlobalOptions


@click.command()
@click.option(
    "--dvc", is_flag=True, help="Write a dvc.yaml (DVC's format) instead of an MLproject."
)
@click.pass_obj
def init(opts: GlobalOptions, dvc: bool) -> None:
    """Start a project here: a commented starter MLproject, params.yaml and .gitignore.

    The starter pipeline (two stages, bash only) runs as written: try `pipeline repro`, then
    edit it. Refuses to overwrite an existing manifest or params.yaml.
    """
    from pipeline import api
    from pipeline.cli import report

    started = api.init(opts.directory, dvc=dvc)
    report.echo(f"wrote {started.manifest.name} and {started.params.name}", fg="green")
    if started.gitignore_changed:
        report.echo("listed the starter's outputs in .gitignore (git keeps pipeline.lock)")
    report.echo("next: `pipeline repro` runs the starter stages; `pipeline status` says why")


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]), default="bash")
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (default: bash).

    Load it from your shell's startup file, e.g. in ~/.bashrc:
    `eval "$(pipeline completion bash)"` (zsh: `eval "$(pipeline completion zsh)"`; fish:
    `pipeline completion fish | source`).
    """
    from click.shell_completion import get_completion_class

    from pipeline.cli.main import cli  # the root group: completion walks its commands

    kind = get_completion_class(shell)
    assert kind is not None  # click ships bash, zsh and fish
    click.echo(kind(cli, {}, "pipeline", "_PIPELINE_COMPLETE").source())


COMMANDS = {"init": init, "completion": completion}
