"""Metrics logged from code (`pipeline.track`) are plotted: a chart per key, a line per run."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests.conftest import Project

TRAIN = """\
import sys
from pipeline import track
rate = float(sys.argv[1])
for step in range(5):
    track.log_metric("loss", 1.0 / (1 + rate * step), step=step)
"""


def _charts(project: Project, *args: str) -> list[dict[str, Any]]:
    done = project.cli("plots", *args, "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


@pytest.fixture
def logged(project: Project) -> Project:
    project.write("train.py", TRAIN)
    project.write(
        "dvc.yaml",
        f"stages:\n  train:\n    cmd: {sys.executable} train.py ${{rate}}\n    deps: [train.py]\n",
    )
    project.params({"rate": 1})
    project.commit(message="a stage that logs")
    for rate in (1, 3):
        project.params({"rate": rate})
        done = project.cli("run", "--name", f"rate{rate}")
        assert done.returncode == 0, done.stderr
    return project


def test_diff_of_two_runs_overlays_their_logged_curves(logged: Project) -> None:
    (chart,) = _charts(logged, "diff", "rate1", "rate3")
    assert (chart["id"], chart["source"]) == ("loss", "logged from code")
    assert sorted(chart["revs"]) == ["rate1 (train)", "rate3 (train)"]
    values = chart["spec"]["data"]["values"]
    assert len(values) == 10 and {v["x"] for v in values} == set(range(5))


def test_show_draws_the_latest_runs_logged_metrics(logged: Project) -> None:
    (chart,) = _charts(logged, "show")
    assert chart["id"] == "loss" and chart["revs"] == ["rate3 (train)"]
    assert max(v["y"] for v in chart["spec"]["data"]["values"]) == 1.0
