"""The managed `.gitignore` block: cached outputs are ignored by git, metrics kept in git are
not, the block neither grows nor loses an output, and every command that puts outputs in the
workspace writes it (a no-op `repro`, `checkout` and `pull` included).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from pipeline.api import ReproOptions, repro
from tests.conftest import Project, ran
from tests.servers import RemoteSpec, configure
from tests.store.support import _one_stage


def test_outputs_are_ignored_by_git_and_metrics_are_not(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    assert "/model.txt" in p.read(".gitignore").splitlines()
    assert "/score.txt" not in p.read(".gitignore")
    assert "model.txt" not in p.git("status", "--porcelain")


def test_gitignore_text_after_block_does_not_grow(project: Project) -> None:
    project.write("in.txt", "v1\n")
    project.manifest(_one_stage("cat in.txt > o1.txt", ["in.txt"], ["o1.txt"]))
    project.repro()
    ignore = project.root / ".gitignore"
    ignore.write_text(ignore.read_text() + "*.log\n")
    for n in (2, 3, 4):
        project.manifest(_one_stage(f"cat in.txt > o{n}.txt", ["in.txt"], [f"o{n}.txt"]))
        project.repro()
    assert ignore.read_text().endswith("*.log\n"), repr(ignore.read_text())


def test_gitignore_lists_output_when_parent_entry_is_dropped(project: Project) -> None:
    project.write("in.txt", "v1\n")
    cmd = "mkdir -p data && cat in.txt > data/a.txt"
    project.manifest(_one_stage(cmd, ["in.txt"], ["data"]))
    project.repro()
    project.manifest(_one_stage(cmd, ["in.txt"], ["data/a.txt"]))
    assert ran(project.repro()) == ["s"]
    check = subprocess.run(
        ["git", "check-ignore", "-q", "data/a.txt"], cwd=project.root, check=False
    )
    assert check.returncode == 0, "data/a.txt, a cached output, is not ignored by git"


def test_outputs_stay_ignored_in_a_project_in_a_subdirectory_of_its_repository(
    make_project: Callable[..., Project],
) -> None:
    repo = make_project("sub")
    project = Project(repo.root / "sub")
    project.root.mkdir()
    project.write("in.txt", "v1\n")
    project.manifest(_one_stage("cat in.txt > out.txt", ["in.txt"], ["out.txt"]), commit=False)
    project.repro()
    project.commit(message="v1")
    project.write("in.txt", "v2\n")
    assert ran(project.repro()) == ["s"]
    # the second repro keeps the block, though git names the file sub/.gitignore
    assert "/out.txt" in project.read(".gitignore").splitlines()
    assert "out.txt" not in project.git("ls-files")
    assert "out.txt" not in project.git("status", "--porcelain")


def test_a_no_op_repro_writes_the_block(p: Project) -> None:
    # A copied project (outputs, lock and state but no .gitignore) is up to date: nothing runs.
    repro(ReproOptions(root=p.root))
    (p.root / ".gitignore").unlink()
    done = p.cli("repro")
    assert done.returncode == 0, done.stderr
    assert "/model.txt" in p.read(".gitignore").splitlines()
    p.git("add", "-A")
    assert "model.txt" not in p.git("ls-files").splitlines()


def test_a_no_op_repro_leaves_an_up_to_date_gitignore_untouched(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    ignore = p.root / ".gitignore"
    before = ignore.stat().st_mtime_ns, ignore.stat().st_ino
    assert p.cli("repro").returncode == 0
    assert (ignore.stat().st_mtime_ns, ignore.stat().st_ino) == before


@pytest.mark.parametrize("command", ["checkout", "pull"])
def test_checkout_and_pull_write_the_block(
    p: Project, local_remote: RemoteSpec, command: str
) -> None:
    repro(ReproOptions(root=p.root))
    configure(p.root, local_remote)
    assert p.cli("push").returncode == 0
    (p.root / ".gitignore").unlink()
    (p.root / "model.txt").unlink()
    done = p.cli(command)
    assert done.returncode == 0, done.stderr
    assert (p.root / "model.txt").exists()
    assert "/model.txt" in p.read(".gitignore").splitlines()
