"""Where a project is: its root, and every manifest under it (DVC collects every dvc.yaml).

The root is found by walking up from where a command starts, never past the top of the git
repository holding it nor into a hidden folder (an isolated run's `.pipeline/tmp/runs/ID` is a
project alone): the nearest folder with a `.dvc/` directory (a DVC repository, found as DVC
finds it) or a `pipeline.lock` (a project that ran there: its root stays, and an isolated
workspace, which gets a copy of the lock, is its own), else the topmost folder holding a
manifest. Not simply the git top level: a
repository may hold independent projects side by side (this one's `examples/`), and a manifest
below them must not pull them all into one DAG.

Under the root, manifests are listed with one `git ls-files` in a git work tree (so ignored
directories, a data tree among them, are never walked), else by a walk that skips hidden
directories (`.git`, `.dvc`, `.pipeline`, ...), memoised by the mtimes of the folders walked.
One manifest per folder: `MLproject` before `dvc.yaml`, as when a folder is opened alone.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pipeline.core.git import git
from pipeline.core.lockfile import LOCK_NAME  # at the root: a project that ran keeps it
from pipeline.core.statmemo import RACY_MARGIN_NS
from pipeline.core.yamlio import DocumentMemo
from pipeline.errors import UsageError

MANIFEST_NAMES = ("MLproject", "dvc.yaml")
_WALK_KEY = "manifests:walk"  # the memo's row for the last walk (no file has this name)
_SKIPPED = frozenset({"__pycache__", "node_modules"})


def git_top(start: Path) -> Path | None:
    """The nearest folder at or above `start` holding `.git` (a directory or a worktree file)."""
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def manifest_in(directory: Path) -> Path | None:
    for name in MANIFEST_NAMES:
        if (directory / name).is_file():
            return directory / name
    return None


def find_root(start: Path) -> Path:
    """The project root for a command started at `start` (a directory or a named manifest)."""
    start = start.resolve()
    named = start.is_file()
    if named:
        start = start.parent
    walk = _upwards(start)
    for directory in walk:
        if (directory / ".dvc").is_dir() or (directory / LOCK_NAME).is_file():
            return directory
    holding = [d for d in walk if manifest_in(d) is not None or (named and d == start)]
    if holding:
        return holding[-1]
    raise UsageError(
        f"no MLproject or dvc.yaml found in {start} or any parent directory",
        "create one (see MLproject.example), or point at a project with `pipeline -C DIR`",
    )


def _upwards(start: Path) -> list[Path]:
    """`start` and its parents up to the git top level, stopping below a hidden folder: an
    isolated run's workspace (`.pipeline/tmp/runs/ID`) is a project of its own."""
    top = git_top(start)
    walk: list[Path] = []
    for directory in (start, *start.parents):
        if walk and directory.name.startswith("."):
            break
        walk.append(directory)
        if directory == top:
            break
    return walk


def list_manifests(root: Path, memo: DocumentMemo | None = None) -> tuple[str, ...]:
    """Root-relative paths of every manifest under `root`: the root's first, then by path."""
    found = _git_listed(root) if git_top(root) is not None else None
    own = manifest_in(root)
    if not found or (own is not None and own.name not in found):
        found = _walked(root, memo)  # no git, or a project git ignores: git cannot say
    by_dir: dict[str, str] = {}
    for relpath in sorted(found, key=_manifest_order):
        folder = os.path.dirname(relpath)
        if folder not in by_dir and (root / relpath).is_file() and not _nested(root, folder):
            by_dir[folder] = relpath
    return tuple(sorted(by_dir.values(), key=lambda p: (p.count("/"), p)))


def _nested(root: Path, folder: str) -> bool:
    """True if `folder` lies in a project of its own below `root` (as `find_root` marks one)."""
    parts = folder.split("/") if folder else []
    for depth in range(1, len(parts) + 1):
        below = root.joinpath(*parts[:depth])
        if (below / ".dvc").is_dir() or (below / LOCK_NAME).is_file():
            return True
    return False


def _manifest_order(relpath: str) -> tuple[str, int]:
    folder, _, name = relpath.rpartition("/")
    return folder, MANIFEST_NAMES.index(name)


def _git_listed(root: Path) -> list[str] | None:
    """Manifests git tracks or would track (not ignored), from one call; None without git."""
    out = git(
        root,
        "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
        *(f":(glob)**/{name}" for name in MANIFEST_NAMES),
        timeout=30,
    )  # fmt: skip
    if out is None:
        return None
    return [p for p in dict.fromkeys(out.split("\0")) if p and not _hidden(p)]


def _walked(root: Path, memo: DocumentMemo | None) -> list[str]:
    """The walk's manifests; with a `memo`, recalled while no folder it walked changed (a
    folder's mtime moves when an entry is added, removed or renamed): a `stat` per folder
    instead of a listing of each, so a no-op command does not list a data tree."""
    recalled = _recall_walk(root, memo) if memo is not None else None
    if recalled is not None:
        return recalled
    started = time.time_ns()
    found: list[str] = []
    folders: dict[str, int] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED)
        rel = os.path.relpath(folder, root)
        folders[rel] = _mtime(Path(folder)) or 0
        found += [n if rel == "." else f"{rel}/{n}" for n in MANIFEST_NAMES if n in files]
    if memo is not None:
        text = json.dumps({"folders": folders, "found": found, "at_ns": started})
        memo.put_document(_WALK_KEY, os.stat(root), text, started)
    return found


def _recall_walk(root: Path, memo: DocumentMemo) -> list[str] | None:
    text = memo.get_document(_WALK_KEY, os.stat(root))
    if text is None:
        return None
    data = json.loads(text)
    for rel, mtime in data["folders"].items():
        if _mtime(root / rel) != mtime or mtime + RACY_MARGIN_NS >= data["at_ns"]:
            return None
    return list(data["found"])


def _mtime(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _hidden(relpath: str) -> bool:
    return any(part.startswith(".") for part in relpath.split("/")[:-1])


def nearest_manifest(start: Path, root: Path, manifests: tuple[str, ...]) -> str | None:
    """The manifest a command started at `start` is about: the nearest one at or above it."""
    for directory in (start, *start.parents):
        found = manifest_in(directory)
        if found is not None and found.relative_to(root).as_posix() in manifests:
            return found.relative_to(root).as_posix()
        if directory == root:
            break
    return None
