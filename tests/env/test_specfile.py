"""Spec files (`python_env.yaml`, requirements files, `environment.yml`): parsing, includes,
paths relative to the spec, and errors that name the file and line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.env.specfile import read_spec
from pipeline.errors import EnvironmentSetupError, ManifestError
from tests.conftest import Project
from tests.env.support import SHOW_PY, EnvCache, output, repro_ok, show_stage

# Tests marked `usefixtures("cache")` get their own env cache and offline pip settings.

# --- spec files ---------------------------------------------------------------------------


def test_python_env_spec_with_includes(tmp_path: Path) -> None:
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "base.txt").write_text("six\n-c pins.txt\n")
    (tmp_path / "envs" / "pins.txt").write_text("six==1.16.0\n")
    spec = tmp_path / "envs" / "env.yaml"
    spec.write_text(
        "python: '3.11'\nbuild_dependencies: [pip]\ndependencies: [attrs>=23, -r base.txt]\n"
    )
    request = read_spec("python_env", spec)
    assert request.python == "3.11"
    assert request.requirements == ("pip", "attrs>=23", f"-r {tmp_path / 'envs' / 'base.txt'}")
    assert [name for name, _ in request.files] == ["<spec>", "-r base.txt", "-c pins.txt"]


def test_include_loops_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\n")
    (tmp_path / "b.txt").write_text("-r a.txt\n")
    with pytest.raises(ManifestError, match="includes itself"):
        read_spec("requirements", tmp_path / "a.txt")


def test_conda_spec(tmp_path: Path) -> None:
    spec = tmp_path / "environment.yml"
    spec.write_text(
        "name: ignored\nchannels: [conda-forge, ./chan, https://x.org/c]\n"
        "dependencies: [python=3.11, numpy, {pip: [requests, -r extra.txt]}]\n"
        "variables: {A: 1}\n"
    )
    (tmp_path / "extra.txt").write_text("six\n")
    request = read_spec("conda_env", spec)
    assert request.channels == ("conda-forge", (tmp_path / "chan").as_uri(), "https://x.org/c")
    assert request.conda == ("python=3.11", "numpy")
    assert request.pip == ("requests", f"-r {tmp_path / 'extra.txt'}")
    assert request.variables == {"A": "1"}


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("python_env", "python: 3.10\n", "as a string"),
        ("python_env", "dependncies: [x]\n", "unknown key 'dependncies'"),
        ("python_env", "dependencies: numpy\n", "expected a list"),
        ("conda_env", "dependencies: [{pipp: [x]}]\n", "match spec or {pip"),
        ("conda_env", "- a\n- b\n", "must be a mapping"),
    ],
)
def test_bad_specs_name_file_and_line(tmp_path: Path, kind: str, text: str, message: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    with pytest.raises(ManifestError) as info:
        read_spec(kind, spec)
    assert "spec.yaml:" in info.value.message and message in info.value.message


def test_missing_spec_is_an_environment_error(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentSetupError, match="cannot read environment spec"):
        read_spec("requirements", tmp_path / "nope.txt")


# -- spec parsing -----------------------------------------------------------------------------


@pytest.mark.usefixtures("cache")
def test_a_labelled_channel_name_stays_a_channel_name(tmp_path: Path) -> None:
    spec = tmp_path / "environment.yml"
    spec.write_text("channels: [conda-forge/label/dev, ./local]\ndependencies: [hello]\n")
    channels = read_spec("conda_env", spec).channels
    assert channels[0] == "conda-forge/label/dev"
    assert channels[1] == (tmp_path / "local").as_uri()


@pytest.mark.usefixtures("cache")
def test_float_python_hint_repeats_the_version_as_written(tmp_path: Path) -> None:
    spec = tmp_path / "python_env.yaml"
    spec.write_text("python: 3.10\ndependencies: [alpha]\n")
    with pytest.raises(ManifestError) as caught:
        read_spec("python_env", spec)
    assert '"3.10"' in caught.value.message + (caught.value.hint or "")


@pytest.mark.usefixtures("cache")
def test_a_python_range_is_a_spec_error_naming_the_spec(project: Project) -> None:
    project.write("python_env.yaml", 'python: ">=3.10"\ndependencies: [alpha]\n')
    project.manifest({"python_env": "python_env.yaml", "stages": {"a": {"cmd": "true"}}})
    done = project.cli("status")
    assert done.returncode == 2, output(done)
    assert "python_env.yaml:1" in done.stderr


# -- paths relative to the spec, and a missing spec --------------------------------------------


@pytest.mark.usefixtures("cache")
def test_a_local_wheel_path_is_relative_to_the_spec(
    project: Project, wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = project.root / "dist"
    dist.mkdir()
    wheel = dist / "gamma-1.0-py3-none-any.whl"
    wheel.write_bytes((wheels / wheel.name).read_bytes())
    project.write("envs/pe.yaml", "dependencies:\n  - ../dist/gamma-1.0-py3-none-any.whl\n")
    project.manifest(
        {
            "python_env": "envs/pe.yaml",
            "stages": {"a": {"cmd": "python -c 'import gamma' > a.txt", "outs": ["a.txt"]}},
        }
    )
    monkeypatch.chdir(project.root)  # what the CLI does (`-C`)
    repro_ok(project)


def test_missing_spec_file_exits_3_naming_it(project: Project, cache: EnvCache) -> None:
    project.write("show.py", SHOW_PY)
    project.manifest({"python_env": "envs/nope.yaml", "stages": {"a": show_stage("a")}})
    done = project.cli("repro")
    assert done.returncode == 3, output(done)
    assert "nope.yaml" in done.stderr
    assert "Traceback" not in output(done)
    assert cache.published() == {}
