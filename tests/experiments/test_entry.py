"""MLflow entry points through the API: a failed env build is recorded as a failed run, and a
format spec that does not fit its value is a usage error.
"""

from __future__ import annotations

import pytest

from pipeline import api
from pipeline.errors import EnvironmentSetupError, UsageError
from tests.conftest import Project

# Every test here gets its own XDG_CACHE_HOME (conftest's `xdg_cache_home`).
pytestmark = pytest.mark.usefixtures("xdg_cache_home")


def test_an_entry_point_whose_env_cannot_be_built_is_recorded_failed(project: Project) -> None:
    project.write("python_env.yaml", "python: '2.1'\n")
    project.manifest(
        "name: m\npython_env: python_env.yaml\nentry_points:\n  main:\n"
        "    parameters:\n      a: {type: float, default: 1}\n    command: 'echo {a}'\n"
    )
    with pytest.raises(EnvironmentSetupError, match="only Python 3 environments can be built"):
        api.run_entry(project.root, "main")
    [recorded] = api.runs(project.root)
    assert (recorded.kind, recorded.name, recorded.status) == ("entry", "main", "failed")


def test_an_entry_point_format_spec_that_does_not_fit_is_a_usage_error(
    project: Project,
) -> None:
    project.manifest(
        "name: m\nentry_points:\n  main:\n    parameters:\n      a: string\n"
        "    command: 'echo {a:.2f}'\n"
    )
    with pytest.raises(UsageError, match=r"\{a:\.2f\} does not fit the value 'x'"):
        api.run_entry(project.root, "main", ("a=x",), env_manager="local")
