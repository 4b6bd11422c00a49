"""Metrics and params of a git revision or a run: uncached metrics read from git, ambiguous run
names.
"""

from __future__ import annotations

import shutil

import pytest

from pipeline import api
from pipeline.errors import AmbiguousRun
from tests.conftest import Project
from tests.experiments.support import run

# -- metrics and params of revisions and runs --------------------------------------------------


def test_metrics_of_a_revision_read_uncached_metrics_from_git(project: Project) -> None:
    project.params("lr: 0.1\n")
    stage = {"cmd": "echo '{\"score\": 1}' > m.json", "params": ["lr"]}
    project.manifest(
        {"name": "x", "stages": {"ev": {**stage, "metrics": [{"m.json": {"cache": False}}]}}},
        commit=False,
    )
    project.commit(message="stage")
    project.repro()
    project.commit(message="results, m.json in git")
    shutil.rmtree(project.root / ".pipeline" / "cache")
    assert api.metrics_show(project.root, "HEAD").values == {"m.json:score": 1}


def test_an_ambiguous_run_name_in_metrics_show_says_ambiguous(three: Project) -> None:
    first = run(three, params=("train.lr=0.2",), name="same").points[0].run_id
    second = run(three, params=("train.lr=0.3",), name="same").points[0].run_id
    with pytest.raises(AmbiguousRun, match="run 'same' is ambiguous") as ambiguous:
        api.metrics_show(three.root, "same")
    assert first in ambiguous.value.message and second in ambiguous.value.message
