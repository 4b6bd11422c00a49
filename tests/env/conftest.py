"""Fixtures of the environment tests (the env cache itself, `cache`, is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.env import envkit


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    """A fresh local conda channel per test (milliseconds): tests may add packages to it."""
    pytest.importorskip("rattler")
    return envkit.make_channel(tmp_path, with_python=True)
