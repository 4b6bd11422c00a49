"""`pipeline run --dry`: the plan of every point of an experiment, with nothing executed.

Each point is planned where it would run, so the answer is the one a real run would act on:
a temporary isolated workspace with the point's overrides applied and the lock's outputs
checked out (as `run.py` prepares it), removed again before the next point. No command runs,
no run is recorded, and the user's files are never written.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.data.checkout import checkout
from pipeline.experiments.isolate import (
    isolated_session,
    make_workspace,
    remove_workspace,
    workspace_dir,
)
from pipeline.experiments.options import RunOptions
from pipeline.experiments.overrides import Point, apply, points
from pipeline.plan.decisions import Plan, make_plan
from pipeline.plan.selection import select
from pipeline.plan.session import Session, open_session
from pipeline.runs.record import new_run_id
from pipeline.runs.workspaces import leased


@dataclass(frozen=True)
class PointPlan:
    """What one point of the experiment would do: its overrides and its plan."""

    point: Point
    plan: Plan


def plan_experiments(options: RunOptions) -> tuple[PointPlan, ...]:
    """Validate the overrides and targets as `run` does, then plan every point."""
    with open_session(options.root) as session:
        grid = points(session.project, options.params, options.sweeps)
        if options.targets:
            select(session.project, options.targets)
        return tuple(_plan_point(session, point, options) for point in grid)


def _plan_point(session: Session, point: Point, options: RunOptions) -> PointPlan:
    name = f"dry-{new_run_id()}"
    root = workspace_dir(session.project, name)
    with leased(session.project.state_dir, name):  # gc and clear_dead leave it alone
        try:
            make_workspace(session.project, session.lock, name)
            apply(root, point.overrides)
            with isolated_session(session, root) as isolated:
                checkout(isolated, ())  # as a run starts: the lock's outputs in place
                return PointPlan(point, make_plan(isolated, options))
        finally:
            remove_workspace(root)
