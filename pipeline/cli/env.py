"""`pipeline env list | build | lock | prune | show`: the stage environments of a project.

Commands import `pipeline.api` and the renderers when they run, so that `--help` and
`--version` load only click and the options objects.
"""

from __future__ import annotations

import click

from pipeline.cli.options import GlobalOptions, json_flag, say
from pipeline.core.sizes import human_size


@click.group()
def env() -> None:
    """Stage environments: list, build, lock, prune, show.

    Declared in the manifest with `python_env:`/`conda_env:` (the default env) and
    `environments:` (named ones a stage picks with `env: NAME`). Built envs live in a cache
    shared by all projects: $XDG_CACHE_HOME/pipeline/envs.
    """


@env.command("list")
@json_flag
@click.pass_obj
def env_list(opts: GlobalOptions, as_json: bool) -> None:
    """The project's environments: kind, spec, lock state, built or not, stages using them."""
    from pipeline import api
    from pipeline.cli import report

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
    from pipeline import api
    from pipeline.cli import report

    for name, built in api.env_build(
        opts.directory, names, everything=everything, force=force, say=say
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
    from pipeline import api
    from pipeline.cli import report

    for path in api.env_lock(opts.directory, names, say=say):
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
    from pipeline import api
    from pipeline.cli import report

    result = api.env_prune(opts.directory, days=days, dry=dry)
    for line in result.removed:
        report.echo(("would remove " if dry else "removed ") + line)
    verb = "would free" if dry else "freed"
    report.echo(f"{verb} {human_size(result.freed_bytes)}; kept {result.kept} envs")


@env.command("show")
@click.argument("stage")
@json_flag
@click.pass_obj
def env_show(opts: GlobalOptions, stage: str, as_json: bool) -> None:
    """The env STAGE runs in: spec, lock, digest, where it is built, its packages."""
    from pipeline import api
    from pipeline.cli import report

    found = api.env_show(opts.directory, stage)
    if as_json:
        click.echo(report.to_json(found.to_json(packages=True) if found else None))
    else:
        report.env_show_text(stage, found)


COMMANDS = {"env": env}
