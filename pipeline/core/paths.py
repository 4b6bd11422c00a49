"""Project-relative paths: normalisation, the "never outside the root" rule, containment tests.

Every path in a manifest is stored as a normalised POSIX path relative to the project root, so
two spellings of one file (`data/x`, `./data//x/`) compare equal everywhere downstream.
"""

from __future__ import annotations

import posixpath
from pathlib import Path


class PathRuleError(ValueError):
    """A manifest path is absolute or escapes the project root."""


def normalize(raw: str) -> str:
    """`./data//x/` → `data/x`; raises PathRuleError for absolute or escaping paths."""
    if not raw or not raw.strip():
        raise PathRuleError("empty path")
    if "\0" in raw:
        raise PathRuleError("path contains a NUL byte")
    if raw.startswith(("/", "~")):
        raise PathRuleError(f"absolute path {raw!r}")
    norm = posixpath.normpath(raw)
    if norm in {".", ".."} or norm.startswith("../"):
        raise PathRuleError(f"path {raw!r} is outside the project root")
    return norm


def is_within(path: str, parent: str) -> bool:
    """True if `path` equals `parent` or lies inside it (both normalised)."""
    return path == parent or path.startswith(parent + "/")


def ancestors(path: str) -> list[str]:
    """Proper parent directories of a normalised path, nearest first: a/b/c → [a/b, a]."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)
