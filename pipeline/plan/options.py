"""What to plan: the options of planning, shared by `status`, `repro` and `run`.

Kept apart from `decisions.py` so that the command line can read them without loading the
planner (see `core/options.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.options import option

ENV_MANAGERS = ("declared", "local")


@dataclass(frozen=True, kw_only=True)
class PlanOptions:
    """What to plan: which project, which stages, what is forced, what may be restored."""

    root: Path | str = "."  # the project: a directory in it, or its manifest file
    targets: tuple[str, ...] = option(
        default=(), metavar="[STAGE]...", help="The stages to plan (default: all)."
    )
    force: bool = option(
        "-f",
        "--force",
        default=False,
        help="Run the selected stages (targets and their upstream) even if up to date.",
    )
    single_item: bool = option(
        "-s", "--single-item", default=False, help="Only the named stages, not their upstream."
    )
    downstream: bool = option(
        "--downstream",
        default=False,
        help="The named stages and everything that depends on them.",
    )
    force_downstream: bool = option(
        "--force-downstream",
        default=False,
        help="Rerun every stage downstream of one that runs.",
    )
    run_cache: bool = option(
        "--no-run-cache",
        default=True,
        negative=True,
        help="Run stages even when the cache holds a run with the same inputs.",
    )
    env_manager: str = option(
        "--env-manager",
        default=ENV_MANAGERS[0],
        choices=ENV_MANAGERS,
        help="`local`: run every stage in the current environment, ignoring declared envs.",
    )
