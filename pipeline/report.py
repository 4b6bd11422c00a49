"""Rendering for people and scripts: status, dry-run plans, stage progress, summaries, the DAG.

rich decides colour: none when `NO_COLOR` is set or stdout is not a terminal. Stage output is
written to stdout byte for byte, never through rich, so progress bars and escapes survive.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

from pipeline.execute import Outcome, RunResult, StageResult
from pipeline.plan import Action, Decision, Plan, topological_order
from pipeline.project import Project, Stage

_STYLE = {
    Action.RUN: "yellow",
    Action.AFTER_UPSTREAM: "cyan",
    Action.UP_TO_DATE: "green",
}
_OUTCOME_STYLE = {
    Outcome.RAN: "green",
    Outcome.UP_TO_DATE: "dim",
    Outcome.FAILED: "bold red",
    Outcome.SKIPPED: "yellow",
}


def console(stderr: bool = False) -> Console:
    """A console that never wraps stage names or paths mid-line."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def status_text(out: Console, plan: Plan) -> None:
    """`pipeline status`: each stale stage with its reasons, then a one-line verdict."""
    stale = plan.stale
    for decision in stale:
        _decision(out, decision)
    fresh = len(plan.order) - len(stale)
    if not stale:
        out.print(f"[green]Everything is up to date[/] ({fresh} stages).")
    else:
        out.print(f"\n{len(stale)} of {len(plan.order)} stages need to run; {fresh} up to date.")


def dry_run_text(out: Console, plan: Plan) -> None:
    """`pipeline repro --dry`: every selected stage in order, with what would happen."""
    for name in plan.order:
        _decision(out, plan.decisions[name])
    count = sum(1 for d in plan.stale if d.action is Action.RUN)
    out.print(f"\nDry run: {count} would run, nothing was executed.")


def _decision(out: Console, decision: Decision) -> None:
    label = {
        Action.RUN: "will run",
        Action.AFTER_UPSTREAM: "runs if upstream changes its outputs",
        Action.UP_TO_DATE: "up to date",
    }[decision.action]
    out.print(f"[bold]{escape(decision.stage)}[/]: [{_STYLE[decision.action]}]{label}[/]")
    for reason in decision.reasons:
        out.print(f"    {escape(str(reason))}")


def plan_json(plan: Plan) -> str:
    """Machine-readable status: every selected stage with its action and reasons."""
    stages = [plan.decisions[name].to_json() for name in plan.order]
    return json.dumps({"up_to_date": not plan.stale, "stages": stages}, indent=2)


class ConsoleEvents:
    """Prints a header per stage, streams its output, and notes what was skipped."""

    def __init__(self, out: Console) -> None:
        self.out = out

    def stage_started(self, stage: Stage, decision: Decision) -> None:
        why = ", ".join(str(r) for r in decision.reasons)
        self.out.rule(f"[bold]{escape(stage.name)}[/] [dim]({escape(why)})[/]", align="left")
        for cmd in stage.cmd:
            self.out.print(f"[dim]$ {escape(cmd)}[/]")
        sys.stdout.flush()

    def stage_output(self, stage: Stage, chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    def stage_finished(self, result: StageResult) -> None:
        if result.outcome is Outcome.UP_TO_DATE and result.decision.reasons:
            why = ", ".join(str(r) for r in result.decision.reasons)
            self.out.print(f"[dim]{escape(result.stage)} is up to date ({escape(why)})[/]")
        elif result.outcome is Outcome.RAN:
            self.out.print(f"[green]✓[/] {escape(result.stage)} [dim]{result.seconds:.2f}s[/]")


def summary(out: Console, result: RunResult, seconds: float) -> None:
    """The closing line of a run: how many stages ran, were up to date, failed or skipped."""
    parts = [f"[{_OUTCOME_STYLE[o]}]{n} {o.value}[/]" for o in Outcome if (n := result.count(o))]
    out.print(
        ("" if not result.count(Outcome.RAN) else "\n")
        + ", ".join(parts)
        + f" [dim]in {seconds:.2f}s[/]"
    )


def dag_text(project: Project) -> str:
    """Each stage after the stages it reads from: `train <- prepare`."""
    order = topological_order(project)
    width = max((len(n) for n in order), default=0)
    lines = []
    for name in order:
        ups = sorted(project.graph.predecessors(name))
        lines.append(f"{name:<{width}}  <- {', '.join(ups)}" if ups else name)
    return "\n".join(lines)


def dag_mermaid(project: Project) -> str:
    """A Mermaid flowchart; node ids are indices so any stage name is safe as a label."""
    ids = {name: f"s{i}" for i, name in enumerate(project.stages)}
    lines = ["flowchart TD"]
    lines += [f'    {ids[n]}["{_mermaid_label(n)}"]' for n in project.stages]
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in sorted(project.graph.edges)]
    return "\n".join(lines)


def _mermaid_label(name: str) -> str:
    return name.replace('"', "#quot;")


def dag_dot(project: Project) -> str:
    """A Graphviz digraph."""
    lines = ["digraph pipeline {", "    rankdir=TB;"]
    lines += [f"    {json.dumps(n)};" for n in project.stages]
    lines += [f"    {json.dumps(a)} -> {json.dumps(b)};" for a, b in sorted(project.graph.edges)]
    return "\n".join([*lines, "}"])


def error_line(out: Console, message: str, hint: str | None) -> None:
    """One clear line for a user error, plus its hint."""
    out.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        out.print(f"[dim]hint:[/] {escape(hint)}")


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
