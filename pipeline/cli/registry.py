"""`pipeline registry`: named models, versions by content, aliases, tags and their history.

Commands import `pipeline.api` and the renderers when they run, so that `--help` and
`--version` load only click and the options objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from pipeline.cli.options import GlobalOptions, json_flag

if TYPE_CHECKING:
    from pipeline.runs.gittags import TagPlan
    from pipeline.runs.registry import Event, ModelSummary, Version

_MESSAGE = click.option("-m", "--message", metavar="MSG", help="Why: kept in the history.")


@click.group()
def registry() -> None:
    """The model registry: named models, their versions, aliases and tags.

    A version is a model package (a directory with an MLmodel file, as `pipeline.models.save`
    writes) identified by its content hash: registering the same package again gives the same
    version. Aliases (`champion`, `staging`, …) point at versions and are moved with `alias`;
    every change is kept with who, when, from → to and why (`history`). Load a version with
    `models:/NAME@ALIAS`, `models:/NAME/N` or `models:/NAME/latest` (`serve`, `lineage`).

    The registry lives in the run store (.pipeline/runs.db); `push --runs` and `pull --runs`
    share it, merging teammates' histories. `export-tags` writes it as GTO-style git tags.
    """


@registry.command("add")
@click.argument("name")
@click.argument("model", required=False)
@_MESSAGE
@json_flag
@click.pass_obj
def registry_add(
    opts: GlobalOptions, name: str, model: str | None, message: str | None, as_json: bool
) -> None:
    """Register MODEL as the next version of NAME.

    MODEL is a package directory in the project, `runs:/RUN/PATH` (an output of a recorded
    run), `models:/OTHER/N` or `models:/OTHER@ALIAS`, or the name of an artifact declared in
    the manifest's `artifacts:`. Without MODEL, NAME must be a declared artifact: its path is
    registered. The package is stored in the cache if it is not there yet (the lock is not
    touched), and the run and stage that produced it are recorded when one did.

    \b
    Examples:
      pipeline registry add churn models/churn -m "first baseline"
      pipeline registry add churn runs:/latest/models/churn
      pipeline registry add churn            # `churn` declared under artifacts:
    """
    from pipeline import api
    from pipeline.cli import report

    version, new = api.registry_add(opts.directory, name, model, message=message)
    if as_json:
        click.echo(report.to_json({**version.to_json(), "new": new}))
        return
    what = "registered" if new else "already registered as"
    origin = f" (run {version.run_id}, stage {version.stage})" if version.run_id else ""
    report.echo(f"{what} {version.uri}: {version.hash}{origin}")


@registry.command("list")
@json_flag
@click.pass_obj
def registry_list(opts: GlobalOptions, as_json: bool) -> None:
    """Every registered model: its number of versions, the latest, its aliases and tags."""
    from pipeline import api
    from pipeline.cli import report

    found = api.registry_list(opts.directory)
    if as_json:
        click.echo(report.to_json([m.to_json() for m in found]))
    else:
        _models_text(found)


@registry.command("show")
@click.argument("ref", metavar="NAME[/N|@ALIAS]")
@json_flag
@click.pass_obj
def registry_show(opts: GlobalOptions, ref: str, as_json: bool) -> None:
    """A model's versions (NAME), or everything about one version (NAME/N, NAME@ALIAS,
    NAME/latest): its package hash, where it came from, aliases and tags."""
    from pipeline import api
    from pipeline.cli import report

    name, spec = _split(ref)
    if spec is None:
        versions = api.registry_versions(opts.directory, name)
        if as_json:
            click.echo(report.to_json([v.to_json() for v in versions]))
        else:
            _versions_text(versions)
        return
    version = api.registry_show(opts.directory, name, spec)
    if as_json:
        click.echo(report.to_json(version.to_json()))
    else:
        _version_text(version)


@registry.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=click.IntRange(min=1), required=False)
@click.option("--rm", "remove", is_flag=True, help="Remove ALIAS instead (no VERSION).")
@_MESSAGE
@json_flag
@click.pass_obj
def registry_alias(
    opts: GlobalOptions, /, name: str, alias: str, version: int | None, **flags: Any
) -> None:
    """Point ALIAS of NAME at VERSION (moving it if it points elsewhere); with --rm, remove it.

    Aliases are letters, digits, `_` and `-`, not digits alone; `latest` and `v<N>` are
    reserved. Each change is kept in the history; when two people move an alias at once both
    changes are recorded and the later one wins.

    \b
    Examples:
      pipeline registry alias churn champion 3 -m "beats v2 on recall"
      pipeline registry alias --rm churn staging
    """
    from pipeline import api
    from pipeline.cli import report

    message = flags["message"]
    if flags["remove"] == (version is not None):
        raise click.UsageError("give VERSION, or --rm without one")
    if version is None:
        event = api.registry_unalias(opts.directory, name, alias, message=message)
    else:
        event = api.registry_alias(opts.directory, name, alias, version, message=message)
    if flags["as_json"]:
        click.echo(report.to_json(event.to_json()))
    else:
        report.echo(_event_line(event))


@registry.command("tag")
@click.argument("ref", metavar="NAME[/N]")
@click.argument("pair", metavar="KEY=VALUE|KEY")
@click.option("--rm", "remove", is_flag=True, help="Remove tag KEY instead.")
@_MESSAGE
@json_flag
@click.pass_obj
def registry_tag(opts: GlobalOptions, /, ref: str, pair: str, **flags: Any) -> None:
    """Set tag KEY to VALUE on version N of NAME (NAME alone: on the model itself); with
    --rm, remove tag KEY. Tags are free-form labels (`validation=passed`, `owner=ana`).

    \b
    Examples:
      pipeline registry tag churn/3 validation=passed
      pipeline registry tag churn owner=ana
      pipeline registry tag --rm churn/3 validation
    """
    from pipeline import api
    from pipeline.cli import report

    name, spec = _split(ref)
    if spec is not None and not (spec.isascii() and spec.isdigit()):  # `²` is a digit too
        raise click.UsageError(f"{ref}: tag NAME (the model) or NAME/N (a version)")
    remove, message = flags["remove"], flags["message"]
    key, has_value, value = pair.partition("=")
    if remove == bool(has_value):
        raise click.UsageError("give KEY=VALUE, or --rm with KEY alone")
    from pipeline.runs.modeluri import check_version

    version = int(check_version(spec)) if spec else None
    event = api.registry_tag(
        opts.directory, name, version, key, None if remove else value, message=message
    )
    if flags["as_json"]:
        click.echo(report.to_json(event.to_json()))
    else:
        report.echo(_event_line(event))


@registry.command("history")
@click.argument("name", required=False)
@json_flag
@click.pass_obj
def registry_history(opts: GlobalOptions, name: str | None, as_json: bool) -> None:
    """Every change of NAME (without NAME: of every model), oldest first: when, who, what,
    from → to, and the message given with -m."""
    from pipeline import api
    from pipeline.cli import report

    events = api.registry_history(opts.directory, name)
    if as_json:
        click.echo(report.to_json([e.to_json() for e in events]))
    else:
        _history_text(events)


@registry.command("export-tags")
@click.option("--dry", is_flag=True, help="Print the tags that would be created; create none.")
@json_flag
@click.pass_obj
def registry_export_tags(opts: GlobalOptions, dry: bool, as_json: bool) -> None:
    """Write the registry's history as GTO-style annotated git tags.

    `NAME@vN` for each version, on the commit of the run that produced it, and
    `NAME#ALIAS#K` for each alias set (`NAME#ALIAS!#K` removed), K counting the model's alias
    changes, so CI reacting to tag pushes (gto-action, `dvc artifacts get`) works. Tags that
    exist are kept; versions whose run recorded no commit are skipped with a note. Push the
    tags with `git push --tags`.
    """
    from pipeline import api
    from pipeline.cli import report

    plan = api.registry_export_tags(opts.directory, dry=dry)
    if as_json:
        click.echo(report.to_json({**plan.to_json(), "dry": dry}))
    else:
        _tags_text(plan, dry)


# --- rendering ------------------------------------------------------------------------------


def _split(ref: str) -> tuple[str, str | None]:
    """`NAME/N`, `NAME@ALIAS`, `NAME/latest` or `NAME` → (name, spec or None)."""
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return name, alias
    name, _, spec = ref.partition("/")
    return name, spec or None


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from pipeline.cli.report import echo

    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(), bold=True)
    for row in rows:
        echo("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "-"


def _models_text(models: list[ModelSummary]) -> None:
    from pipeline.cli.report import echo
    from pipeline.cli.tables import when

    if not models:
        echo("no models registered yet: `pipeline registry add NAME MODEL` registers one")
        return
    rows = [
        [
            m.name,
            str(m.versions),
            f"v{m.latest}",
            _pairs(m.aliases),
            _pairs(m.tags),
            when(m.updated_at),
        ]
        for m in models
    ]
    _grid(["model", "versions", "latest", "aliases", "tags", "updated"], rows)


def _versions_text(versions: list[Version]) -> None:
    from pipeline.cli.tables import when

    rows = [
        [
            f"v{v.version}",
            ", ".join(v.aliases) or "-",
            v.hash.partition(":")[2][:12],
            v.run_id or "-",
            v.stage or "-",
            when(v.created_at),
            v.user or "-",
            v.description or "",
        ]
        for v in versions
    ]
    _grid(["version", "aliases", "hash", "run", "stage", "registered", "by", "message"], rows)


def _version_text(version: Version) -> None:
    from pipeline.cli.report import echo
    from pipeline.cli.tables import when

    echo(
        f"{version.uri}" + (f" ({', '.join(version.aliases)})" if version.aliases else ""),
        bold=True,
    )
    echo(f"  hash     {version.hash}")
    echo(f"  path     {version.path or '-'}")
    if version.run_id:
        echo(f"  run      {version.run_id}" + (f", stage {version.stage}" if version.stage else ""))
    echo(f"  when     {when(version.created_at)} by {version.user or 'unknown'}")
    if version.description:
        echo(f"  message  {version.description}")
    for key, value in version.tags.items():
        echo(f"  tag      {key} = {value}")
    echo(f"  lineage  pipeline lineage {version.uri}", dim=True)


def _event_line(event: Event, *, why: bool = True) -> str:
    version = f"v{event.to_version}" if event.to_version else "-"
    old = f"v{event.from_version}" if event.from_version else "-"
    what = {
        "register": f"registered {event.name} {version}",
        "alias": f"{event.name}@{event.alias}: {old} → {version}",
        "unalias": f"{event.name}@{event.alias}: {old} → removed",
        "tag": f"tag {event.key}={event.value} on {event.name}"
        + (f" {version}" if event.to_version else ""),
        "untag": f"removed tag {event.key} from {event.name}"
        + (f" {old}" if event.from_version else ""),
    }[event.action]
    shown = why and event.message and event.action != "register"
    return what + (f"  ({event.message})" if shown else "")


def _history_text(events: list[Event]) -> None:
    from pipeline.cli.report import echo
    from pipeline.cli.tables import when

    if not events:
        echo("no registry changes recorded")
        return
    rows = [
        [when(e.at), e.actor or "-", e.action, _event_line(e, why=False), e.message or ""]
        for e in events
    ]
    _grid(["when", "who", "action", "change", "message"], rows)


def _tags_text(plan: TagPlan, dry: bool) -> None:
    from pipeline.cli.report import echo

    for tag in plan.tags:
        state = "exists" if tag.exists else ("would create" if dry else "created")
        echo(f"{state:12}  {tag.tag}  {tag.commit[:8]}", dim=tag.exists)
    for note in plan.notes:
        echo(f"note: {note}", dim=True)
    if not plan.tags and not plan.notes:
        echo("no registry events to export")
    elif not dry and plan.new:
        echo("push them with `git push --tags`")


COMMANDS = {"registry": registry}
