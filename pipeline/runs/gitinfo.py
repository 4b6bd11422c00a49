"""Which code a run used: the git commit, branch and whether the work tree had edits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.git import git


@dataclass(frozen=True)
class GitState:
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


def git_state(root: Path) -> GitState:
    """One `git status` call; outside a repository (or without git) every field is None."""
    out = git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=no", timeout=30)
    if out is None:
        return GitState()
    commit = branch = None
    dirty = False
    for line in out.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split()[2]
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(maxsplit=2)[2]
            branch = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            dirty = True
    return GitState(commit, branch, dirty)
