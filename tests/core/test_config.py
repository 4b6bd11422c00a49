"""Project settings (`.pipeline/config.yaml`, `config.local.yaml`): the `env:` section is
validated, and an error names the file it comes from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ManifestError
from tests.env.support import _pipeline

# Tests marked `usefixtures("cache")` get their own env cache and offline pip settings.


@pytest.mark.usefixtures("cache")
def test_config_env_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    from pipeline.core.config import load_config

    state = tmp_path / ".pipeline"
    state.mkdir()
    (state / "config.yaml").write_text("env: uv\n")
    with pytest.raises(ManifestError):
        load_config(state)


@pytest.mark.usefixtures("cache")
def test_config_error_names_the_local_file(tmp_path: Path) -> None:
    from pipeline.core.config import load_config

    state = tmp_path / ".pipeline"
    state.mkdir()
    (state / "config.local.yaml").write_text("env: {installer: bogus}\n")
    with pytest.raises(ManifestError) as caught:
        load_config(state)
    assert "config.local.yaml" in caught.value.message


def test_unknown_conda_tool_in_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".pipeline").mkdir()
    (tmp_path / ".pipeline" / "config.yaml").write_text("env: {conda: anaconda}\n")
    (tmp_path / "MLproject").write_text("stages:\n  a: {cmd: 'true'}\n")
    done = _pipeline(tmp_path, "status")
    assert done.returncode == 2
    assert "env.conda 'anaconda' is not one of rattler, conda, mamba, micromamba" in done.stderr


def test_the_executor_section(tmp_path: Path) -> None:
    from pipeline.core.config import ExecutorSettings, load_config

    state = tmp_path / ".pipeline"
    state.mkdir()
    assert load_config(state).executor == ExecutorSettings("local", None, 2)
    (state / "config.yaml").write_text("executor: {kind: dask, address: 'tcp://h:8786'}\n")
    (state / "config.local.yaml").write_text("executor: {retries: 0}\n")
    assert load_config(state).executor == ExecutorSettings("dask", "tcp://h:8786", 0)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{kind: slurm}", "executor.kind 'slurm' is not one of local, dask"),
        ("{kind: dask, retries: -1}", "executor.retries must be a whole number >= 0"),
        ("{kind: dask, address: 8786}", "executor.address must be a string"),
    ],
)
def test_a_wrong_executor_setting_names_the_file(
    tmp_path: Path, section: str, message: str
) -> None:
    from pipeline.core.config import load_config

    state = tmp_path / ".pipeline"
    state.mkdir()
    (state / "config.yaml").write_text(f"executor: {section}\n")
    with pytest.raises(ManifestError) as caught:
        load_config(state)
    assert message in caught.value.message and "config.yaml" in caught.value.message


def test_the_dask_executor_without_an_address_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / ".pipeline").mkdir()
    (tmp_path / ".pipeline" / "config.yaml").write_text("executor: {kind: dask}\n")
    (tmp_path / "MLproject").write_text("stages:\n  a: {cmd: 'true > o', outs: [o]}\n")
    done = _pipeline(tmp_path, "repro")
    assert done.returncode == 2
    assert "the dask executor needs the scheduler's address" in done.stderr
