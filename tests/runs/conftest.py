"""Fixtures of the run store tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.runs.runstore import RunStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    """A new run store in `tmp_path/.pipeline`, closed after the test."""
    opened = RunStore.for_project(tmp_path / ".pipeline")
    yield opened
    opened.close()
