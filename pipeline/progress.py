"""What a running `repro` prints: a header per stage, its streamed output, and a summary.

rich decides colour here: none when `NO_COLOR` is set or stdout is not a terminal. Stage output
is written to stdout byte for byte, never through rich, so progress bars and escapes survive.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape

from pipeline.execute import Outcome, RunResult, StageResult
from pipeline.plan import Decision
from pipeline.project import Stage

_OUTCOME_STYLE = {
    Outcome.RAN: "green",
    Outcome.UP_TO_DATE: "dim",
    Outcome.FAILED: "bold red",
    Outcome.SKIPPED: "yellow",
}


def console() -> Console:
    """A stdout console that never wraps stage names or paths mid-line."""
    return Console(highlight=False, soft_wrap=True)


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
    if not result.count(Outcome.RAN) and not result.failed:
        out.print(f"Everything is up to date ({len(result.results)} stages).", style="green")
        return
    parts = [f"[{_OUTCOME_STYLE[o]}]{n} {o.value}[/]" for o in Outcome if (n := result.count(o))]
    out.print("\n" + ", ".join(parts) + f" [dim]in {seconds:.2f}s[/]")
