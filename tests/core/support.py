"""Helpers shared by the memo tests (the stat memo, the project memo); no tests here."""

from __future__ import annotations

import os
import time
from pathlib import Path

HOUR_NS = 3600 * 10**9


def _age(path: Path, ns_ago: int = HOUR_NS) -> None:
    """Set a file's mtime into the past, so a hash taken now is not racy."""
    t = time.time_ns() - ns_ago
    os.utime(path, ns=(t, t))


def _age_tree(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".pipeline")]
        for name in filenames:
            _age(Path(dirpath) / name)
