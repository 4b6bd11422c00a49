"""Asking git: one call, and its output or None when there is no answer.

None covers every way git cannot answer: not a repository, no git installed, a failing command,
or one that hangs. Callers decide what that means for them (usually: behave as without git).
Output is text; bytes that are not UTF-8 (file names) survive as surrogate escapes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(
    root: Path,
    *args: str,
    stdin: str | None = None,
    succeeds: tuple[int, ...] = (0,),
    timeout: float = 120,
) -> str | None:
    """`git ARGS` run in `root`: its stdout if it exits with one of `succeeds`, else None."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=root,
            input=stdin,
            capture_output=True,
            encoding="utf-8",
            errors="surrogateescape",
            check=False,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode in succeeds else None


def repo_prefix(root: Path) -> str:
    """`root` relative to the top of its repository: "" there (or outside git), "sub/" below."""
    if (root / ".git").exists():  # the usual case, without asking git
        return ""
    out = git(root, "rev-parse", "--show-prefix", timeout=30)
    return out.strip() if out else ""


def root_commit(root: Path) -> str | None:
    """The repository's first commit: the same in every clone, so it names the project."""
    out = git(root, "rev-list", "--max-parents=0", "HEAD", timeout=30)
    roots = sorted(out.split()) if out else []
    return roots[0] if roots else None
