"""A project's source files: what an isolated workspace copies and a stage job ships.

What git lists (tracked, and untracked but not ignored), unless git does not list the manifest
(no git, or a project git ignores): then every file. The state directory and `.git` are never
sources, and neither is a directory git lists as one entry (a submodule, a nested repository).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.git import git

STATE_DIR = ".pipeline"


def source_files(root: Path, manifest: str) -> Iterator[str]:
    """Project-relative paths of the project's source files (see the module's docstring)."""
    listed = _git_files(root)
    files = listed if listed is not None and manifest in listed else _walk(root)
    for relpath in files:
        first = relpath.split("/")[0]
        path = root / relpath
        if first in (STATE_DIR, ".git") or not os.path.lexists(path):
            continue
        if path.is_dir() and not path.is_symlink():
            continue  # a submodule or a nested repository: git lists it as one entry
        yield relpath


def _git_files(root: Path) -> list[str] | None:
    out = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return None if out is None else sorted({p for p in out.split("\0") if p})


def _walk(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (STATE_DIR, ".git")]
        base = Path(dirpath).relative_to(root)
        found += [(base / name).as_posix() for name in filenames]
    return sorted(found)
