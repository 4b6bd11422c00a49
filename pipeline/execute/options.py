"""How to execute a plan (`ExecOptions`), and the options of one `repro` (`ReproOptions`).

Kept apart from the executor so that `status` and the command line can read them without
loading it (see `core/options.py`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipeline.core.config import EXECUTORS
from pipeline.core.options import option
from pipeline.plan.options import PlanOptions


@dataclass(frozen=True, kw_only=True)
class ExecOptions:
    """How to run: CPU budget, and whether to go on with independent stages after a failure."""

    jobs: int = option(
        "-j",
        "--jobs",
        factory=lambda: os.cpu_count() or 1,
        metavar="N",
        minimum=1,
        help="Run up to N stages (or sweep points) at once [default: the CPU count].",
    )
    keep_going: bool = option(
        "-k",
        "--keep-going",
        default=False,
        help="After a failure, go on with independent stages.",
    )
    executor: str | None = option(
        "--executor",
        default=None,
        choices=EXECUTORS,
        help="Where stages run: `local`, or `dask` (a Dask cluster; data moves through the "
        "default remote) [default: executor.kind in .pipeline/config.yaml, else local].",
    )
    scheduler: str | None = option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="The Dask scheduler, e.g. tcp://HOST:8786 [default: executor.address].",
    )


@dataclass(frozen=True, kw_only=True)
class ReproOptions(PlanOptions, ExecOptions):
    """Options of `status`, `plan` and `repro`: what to plan, how to execute, what to record."""

    wait: bool = option(
        "--no-wait",
        default=True,
        negative=True,
        help="Fail at once if another pipeline process runs here.",
    )
    pull: bool = option(
        "--pull",
        default=False,
        help="First download from the default remote the data and outputs the selected "
        "stages need and this workspace lacks.",
    )
    record: bool = True  # write a run record to .pipeline/runs.db
    command: str = ""  # the command line, for the record (default: the API call)
