"""`gc` while `pipeline run` works: nothing a running sweep may be writing is freed (objects
newer than its oldest lease, and what its workspaces' locks name), and what a killed sweep
left under `.pipeline/tmp/runs/` is cleared by the next `gc` or `run`, never a live one's.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipeline import api
from pipeline.core.hashing import digest_bytes
from pipeline.runs.workspaces import leased, runs_dir
from tests.conftest import Project
from tests.experiments.support import held_at_train, kill_group, leftovers, run, start_sweep
from tests.store.support import store_of


def _orphan(project: Project, data: bytes, *, age: float = 0) -> str:
    """An object no lock or run names, as one a stage just stored would be (or `age` s old)."""
    digest, store = digest_bytes(data), store_of(project)
    store.put_bytes(data, digest)
    if age:
        os.utime(store.path(digest), (time.time() - age,) * 2)
    return digest


@pytest.mark.slow
def test_gc_during_a_sweep_keeps_what_it_may_be_writing(project: Project, tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    held_at_train(project, barrier)
    sweep = start_sweep(project, barrier, "0.2,0.3")
    try:
        new = _orphan(project, b"stored by a running point")
        old = _orphan(project, b"left from long ago", age=3600)

        report = api.gc(project.root)

        assert report.live_experiments == 3  # the experiment and its two points
        assert old in report.removed and new not in report.removed
        assert report.kept_for_live >= 1 and store_of(project).has(new)
        assert len([n for n in leftovers(project) if not n.endswith(".lock")]) == 2
    finally:
        (barrier / "go").touch()
        _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 0, err
    points = [r for r in api.runs(project.root) if r.parent_id]
    assert len(points) == 2

    after = api.gc(project.root)

    assert new in after.removed and after.live_experiments == 0  # nothing runs any more
    for point in points:
        api.checkout(project.root, run=point.id)
        assert project.read("model.txt").endswith(f"lr={point.name.split('=')[1]}\n")
    assert not any(r.missing_objects for r in api.runs(project.root))


@pytest.mark.slow
def test_a_killed_sweeps_workspaces_go_with_the_next_gc_and_a_live_one_stays(
    project: Project, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    held_at_train(project, barrier)
    kill_group(start_sweep(project, barrier, "0.2,0.3"))
    dead = [n for n in leftovers(project) if not n.endswith(".lock")]
    assert len(dead) == 2  # the points' workspaces, left behind
    state = project.root / ".pipeline"
    with leased(state, "live"):
        (runs_dir(state) / "live").mkdir()

        dry = api.gc(project.root, dry=True)
        assert sorted(dry.workspaces_cleared) == sorted(dead)
        assert sorted(n for n in leftovers(project) if not n.endswith(".lock")) == sorted(
            [*dead, "live"]
        )
        report = api.gc(project.root)

        assert sorted(report.workspaces_cleared) == sorted(dead)
        assert leftovers(project) == ["live", "live.lock"]
        (runs_dir(state) / "live").rmdir()
    assert leftovers(project) == []


@pytest.mark.slow
def test_the_next_run_clears_a_killed_sweeps_workspaces(project: Project, tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    held_at_train(project, barrier)
    kill_group(start_sweep(project, barrier, "0.2,0.3"))
    assert len(leftovers(project)) >= 2
    (barrier / "go").touch()

    experiment = run(project, params=("train.lr=0.5",))

    assert experiment.points[0].succeeded
    assert leftovers(project) == []
