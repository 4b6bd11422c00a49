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


def test_defaults_keep_their_text_and_a_format_spec_uses_the_typed_value(
    project: Project,
) -> None:
    """YAML reads `1e-1` as 0.1 and `1` as an int a float param makes 1.0; MLflow passes both
    as written. The text is read back from the manifest, also when the project comes from the
    memo (the second run); a format spec still formats the number."""
    project.manifest(
        "name: m\nentry_points:\n  main:\n    parameters:\n"
        "      a: {type: float, default: 1e-1}\n      b: {type: float, default: 1}\n"
        "      c: {type: int, default: 0x10}\n"
        "    command: 'echo {a} {b} {c} {a:.2f}'\n"
    )
    for _ in range(2):
        done = api.run_entry(project.root, "main", env_manager="local")
        assert done.command == "echo 1e-1 1 16 0.10"  # Python reads no 0x10: its value
    assert done.params == {"a": 0.1, "b": 1.0, "c": 16}
