"""What a running `repro` prints: stage headers, their output, a live view, the summary table.

With one job, a stage's output is written to stdout byte for byte, never through rich, so
progress bars and escapes survive. With several jobs, concurrent output is kept readable by
prefixing every complete line with its stage's name; in a terminal a live footer shows which
stages are running. rich decides colour: none when `NO_COLOR` is set or stdout is not a terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.markup import escape
from rich.text import Text

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table

from pipeline.cli.report import plural
from pipeline.execute.scheduler import Outcome, RunResult, StageResult
from pipeline.load.project import Stage
from pipeline.plan.decisions import Decision

_OUTCOME_STYLE = {
    Outcome.RAN: "green",
    Outcome.RESTORED: "blue",
    Outcome.UP_TO_DATE: "dim",
    Outcome.FAILED: "bold red",
    Outcome.SKIPPED: "yellow",
}
_PALETTE = ("cyan", "magenta", "blue", "green", "yellow", "bright_cyan", "bright_magenta")


def console() -> Console:
    """A stdout console that never wraps stage names or paths mid-line.

    NO_COLOR turns off every escape sequence, bold and dim included, not only colours.
    """
    plain = bool(os.environ.get("NO_COLOR"))
    return Console(highlight=False, soft_wrap=True, color_system=None if plain else "auto")


class StreamEvents:
    """One stage at a time: a header, then the stage's raw output, then a ✓ line."""

    def __init__(self, out: Console) -> None:
        self.out = out

    def __enter__(self) -> StreamEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def stage_started(self, stage: Stage, decision: Decision, attempt: int) -> None:
        self.out.rule(_header(stage, decision, attempt), align="left")
        for cmd in stage.cmd:
            self.out.print(f"[dim]$ {escape(cmd)}[/]")
        sys.stdout.flush()

    def stage_output(self, stage: Stage, chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    def stage_finished(self, result: StageResult) -> None:
        line = _finished_line(result)
        if line is not None:
            self.out.print(line)


class PrefixedEvents:
    """Several stages at once: every output line prefixed with its stage, plus a live footer."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._partial: dict[str, bytes] = {}
        self._colors: dict[str, str] = {}
        self._running: dict[str, float] = {}
        self._live: Live | None = None

    def __enter__(self) -> PrefixedEvents:
        # The footer redraws with cursor escapes: only on a real, colour-capable terminal.
        if _live_terminal(self.out):
            from rich.live import Live

            self._live = Live(self, console=self.out, refresh_per_second=4, transient=True)
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()

    def __rich__(self) -> Group:
        """The live footer: a spinner line per running stage with its elapsed time."""
        now = time.monotonic()
        with self._lock:
            running = sorted(self._running.items(), key=lambda item: item[1])
        from rich.spinner import Spinner

        return Group(
            *(
                Spinner("dots", Text.assemble((name, self._color(name)), f"  {now - t0:.0f}s"))
                for name, t0 in running
            )
        )

    def stage_started(self, stage: Stage, decision: Decision, attempt: int) -> None:
        with self._lock:
            self._running[stage.name] = time.monotonic()
            rest = self._partial.pop(stage.name, b"")  # a retry: end the last attempt's line
        if rest:
            self._print_line(stage.name, rest)
        self.out.print(
            Text.assemble(("▶ ", "bold"), Text.from_markup(_header(stage, decision, attempt)))
        )

    def stage_output(self, stage: Stage, chunk: bytes) -> None:
        with self._lock:
            data = self._partial.pop(stage.name, b"") + chunk
            *lines, rest = data.split(b"\n")
            if rest:
                self._partial[stage.name] = rest
        for line in lines:
            self._print_line(stage.name, line)

    def stage_finished(self, result: StageResult) -> None:
        with self._lock:
            rest = self._partial.pop(result.stage, b"")
            self._running.pop(result.stage, None)
        if rest:
            self._print_line(result.stage, rest)
        line = _finished_line(result)
        if line is not None:
            self.out.print(line)

    def _print_line(self, name: str, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rsplit("\r", 1)[-1]  # what a tty would show
        prefix = Text(f"{name} | ", style=self._color(name))
        self.out.print(Text.assemble(prefix, Text.from_ansi(text)))

    def _color(self, name: str) -> str:
        # setdefault is atomic under the GIL; a race could only pick a different colour
        return self._colors.setdefault(name, _PALETTE[len(self._colors) % len(_PALETTE)])


Events = StreamEvents | PrefixedEvents


@contextlib.contextmanager
def counter(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar for long work, on a terminal only; the callback takes (done, total)."""
    out = console()
    if not out.is_terminal or os.environ.get("NO_COLOR") or out.is_dumb_terminal:
        yield lambda done, total: None
        return
    from rich.progress import Progress

    with Progress(console=out, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def make_events(out: Console, jobs: int) -> Events:
    """Raw streaming for one job; prefixed lines (and a live footer on a terminal) for more."""
    return StreamEvents(out) if jobs <= 1 else PrefixedEvents(out)


def _header(stage: Stage, decision: Decision, attempt: int) -> str:
    why = ", ".join(str(r) for r in decision.reasons)
    retry = f" [yellow]attempt {attempt}[/]" if attempt > 1 else ""
    return f"[bold]{escape(stage.name)}[/] [dim]({escape(why)})[/]{retry}"


def _finished_line(result: StageResult) -> str | None:
    name = escape(result.stage)
    if result.outcome is Outcome.RAN:
        return f"[green]✓[/] {name} [dim]{result.seconds:.2f}s[/]"
    if result.outcome is Outcome.RESTORED:
        return f"[blue]↺[/] {name} restored from the cache [dim]{result.seconds:.2f}s[/]"
    if result.outcome is Outcome.FAILED:
        return f"[bold red]✗[/] {name} [red]{escape(str(result.error or 'failed'))}[/]"
    if result.outcome is Outcome.UP_TO_DATE and result.decision.reasons:
        why = ", ".join(str(r) for r in result.decision.reasons)
        return f"[dim]{name} is up to date ({escape(why)})[/]"
    return None


def summary(out: Console, result: RunResult, seconds: float) -> None:
    """The summary table of what ran, failed or was skipped, and a closing line."""
    eventful = [r for r in result.results if r.outcome is not Outcome.UP_TO_DATE]
    if not eventful and not any(r.decision.reasons for r in result.results):
        out.print(
            f"Everything is up to date ({plural(len(result.results), 'stage')}).", style="green"
        )
        return
    if eventful:
        out.print()
        out.print(_table(eventful))
    parts = [f"[{_OUTCOME_STYLE[o]}]{n} {o.value}[/]" for o in Outcome if (n := result.count(o))]
    out.print(", ".join(parts) + f" [dim]in {seconds:.2f}s[/]")


def _table(results: list[StageResult]) -> Table:
    from rich.table import Table

    table = Table(show_edge=False, box=None, pad_edge=False, header_style="bold")
    for column in ("stage", "outcome", "time", "why"):
        table.add_column(
            column, no_wrap=column != "why", justify="right" if column == "time" else "left"
        )
    for r in results:
        table.add_row(
            escape(r.stage),
            f"[{_OUTCOME_STYLE[r.outcome]}]{r.outcome.value}[/]",
            f"{r.seconds:.2f}s" if r.outcome in _TIMED else "",
            escape(_why(r)),
        )
    return table


_TIMED = (Outcome.RAN, Outcome.RESTORED, Outcome.FAILED)


def _why(result: StageResult) -> str:
    if result.outcome is Outcome.FAILED:
        return str(result.error or "failed")
    if result.outcome is Outcome.SKIPPED:
        return result.note
    return ", ".join(str(r) for r in result.decision.reasons)


class SweepView:
    """What a running sweep prints: each point's stages as they start and end, and the points
    running now with their stage and elapsed time.

    In a colour terminal the running points are a live footer. Elsewhere (a pipe, NO_COLOR)
    every line is plain, and a line every `heartbeat` seconds says which points still run, so
    that nothing stays silent for long. With one job the points run one at a time and their
    output is shown, each line prefixed with its point. A one-point experiment is shown as
    `repro` shows a run.
    """

    def __init__(self, out: Console, jobs: int, heartbeat: float = 30.0) -> None:
        self.out = out
        self.jobs = jobs
        self.heartbeat = heartbeat
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, float]] = {}  # point → (stage, started)
        self._colors: dict[str, str] = {}
        self._stack = contextlib.ExitStack()
        self._stop = threading.Event()

    def __enter__(self) -> SweepView:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._stack.close()

    def events_for(self, label: str, count: int) -> Events | PointEvents:
        """The events of one point; the first point of a sweep starts the running view."""
        if count == 1:
            events = make_events(self.out, self.jobs)
            self._stack.enter_context(events)
            return events
        with self._lock:
            first = not self._colors
            self._colors.setdefault(label, _PALETTE[len(self._colors) % len(_PALETTE)])
        if first:
            self._start()
        return PointEvents(self, label)

    def _start(self) -> None:
        if _live_terminal(self.out):
            from rich.live import Live

            live = Live(self, console=self.out, refresh_per_second=4, transient=True)
            self._stack.enter_context(live)
        else:
            threading.Thread(target=self._beat, name="sweep-heartbeat", daemon=True).start()

    def __rich__(self) -> Group:
        """The live footer: a spinner line per running point with its stage and elapsed time."""
        from rich.spinner import Spinner

        return Group(*(Spinner("dots", line) for line in self._lines()))

    def _lines(self) -> list[Text]:
        now = time.monotonic()
        with self._lock:
            running = sorted(self._running.items(), key=lambda item: item[1][1])
        return [
            Text.assemble((label, self.color(label)), f"  {stage}  {now - t0:.0f}s")
            for label, (stage, t0) in running
        ]

    def _beat(self) -> None:
        """Plain output: every `heartbeat` seconds, the points still running."""
        while not self._stop.wait(self.heartbeat):
            lines = self._lines()
            if lines:
                self.out.print(Text("… running: ") + Text(", ").join(lines))

    def started(self, label: str, stage: str) -> None:
        with self._lock:
            self._running[label] = (stage, time.monotonic())

    def finished(self, label: str) -> None:
        with self._lock:
            self._running.pop(label, None)

    def color(self, label: str) -> str:
        return self._colors.get(label, "")


