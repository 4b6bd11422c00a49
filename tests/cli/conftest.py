"""Fixtures of the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.support import _sweep
from tests.conftest import GIT_ENV, Project
from tests.experiments.support import setup


@pytest.fixture(scope="module")
def swept_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Project, dict[str, Any]]]:
    """The three-stage project after a sweep (`_sweep`), shared by the tests of a module that
    only read it (each CLI call costs ~0.25 s)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in GIT_ENV.items():
            mp.setenv(key, value)
        root = tmp_path_factory.mktemp("swept") / "proj"
        root.mkdir()
        project = Project(root.resolve())
        project.git("init", "-q")
        yield _sweep(setup(project))
