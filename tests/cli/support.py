"""Helpers shared by the command-line tests: checked results of a CLI call, and a sweep."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.conftest import Project


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(_ok(done).stdout)


def _error(done: subprocess.CompletedProcess[str], code: int) -> list[str]:
    """The error lines of a failed command (its stderr), after checking the exit code."""
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    return done.stderr.splitlines()


def _sweep(project: Project) -> tuple[Project, dict[str, Any]]:
    """`pipeline run --sweep train.lr=0.3,0.2,0.4 -j 3` in the three-stage project."""
    done = _ok(project.cli("run", "--sweep", "train.lr=0.3,0.2,0.4", "-j", "3"))
    runs = _json(project.cli("runs", "--json"))
    sweep = next(r for r in runs if r["kind"] == "sweep")
    points = {r["name"]: r for r in runs if r["parent_id"] == sweep["id"]}
    assert sorted(points) == ["train.lr=0.2", "train.lr=0.3", "train.lr=0.4"]
    return project, {"sweep": sweep, "points": points, "stdout": done.stdout}
