"""The lock of every commit in a scope: what `gc` keeps and `push --all-commits` sends.

Scopes: `workspace` (no history: the caller adds the current lock), `branches` (every commit
of every local branch, and HEAD), `all-commits` (every ref and the reflog). Each distinct
version of the lock file is parsed once; a damaged or foreign one is passed over.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.git import git
from pipeline.core.lockfile import LOCK_NAME, Lock, parse_lock_text
from pipeline.errors import DataError

SCOPES = ("workspace", "branches", "all-commits")


def locks_in(root: Path, scope: str) -> Iterator[Lock]:
    """The lock of every commit in scope (each distinct version once)."""
    if scope == "workspace":
        return
    found = git(root, "rev-parse", "--show-toplevel")
    if found is None:
        return
    top = Path(found.strip())
    lock_path = os.path.relpath(root.resolve() / LOCK_NAME, top)
    # HEAD: a detached checkout is kept too; --full-history: commits behind a merge as well
    refs = ["--branches", "HEAD"] if scope == "branches" else ["--all", "--reflog"]
    revs = git(top, "rev-list", "--full-history", *refs, "--", lock_path) or ""
    blobs = {line for rev in revs.split() if (line := _blob(top, rev, lock_path))}
    for blob in sorted(blobs):
        text = git(top, "cat-file", "blob", blob)
        try:  # within the input limits: an old commit's lock may be a YAML bomb
            yield parse_lock_text(text or "")
        except DataError:
            continue  # an old, damaged or foreign lock protects nothing


def _blob(root: Path, rev: str, path: str) -> str | None:
    out = git(root, "rev-parse", "--verify", "--quiet", f"{rev}:{path}")
    return out.strip() if out else None
