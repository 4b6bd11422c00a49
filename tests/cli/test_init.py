"""`pipeline init` starts a project that `status` accepts and `repro` runs, and overwrites
nothing; `pipeline completion` prints a shell's completion script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.support import _error, _ok
from tests.conftest import Project


@pytest.fixture
def empty(tmp_path: Path) -> Project:
    """An empty directory, not a git repository."""
    root = tmp_path / "empty" / "proj"
    root.mkdir(parents=True)
    return Project(root.resolve())


@pytest.mark.parametrize("dvc", [False, True], ids=["mlproject", "dvc"])
def test_init_in_an_empty_directory_gives_a_project_that_runs(empty: Project, dvc: bool) -> None:
    _ok(empty.cli("init", *(["--dvc"] if dvc else [])))
    assert empty.exists("dvc.yaml" if dvc else "MLproject")
    assert not empty.exists("MLproject" if dvc else "dvc.yaml")
    status = _ok(empty.cli("status", "--json"))
    assert json.loads(status.stdout)  # the starter's stages, all new
    _ok(empty.cli("repro"))
    assert json.loads(empty.read("metrics/scores.json")) == {"score": 30}
    assert "up to date" in _ok(empty.cli("status")).stdout
    # a param change reruns only the stage that uses it
    empty.write("params.yaml", empty.read("params.yaml").replace("factor: 3", "factor: 5"))
    done = _ok(empty.cli("repro"))
    assert "✓ train" in done.stdout and "✓ prepare" not in done.stdout
    assert json.loads(empty.read("metrics/scores.json")) == {"score": 50}


def test_init_in_a_git_repository_keeps_outputs_and_state_out_of_git(
    make_project: Callable[..., Project],
) -> None:
    repo = make_project("repo")
    repo.write(".gitignore", "*.log\n")
    _ok(repo.cli("init"))
    _ok(repo.cli("repro"))
    repo.git("add", "-A")
    committed = repo.git("ls-files").split()
    tracked = [".gitignore", ".pipeline/.gitignore", "MLproject", "params.yaml", "pipeline.lock"]
    assert sorted(committed) == tracked
    assert repo.read(".gitignore").startswith("*.log\n")  # the user's lines are kept


@pytest.mark.parametrize("existing", ["MLproject", "dvc.yaml", "params.yaml"])
def test_init_refuses_to_overwrite_and_names_what_exists(empty: Project, existing: str) -> None:
    empty.write(existing, "mine\n")
    lines = _error(empty.cli("init"), 2)
    assert existing in lines[0] and "overwrites nothing" in lines[0]
    assert empty.read(existing) == "mine\n"
    assert sorted(p.name for p in empty.root.iterdir()) == [existing]  # nothing written


def test_a_second_init_refuses(empty: Project) -> None:
    _ok(empty.cli("init"))
    before = {p.name: p.read_bytes() for p in empty.root.iterdir() if p.is_file()}
    lines = _error(empty.cli("init"), 2)
    assert "MLproject, params.yaml" in lines[0]
    assert {p.name: p.read_bytes() for p in empty.root.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script(empty: Project, shell: str) -> None:
    script = _ok(empty.cli("completion", shell)).stdout
    assert "_PIPELINE_COMPLETE" in script


def test_the_bash_script_completes_command_names(empty: Project) -> None:
    script = _ok(empty.cli("completion")).stdout
    ask = "COMP_WORDS=(pipeline ini); COMP_CWORD=1; _pipeline_completion pipeline"
    shown = 'printf "%s\\n" "${COMPREPLY[@]}"'
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    done = subprocess.run(
        ["bash", "-c", f"{script}\n{ask}; {shown}"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": path},  # bash asks the `pipeline` of this environment
    )
    assert "init" in done.stdout.split(), (done.stdout, done.stderr)
