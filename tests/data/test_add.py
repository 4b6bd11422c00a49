"""`pipeline add`: raw data no stage produces, hashed into the cache and recorded in the lock;
and what it refuses.
"""

from __future__ import annotations

import pytest

from pipeline import api
from pipeline.api import ReproOptions, checkout, repro
from tests.conftest import Project


def test_add_tracks_raw_data(p: Project) -> None:
    for i in range(3):
        p.write(f"data/raw/{i}.csv", f"row {i}\n")
    done = p.cli("add", "data/raw")
    assert done.returncode == 0, done.stderr
    assert "added: data/raw (3 files" in done.stdout
    data = p.lock()["data"]["data/raw"]
    assert (data["nfiles"], data["isdir"]) == (3, True)
    assert "/data/raw" in p.read(".gitignore").splitlines()
    edited = p.root / "data/raw/1.csv"
    assert edited.stat().st_nlink == 1  # a private copy (no reflink on this disk): no shared inode
    with open(edited, "w") as fh:  # rewritten in place, as a notebook or root would
        fh.write("changed\n")
    status = p.cli("status").stdout
    assert "tracked data data/raw modified" in status
    report = checkout(p.root, ("data/raw",))
    assert report.restored == ["data/raw"]
    assert p.read("data/raw/1.csv") == "row 1\n"
    assert "tracked" not in p.cli("status").stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["model.txt"], 2, "is an output of stage 'train'"),
        (["nope.csv"], 4, "nope.csv does not exist"),
        (["../outside.txt"], 2, "is outside the project"),
    ],
)
def test_add_errors(p: Project, args: list[str], code: int, message: str) -> None:
    repro(ReproOptions(root=p.root))
    done = p.cli("add", *args)
    assert done.returncode == code
    assert message in done.stderr


def test_add_inside_tracked_directory_does_not_leave_conflicting_records(
    project: Project,
) -> None:
    project.manifest({"stages": {}})
    project.write("data/x.txt", "x1\n")
    project.write("data/y.txt", "y1\n")
    assert project.cli("add", "data").returncode == 0
    tracked = project.lock()["data"]
    assert list(tracked) == ["data"]
    (project.root / "data/x.txt").unlink()
    project.write("data/x.txt", "x2\n")
    done = project.cli("add", "data/x.txt")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == (
        "error: data/x.txt is inside data, which is tracked too\n"
        "hint: track one of them: `pipeline add data` covers both\n"
    )
    assert project.lock()["data"] == tracked  # refused: no second, conflicting record
    assert api.checkout(project.root).restored == ["data"]
    assert project.read("data/x.txt") == "x1\n"
    assert project.plan().data == ()


def test_add_refuses_the_state_directory(project: Project) -> None:
    project.manifest({"stages": {}})
    project.write("data.txt", "d\n")
    assert project.cli("add", "data.txt").returncode == 0
    done = project.cli("add", ".pipeline")
    assert done.returncode != 0
    assert "/.pipeline" not in (project.root / ".gitignore").read_text()
