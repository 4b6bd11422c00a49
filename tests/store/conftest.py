"""The cache tests' `p` (the same in tests/data): a project with params and train → score."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Project
from tests.store.support import cache_project


@pytest.fixture
def p(make_project: Callable[..., Project]) -> Project:
    return cache_project(make_project)
