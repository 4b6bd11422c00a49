"""The options of `pipeline run`: those of planning and execution, plus overrides and a name.

Kept apart from `run.py` so that the command line can read them without loading the runner.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.options import option
from pipeline.execute.options import ExecOptions
from pipeline.plan.options import PlanOptions


@dataclass(frozen=True, kw_only=True)
class RunOptions(PlanOptions, ExecOptions):
    """`pipeline run`: what to plan and how to execute, plus the overrides and the run's name."""

    params: tuple[str, ...] = option(
        "-p",
        "--param",
        default=(),
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a param for this run (repeatable); `file.yaml:key=v` for other files.",
    )
    sweeps: tuple[str, ...] = option(
        "--sweep",
        default=(),
        multiple=True,
        metavar="KEY=A,B,...",
        help="Run once per value (repeatable: the grid of all combinations).",
    )
    name: str | None = option(
        "-n", "--name", default=None, help="A name for the run (sweep points add their values)."
    )
    command: str = ""  # the command line, for the record (default: the API call)
