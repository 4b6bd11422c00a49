"""Plain-text and JSON rendering: status, dry-run plans, the DAG, error lines.

These outputs are short, so they go through click rather than rich, whose import alone would
cost an eighth of the no-op `status` budget. Colour is used only on a terminal and never when
`NO_COLOR` is set. The live output of a running `repro` is `progress.py`'s job.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import TYPE_CHECKING, Any

import click

from pipeline.core.paths import display_path
from pipeline.core.sizes import human_size
from pipeline.load.project import Project
from pipeline.plan.decisions import Action, Decision, Plan, ReasonKind

if TYPE_CHECKING:
    from pathlib import Path

    from pipeline.data.checkout import CheckoutReport
    from pipeline.data.remotes import RemoteSummary
    from pipeline.data.sync import RemoteStatus, SyncReport
    from pipeline.env.manage import EnvReport

_COLOR = {
    Action.RUN: "yellow",
    Action.RESTORE: "blue",
    Action.AFTER_UPSTREAM: "cyan",
    Action.UP_TO_DATE: "green",
}
_LABEL = {
    Action.RUN: "will run",
    Action.RESTORE: "will be restored from the cache",
    Action.AFTER_UPSTREAM: "runs if upstream changes its outputs",
    Action.UP_TO_DATE: "up to date",
}


def plural(count: int, noun: str) -> str:
    """`1 stage`, `2 stages`, `2 entries`."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun[:-1]}ies" if noun.endswith("ry") else f"{count} {noun}s"


def use_color() -> bool | None:
    """False under NO_COLOR; otherwise None lets click decide (colour only on a terminal)."""
    return False if os.environ.get("NO_COLOR") else None


def echo(text: str = "", *, err: bool = False, **style: Any) -> None:
    """Print one line, styled only where colour is wanted."""
    click.echo(click.style(text, **style) if style else text, err=err, color=use_color())


def status_text(plan: Plan) -> None:
    """`pipeline status`: each stale stage with its reasons, then a one-line verdict."""
    stale = plan.stale
    for decision in stale:
        _decision(decision)
    for name in plan.adopted:  # up to date, but worth saying once: DVC's run becomes ours
        if plan.decisions[name].action is Action.UP_TO_DATE:
            echo(f"{name}: {ReasonKind.ADOPTED}", fg="green")
    for imported in plan.imports:  # DVC imports: nodes of the DAG we never fetch
        rev = f" @ {imported.rev}" if imported.rev else ""
        echo(f"{imported.path}: import from {imported.url}{rev} ({imported.source})")
    for reason in plan.data:
        echo(f"tracked {reason}", fg="yellow")
    if plan.data:
        echo("    run `pipeline add PATH` to record new data, `pipeline checkout PATH` to restore")
    adopted = {o.path for e in plan.adopted.values() for o in e.outs}  # DVC's: not lost
    for locked in (u for u in plan.unstored if u.path not in adopted):  # the only copy: say so
        echo(f"{locked.path}: intact, but the cache lost it; `pipeline repro` stores it again")
    fresh = len(plan.order) - len(stale)
    if not stale and not plan.data:
        echo(f"Everything is up to date ({plural(fresh, 'stage')}).", fg="green")
    else:
        echo(f"\n{len(stale)} of {len(plan.order)} stages need to run; {fresh} up to date.")


def dry_run_text(plan: Plan) -> None:
    """`pipeline repro --dry`: every selected stage in order, with what would happen."""
    for name in plan.order:
        _decision(plan.decisions[name])
    count = sum(1 for d in plan.stale if d.action is Action.RUN)
    restored = sum(1 for d in plan.stale if d.action is Action.RESTORE)
    extra = f", {restored} would be restored from the cache" if restored else ""
    echo(f"\nDry run: {count} would run{extra}, nothing was executed.")


def _decision(decision: Decision) -> None:
    name = click.style(decision.stage, bold=True)
    frozen = any(r.kind is ReasonKind.FROZEN for r in decision.reasons)
    text = "frozen, will fail: it never runs" if frozen else _LABEL[decision.action]
    label = click.style(text, fg="red" if frozen else _COLOR[decision.action])
    click.echo(f"{name}: {label}", color=use_color())
    for reason in decision.reasons:
        echo(f"    {reason}")


