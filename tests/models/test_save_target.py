"""`pipeline.models.save` replaces only what it wrote: a folder of the user's files, the current
directory, the project (and their parents) are refused and left whole; a new path, an empty
folder or one of its own packages is written as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pipeline.models as pm
from pipeline.errors import ModelError
from tests.models.support import fitted_pipeline, frame


def save(target: Path | str) -> pm.ModelInfo:
    return pm.save(fitted_pipeline(), target, sample=frame())


def test_a_folder_of_the_users_files_is_refused_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "userdir"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work\n")
    with pytest.raises(ModelError, match="not a model package") as caught:
        save(folder)
    assert caught.value.hint
    assert (folder / "thesis.tex").read_text() == "years of work\n"
    assert [p.name for p in tmp_path.iterdir()] == ["userdir"]  # no temp dir left behind


def test_the_current_directory_and_its_parents_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text("print('hi')\n")
    monkeypatch.chdir(work)
    for target in (".", work, tmp_path):
        with pytest.raises(ModelError, match="current directory or project"):
            save(target)
    assert (work / "train.py").is_file()


def test_the_project_root_is_refused_even_when_it_is_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    (project / ".pipeline").mkdir(parents=True)
    with pytest.raises(ModelError):
        save(project)  # found by its state folder
    other = tmp_path / "elsewhere"
    (other / "src").mkdir(parents=True)
    monkeypatch.setenv("PIPELINE_ROOT", str(other))
    with pytest.raises(ModelError, match="current directory or project"):
        save(other)  # the stage's project, as the scheduler passes it
    assert (project / ".pipeline").is_dir() and (other / "src").is_dir()


def test_a_package_another_tool_wrote_is_not_replaced(tmp_path: Path) -> None:
    mlflows = tmp_path / "m"
    mlflows.mkdir()
    (mlflows / "MLmodel").write_text(json.dumps({"flavors": {"python_function": {}}}))
    with pytest.raises(ModelError, match="not a model package"):
        save(mlflows)
    file = tmp_path / "f"
    file.write_text("data\n")
    with pytest.raises(ModelError, match="not a model package"):
        save(file)
    assert file.read_text() == "data\n"


def test_new_empty_and_own_targets_are_written(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (save(empty).path / "MLmodel").is_file()
    assert (save(empty).path / "MLmodel").is_file()  # its own package: replaced
    assert (save(tmp_path / "new" / "m").path / "model.skops").is_file()
