"""Plot files obey the project's path rule: nothing outside the project is read into a page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline import plots
from pipeline.errors import ManifestError, OutsideProject
from pipeline.load.project import load_project
from tests.conftest import Project

SECRET = "user,password\nroot,hunter2\n"


@pytest.fixture
def secret(project: Project) -> Path:
    """A data file next to the project, outside it."""
    path = project.root.parent / "secret.csv"
    path.write_text(SECRET)
    return path


def _manifest(project: Project, text: str) -> None:
    project.write("dvc.yaml", text)


@pytest.mark.parametrize(
    "entry",
    [
        "  - ../secret.csv\n",
        "  - {SECRET}\n",
        "  - ./data/../../secret.csv\n",
        "  - leak:\n      y: {{../secret.csv: password}}\n",
        "  - leak:\n      y: {{{SECRET}: password}}\n",
    ],
)
def test_a_path_out_of_the_project_names_the_manifest(
    project: Project, secret: Path, entry: str
) -> None:
    _manifest(project, "plots:\n" + entry.format(SECRET=secret))
    with pytest.raises(ManifestError, match=r"^dvc\.yaml: plot .*outside the project|absolute"):
        plots.definitions(load_project(project.root))


def test_a_stage_plot_out_of_the_project_is_refused(project: Project, secret: Path) -> None:
    os.symlink(secret.parent, project.root / "up")
    _manifest(project, "stages:\n  s:\n    cmd: echo\n    plots:\n      - up/secret.csv\n")
    with pytest.raises(OutsideProject, match=r"^stage s: plot up/secret\.csv: outside"):
        plots.definitions(load_project(project.root))


@pytest.mark.parametrize(
    ("entry", "link"), [("link.csv", "link.csv"), ("curves", "curves/link.csv")]
)
def test_a_symlink_leading_out_is_refused(
    project: Project, secret: Path, entry: str, link: str
) -> None:
    project.write("curves/ok.csv", "v\n1\n")
    os.symlink(secret, project.root / link)
    _manifest(project, f"plots:\n  - {entry}\n")
    with pytest.raises(OutsideProject, match=rf"^dvc\.yaml: plot {link}: .*symlink to"):
        plots.definitions(load_project(project.root))


def test_a_linked_folder_leading_out_is_refused(project: Project, secret: Path) -> None:
    os.symlink(secret.parent, project.root / "curves")
    _manifest(project, "plots:\n  - curves\n")
    with pytest.raises(OutsideProject, match=r"^dvc\.yaml: plot curves: .*symlink to"):
        plots.definitions(load_project(project.root))


def test_the_workspace_never_reads_outside(project: Project, secret: Path) -> None:
    os.symlink(secret, project.root / "link.csv")
    read = plots.workspace_revision(project.root).read
    for path in ("link.csv", "../secret.csv", str(secret)):
        with pytest.raises(OutsideProject):
            read(path)


def test_a_symlink_inside_and_a_spelled_out_path_are_fine(project: Project) -> None:
    project.write("data/loss.csv", "loss\n3\n2\n")
    os.symlink("data/loss.csv", project.root / "link.csv")
    _manifest(project, "plots:\n  - link.csv\n  - ./data//loss.csv\n")
    charts = plots.collect(load_project(project.root), [plots.workspace_revision(project.root)])
    assert [c.plot.id for c in charts] == ["link.csv", "data/loss.csv"]
    assert all(not c.missing for c in charts)