def plan_json(plan: Plan) -> str:
    """Machine-readable status: every selected stage with its action and reasons."""
    stages = [plan.decisions[name].to_json() for name in plan.order]
    data = [r.to_json() for r in plan.data]
    body = {"up_to_date": not plan.stale and not data, "stages": stages, "data": data}
    if plan.imports:
        body["imports"] = [dataclasses.asdict(i) for i in plan.imports]
    return json.dumps(strict_json(body), indent=2)


def strict_json(value: Any) -> Any:
    """`value` with NaN and infinities as strings ("nan", "inf"): JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def dag_text(project: Project) -> str:
    """Each stage after the stages it reads from: `train <- prepare`."""
    order = project.graph.order
    width = max((len(n) for n in order), default=0)
    lines = []
    for name in order:
        ups = project.graph.upstream[name]
        lines.append(f"{name:<{width}}  <- {', '.join(ups)}" if ups else name)
    return "\n".join(lines)


def dag_mermaid(project: Project) -> str:
    """A Mermaid flowchart; node ids are indices so any stage name is safe as a label."""
    ids = {name: f"s{i}" for i, name in enumerate(project.stages)}
    lines = ["flowchart TD"]
    lines += [f'    {ids[n]}["{_mermaid_label(n)}"]' for n in project.stages]
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in project.graph.edges]
    return "\n".join(lines)


def _mermaid_label(name: str) -> str:
    return name.replace('"', "#quot;")


def dag_dot(project: Project) -> str:
    """A Graphviz digraph."""
    lines = ["digraph pipeline {", "    rankdir=TB;"]
    lines += [f"    {json.dumps(n)};" for n in project.stages]
    lines += [f"    {json.dumps(a)} -> {json.dumps(b)};" for a, b in project.graph.edges]
    return "\n".join([*lines, "}"])


def checkout_text(result: CheckoutReport) -> None:
    """`pipeline checkout`: what came back, and what the cache could not give."""
    for path in result.restored:
        echo(f"restored: {path}", fg="green")
    for path in result.missing:
        echo(f"missing from the cache: {path}", fg="red")
    for path in result.corrupt:
        echo(f"corrupt in the cache (moved aside): {path}", fg="red")
    counts = [f"{len(result.restored)} restored", f"{len(result.unchanged)} already up to date"]
    if result.missing or result.corrupt:
        counts.append(f"{len(result.missing) + len(result.corrupt)} could not be restored")
        counts.append("`pipeline repro` rebuilds them")
    echo(", ".join(counts) + ".")


def to_json(data: Any) -> str:
    return json.dumps(strict_json(data), indent=2)


def error_line(message: str, hint: str | None) -> None:
    """One clear line for a user error on stderr, plus its hint."""
    click.echo(
        f"{click.style('error:', fg='red', bold=True)} {message}", err=True, color=use_color()
    )
    if hint:
        click.echo(f"{click.style('hint:', dim=True)} {hint}", err=True, color=use_color())


def display(path: Path) -> str:
    return display_path(path)


def stale_lock_warnings(plan: Plan) -> None:
    """A spec edited after its lock: the env is still built from the (older) lock."""
    for env in plan.stale_locks:
        assert env.lock is not None
        echo(
            f"warning: {display(env.spec)} changed after {env.lock.name} was written; env"
            f" {env.name!r} is built from the lock until you run `pipeline env lock {env.name}`",
            fg="yellow",
            err=True,
        )


def env_list_text(envs: list[EnvReport]) -> None:
    """`pipeline env list`: one block per env."""
    if not envs:
        echo("no environments declared: every stage runs in the current environment")
        echo("    declare one with `python_env: FILE` or `environments:` (see MLproject.example)")
        return
    for env in envs:
        state = "built" if env.built else "not built"
        colour = "green" if env.built else "yellow"
        echo(f"{env.name}  ({env.kind}: {env.spec})", bold=True)
        if env.error:
            echo(f"    error: {env.error}", fg="red")
            continue
        short = (env.digest or "").split(":")[-1][:12]
        echo(f"    {state}, lock: {env.lock}, digest {short}", fg=colour)
        echo("    stages: " + (", ".join(env.stages) or "none"))


def env_show_text(stage: str, env: EnvReport | None) -> None:
    """`pipeline env show STAGE`: the env and, when built, its packages."""
    if env is None:
        echo(f"stage {stage} runs in the current environment (system: no isolation, unpinned)")
        return
    env_list_text([env])
    if env.built is None:
        echo(f"    build it with `pipeline env build {env.name}`")
        return
    echo(f"    prefix: {env.built.prefix}")
    python = env.built.meta.get("python") or {}
    if python:
        echo(f"    python: {python.get('version')} ({python.get('path')})")
    for row in [*env.built.packages, *env.built.meta.get("pip_packages", [])]:
        echo("    " + " ".join(str(part) for part in row[:3] if part))


def sync_text(verb: str, reports: list[SyncReport]) -> None:
    """`push`/`fetch`/`pull`: per remote, what moved, what was there, what is missing."""
    for found in reports:
        moved = found.objects
        where = f"{found.remote} ({found.url})"
        past = {"push": "pushed", "fetch": "fetched", "pull": "fetched"}[verb]
        line = f"{past} {plural(moved.transferred, 'object')} ({human_size(moved.bytes)})"
        line += f" {'to' if verb == 'push' else 'from'} {where}; {moved.present} already there"
        if found.runs:
            line += f"; {plural(found.runs, 'run-cache entry')}"
        if found.records:
            line += f"; {plural(found.records, 'run record')}"
        if found.events:
            line += f"; {plural(found.events, 'registry event')}"
        echo(line + ".")
        for warning in found.warnings:
            echo(f"warning: {warning}", fg="yellow", err=True)
        for digest in moved.missing:
            echo(f"not on {found.remote}: {_named(found, digest)}", fg="red")
        for digest in moved.corrupt:
            echo(
                f"rejected, corrupt on {found.remote}: {_named(found, digest)} (never placed)",
                fg="red",
            )
        if found.not_cached:
            echo(
                f"warning: {plural(len(found.not_cached), 'object')} the lock refers to "
                "are not in the cache: `pipeline repro` rebuilds them",
                fg="yellow",
                err=True,
            )
        if found.checkout is not None:
            checkout_text(found.checkout)
        if found.never_pushed:
            outs = plural(len(found.never_pushed), "output")
            echo(f"{outs} never pushed (push: false): `pipeline repro` builds them", fg="yellow")


def _named(found: SyncReport, digest: str) -> str:
    path = found.paths.get(digest)
    return f"{path} ({digest})" if path else digest


def remotes_text(remotes: list[RemoteSummary]) -> None:
    """`pipeline remote list`: name, url, options, and a missing backend."""
    if not remotes:
        echo("no remotes: pipeline remote add -d NAME URL")
    for found in remotes:
        mark = " (default)" if found.default else ""
        echo(f"{found.name}{mark}  {found.url}", bold=found.default)
        for key, value in sorted(found.options.items()):
            echo(f"    {key}: {value}")
        if found.backend:
            echo(f"    needs {found.backend}, which is not installed", fg="yellow")


def remote_status_text(status: RemoteStatus) -> None:
    """`pipeline status --remote`: what to push, what to pull, what is nowhere."""
    where = f"{status.remote} ({status.url})"
    groups = (
        ("only in the cache (`pipeline push`)", status.to_push, "yellow"),
        (f"only on {status.remote} (`pipeline pull`)", status.to_pull, "cyan"),
        ("in neither: `pipeline repro` rebuilds them", status.lost, "red"),
    )
    for title, paths, colour in groups:
        if paths:
            echo(f"{title}:", fg=colour)
            for path in paths:
                echo(f"    {path}")
    if not (status.to_push or status.to_pull or status.lost):
        echo(f"cache and {where} are in sync ({plural(len(status.paths), 'path')}).")
