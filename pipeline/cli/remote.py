"""`pipeline remote add | list | modify | remove | default`: where the project's data is shared.

Commands import `pipeline.api` and the renderers when they run, so that `--help` and
`--version` load only click and the options objects.
"""

from __future__ import annotations

import click

from pipeline.cli.options import GlobalOptions, json_flag


@click.group()
def remote() -> None:
    """Remotes: where `push` sends the cache and `pull` gets it from.

    A remote is a directory (a mounted NAS), file://, s3://, gs://, azure://, ssh://, hdfs://
    or http(s):// (read-only). Its url and options go in .pipeline/config.yaml (committed);
    secrets go in .pipeline/config.local.yaml with --local, or come from the backend's own
    credentials (AWS variables and profiles, GOOGLE_APPLICATION_CREDENTIALS, ssh-agent).
    """


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("-d", "--default", "make_default", is_flag=True, help="Make it the default remote.")
@click.option("-f", "--force", is_flag=True, help="Replace a remote of that name.")
@click.pass_obj
def remote_add(opts: GlobalOptions, name: str, url: str, make_default: bool, force: bool) -> None:
    """Add remote NAME at URL (the first remote becomes the default)."""
    from pipeline import api
    from pipeline.cli import report

    api.remote_add(opts.directory, name, url, default=make_default, force=force)
    report.echo(f"added remote {name}: {url}")


@remote.command("list")
@json_flag
@click.pass_obj
def remote_list(opts: GlobalOptions, as_json: bool) -> None:
    """The configured remotes, the default marked, secrets masked."""
    from pipeline import api
    from pipeline.cli import report

    found = api.remote_list(opts.directory)
    if as_json:
        click.echo(report.to_json([r.to_json() for r in found]))
    else:
        report.remotes_text(found)


@remote.command("modify")
@click.argument("name")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--local", is_flag=True, help="Write to .pipeline/config.local.yaml (secrets).")
@click.option("-u", "--unset", is_flag=True, help="Remove the option.")
@click.pass_obj
def remote_modify(
    opts: GlobalOptions, /, name: str, key: str, value: str | None, **flags: bool
) -> None:
    """Set option KEY of remote NAME to VALUE (endpoint_url, profile, region, jobs, …).

    `recheck SECONDS` (default 600): how long what this machine knows the remote holds is
    trusted before it is checked again; 0 checks on every command.
    """
    from pipeline import api
    from pipeline.cli import report

    if (value is None) != flags["unset"]:
        raise click.UsageError("give VALUE, or --unset without one")
    path = api.remote_modify(opts.directory, name, key, value, local=flags["local"])
    report.echo(f"{'unset' if flags['unset'] else 'set'} {name}.{key} in {report.display(path)}")


@remote.command("remove")
@click.argument("name")
@click.pass_obj
def remote_remove(opts: GlobalOptions, name: str) -> None:
    """Forget remote NAME (what it holds is left alone)."""
    from pipeline import api
    from pipeline.cli import report

    api.remote_remove(opts.directory, name)
    report.echo(f"removed remote {name}")


@remote.command("default")
@click.argument("name")
@click.pass_obj
def remote_default(opts: GlobalOptions, name: str) -> None:
    """Make NAME the remote `push` and `pull` use when no -r is given."""
    from pipeline import api
    from pipeline.cli import report

    api.remote_default(opts.directory, name)
    report.echo(f"default remote: {name}")


COMMANDS = {"remote": remote}
