"""`pipeline run --dry`: each point's plan, where it would run; nothing runs or is recorded."""

from __future__ import annotations

from tests.cli.support import _error, _json, _ok
from tests.conftest import Project


def _snapshot(project: Project) -> dict[str, bytes]:
    """Every file of the workspace outside `.pipeline/` and `.git/`, with its bytes."""
    skip = (".pipeline", ".git")
    files = (p for p in project.root.rglob("*") if p.is_file())
    return {
        str(p.relative_to(project.root)): p.read_bytes()
        for p in files
        if p.relative_to(project.root).parts[0] not in skip
    }


def test_run_dry_shows_each_points_plan_and_runs_nothing(three: Project) -> None:
    before, runs = _snapshot(three), _json(three.cli("runs", "--json"))
    done = _ok(three.cli("run", "--dry", "--sweep", "train.lr=0.1,0.5"))
    first, second = done.stdout.split("point train.lr=0.5:")
    assert "point train.lr=0.1:" in first and "train: up to date" in first
    assert "train: will run" in second and "param train.lr 0.1→0.5" in second
    assert "evaluate: runs if upstream changes its outputs" in second
    assert three.executions() == []
    assert _json(three.cli("runs", "--json")) == runs  # nothing recorded
    assert _snapshot(three) == before
    workspaces = three.root / ".pipeline" / "tmp" / "runs"
    assert not workspaces.exists() or list(workspaces.iterdir()) == []


def test_run_dry_of_one_override_and_its_errors(three: Project) -> None:
    done = _ok(three.cli("run", "--dry", "-p", "train.lr=0.3"))
    assert "point" not in done.stdout
    assert "param train.lr 0.1→0.3" in done.stdout
    assert "nothing was executed" in done.stdout
    assert three.executions() == []
    lines = _error(three.cli("run", "--dry", "-p", "train.lrr=1"), 2)
    assert "train.lr" in "\n".join(lines)  # did-you-mean, as a real run says
