"""`pipeline checkout RUN` as users run it, in a subprocess: by id or name, refusing to overwrite
uncommitted params edits unless `--force`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.support import _error, _ok, _sweep
from tests.conftest import Project
from tests.experiments.support import PARAMS_TEXT


@pytest.fixture
def swept(three: Project) -> tuple[Project, dict[str, Any]]:
    """The three-stage project after a sweep, for tests that change it."""
    return _sweep(three)


# -- checkout RUN ------------------------------------------------------------------------------


def test_checkout_run_brings_the_model_and_refuses_uncommitted_params_edits(
    swept: tuple[Project, dict[str, Any]],
) -> None:
    project, found = swept
    project.clear_executions()
    chosen = found["points"]["train.lr=0.4"]["id"]
    done = _ok(project.cli("checkout", chosen))
    assert f"applied run {chosen}: its params and lock" in done.stdout
    assert project.read("model.txt") == "RAW DATA\nlr=0.4\n"
    assert project.read("params.yaml") == PARAMS_TEXT.replace("lr: 0.1", "lr: 0.4")
    assert _ok(project.cli("status")).stdout.startswith("Everything is up to date")

    project.commit(message="take lr 0.4")
    edited = project.read("params.yaml").replace("tag: base", "tag: mine")
    project.params(edited)
    other = found["points"]["train.lr=0.2"]["id"]
    assert _error(project.cli("checkout", other), 2) == [
        "error: params.yaml has uncommitted edits that checking out the run would overwrite",
        "hint: commit or stash them first, or pass --force",
    ]
    assert project.read("params.yaml") == edited
    assert project.read("model.txt") == "RAW DATA\nlr=0.4\n"

    _ok(project.cli("checkout", other, "--force"))
    assert project.read("model.txt") == "RAW DATA\nlr=0.2\n"
    assert project.read("params.yaml") == PARAMS_TEXT.replace("lr: 0.1", "lr: 0.2")
    assert project.executions() == []


def test_checkout_by_run_name(swept: tuple[Project, dict[str, Any]]) -> None:
    project, _ = swept
    _ok(project.cli("checkout", "train.lr=0.3"))
    assert project.read("model.txt") == "RAW DATA\nlr=0.3\n"


def test_checkout_of_an_ambiguous_run_name_says_it_is_ambiguous(
    swept: tuple[Project, dict[str, Any]],
) -> None:
    project, _ = swept
    _ok(project.cli("run", "--param", "train.lr=0.3", "-n", "train.lr=0.3"))
    errors = _error(project.cli("checkout", "train.lr=0.3"), 2)
    assert "ambiguous" in errors[0]
