"""Project-relative paths: normalisation, the "never outside the root" rule, containment tests.

Every path in a manifest is stored as a normalised POSIX path relative to the project root, so
two spellings of one file (`data/x`, `./data//x/`) compare equal everywhere downstream.

`Bounds` is the one gate between a project path and the filesystem: whoever reads a path into
the cache (the hasher) or writes, deletes or links one (restores, clearing outputs, `.gitignore`
blocks) asks it for the absolute path, and it refuses any path that lands outside the root once
symlinks are resolved at every depth. A lexical check is not enough: a symlinked directory
inside the project (`data -> ../elsewhere`) would otherwise carry writes outside it.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from pipeline.errors import OutsideProject


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


class Bounds:
    """Absolute paths of project paths, refused when they resolve outside the project root.

    Resolved parent directories are memoised for one command; `forget` drops them when the
    command itself changes the tree (a stage ran, a directory was restored).
    """

    def __init__(self, root: Path) -> None:
        self.root = os.fspath(root)
        self._real_root = os.path.realpath(self.root)
        self._dirs: dict[str, str] = {}  # parent relpath → its resolved absolute path

    def path(self, relpath: str, *, follow: bool = True) -> str:
        """`root/relpath`, once its parents (and, with `follow`, itself) resolve inside the root.

        Without `follow` a symlink at `relpath` itself is allowed: deleting or replacing the
        link touches nothing it points to.
        """
        path = self.lexical(relpath)
        norm = path[len(self.root) + 1 :]
        parent, _, _ = norm.rpartition("/")
        if parent and not self.contains(self._resolved(parent)):
            raise self.refuse(norm, f"{parent} resolves to {self._resolved(parent)}")
        if follow and os.path.islink(path):
            target = os.path.realpath(path)
            if not self.contains(target):
                raise self.refuse(norm, f"it is a symlink to {target}")
        return path

    def lexical(self, relpath: str) -> str:
        """`root/relpath` once `relpath` itself stays inside (no `..` out, not absolute)."""
        try:
            return f"{self.root}/{normalize(relpath)}"
        except PathRuleError as exc:
            raise self.refuse(relpath, str(exc)) from None

    def contains(self, real: str) -> bool:
        """True if the resolved absolute path `real` is the root or lies below it."""
        return real == self._real_root or real.startswith(self._real_root.rstrip("/") + "/")

    def forget(self) -> None:
        self._dirs.clear()

    def _resolved(self, reldir: str) -> str:
        real = self._dirs.get(reldir)
        if real is None:
            real = os.path.realpath(f"{self.root}/{reldir}")
            if os.path.isdir(real):  # a missing directory may yet be created as a symlink
                self._dirs[reldir] = real
        return real

    def refuse(self, relpath: str, why: str) -> OutsideProject:
        """The error for `relpath`, outside the project because of `why`."""
        return OutsideProject(
            f"{relpath}: outside the project at {self.root} ({why})",
            "every tracked path must stay inside the project, symlinks included; "
            "move the data into the project or fix the file that names this path",
        )


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


def check_state_dir(root: Path, state_dir: Path) -> None:
    """Refuse a state directory (`.pipeline`) or an entry of it that a symlink leads outside.

    A cloned repository could commit `.pipeline/cache` (or `cache/objects/ab`) as a link to
    someone else's files, which `gc` would then delete. One `scandir` per directory that is
    written into: a few hundred entries at most. The one link allowed is an experiment
    workspace's `cache`, which leads to the cache of the project the workspace lies in
    (`<project>/.pipeline/tmp/…`).
    """
    bounds = Bounds(root)
    if not bounds.contains(os.path.realpath(state_dir)):
        raise bounds.refuse(state_dir.name, f"it resolves to {os.path.realpath(state_dir)}")
    for sub in _STATE_DIRS:  # where `gc`, restores and cleanups write or delete
        directory = state_dir / sub
        for name in _symlinks_in(directory):
            real = os.path.realpath(directory / name)
            shared = sub == "." and _workspace_cache(root, name, real)
            if not bounds.contains(real) and not shared:
                shown = os.path.normpath(f"{state_dir.name}/{sub}/{name}")
                raise bounds.refuse(shown, f"a symlink to {real}")


_STATE_DIRS = (".", "cache", "cache/objects", "cache/runs", "tmp")


def _symlinks_in(directory: Path) -> list[str]:
    """Names of the symlinks in `directory` (a linked directory itself is its parent's entry)."""
    if directory.is_symlink() or not directory.is_dir():
        return []
    with os.scandir(directory) as entries:
        return [e.name for e in entries if e.is_symlink()]


def _workspace_cache(root: Path, name: str, real: str) -> bool:
    """True for a workspace's `cache` link to the enclosing project's cache."""
    project_state = os.path.dirname(real)
    inside_tmp = os.path.realpath(root).startswith(os.path.join(project_state, "tmp") + "/")
    return name == "cache" and os.path.basename(real) == "cache" and inside_tmp