def _live_terminal(out: Console) -> bool:
    """Whether a live view may redraw with cursor escapes: a real, colour-capable terminal."""
    return out.is_terminal and not out.is_dumb_terminal and not os.environ.get("NO_COLOR")


class PointEvents:
    """A sweep's point: a line per stage started and finished, labelled with the point, and
    with one job the stage's output lines, prefixed with the point."""

    def __init__(self, view: SweepView, label: str) -> None:
        self.view = view
        self.out = view.out
        self.label = label
        self._partial = b""  # one stage of a point runs at a time when its output is shown

    def stage_started(self, stage: Stage, decision: Decision, attempt: int) -> None:
        self.view.started(self.label, stage.name)
        self._end_line()  # a retry: end the last attempt's line
        header = Text.from_markup(_header(stage, decision, attempt))
        self.out.print(Text.assemble(("▶ ", "bold"), self._prefix(": "), header))

    def stage_output(self, stage: Stage, chunk: bytes) -> None:
        if self.view.jobs > 1:  # several points' output would interleave: their logs keep it
            return
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            self._print_line(line)

    def stage_finished(self, result: StageResult) -> None:
        self.view.finished(self.label)
        self._end_line()
        line = _finished_line(result)
        if line is not None:
            self.out.print(Text.assemble(self._prefix(" "), Text.from_markup(line)))

    def _end_line(self) -> None:
        rest, self._partial = self._partial, b""
        if rest:
            self._print_line(rest)

    def _print_line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rsplit("\r", 1)[-1]  # what a tty shows
        self.out.print(Text.assemble(self._prefix(" | "), Text.from_ansi(text)))

    def _prefix(self, end: str) -> Text:
        return Text(self.label + end, style=self.view.color(self.label))
