"""`.dvc` files: data `dvc add` tracks (`outs: [{md5, path}]`) and imports (`deps: [{repo}]`).

Read to take a DVC repository over: a pointer's data is tracked data, as with `pipeline add`
(`pipeline pull` brings it from the DVC remote); an import is named by `status`, never fetched.
Paths are made project-relative (DVC writes them relative to the `.dvc` file). A `.dvc` file
that cannot be parsed is one line naming it.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.git import git
from pipeline.core.yamlio import DocumentMemo, load_yaml
from pipeline.errors import DataError, ManifestError
from pipeline.load.dvclock import DvcPath, dvc_path, under

_SKIP = {".git", ".dvc", ".pipeline", "node_modules", ".venv"}


@dataclass(frozen=True)
class DvcImport:
    """An out that `dvc import` brought from another repository."""

    path: str
    url: str
    rev: str | None
    source: str  # the `.dvc` file


@dataclass(frozen=True)
class DvcPointers:
    """Every `.dvc` file of a project: tracked data (by md5) and imports."""

    data: tuple[DvcPath, ...] = ()
    imports: tuple[DvcImport, ...] = ()


def read_pointers(root: Path, memo: DocumentMemo | None = None) -> DvcPointers:
    """The `.dvc` files under `root` (outside `.git`, `.dvc`, `.pipeline`)."""
    data: list[DvcPath] = []
    imports: list[DvcImport] = []
    for path in _dvc_files(root):
        rel = path.relative_to(root).as_posix()
        doc = _load(path, rel, memo)
        where = posixpath.dirname(rel) or "."
        repos = [d["repo"] for d in _rows(doc, "deps") if isinstance(d.get("repo"), dict)]
        if repos:  # an import may have no md5 yet (`--no-download`): its path is enough
            url, rev = str(repos[0].get("url", "")), repos[0].get("rev_lock") or repos[0].get("rev")
            paths = [under(where, str(o["path"])) for o in _rows(doc, "outs") if "path" in o]
            imports += [DvcImport(p, url, rev and str(rev), rel) for p in paths if p]
        else:
            outs = [_placed(where, dvc_path(o)) for o in _rows(doc, "outs")]
            data += [o for o in outs if o is not None]
    return DvcPointers(tuple(data), tuple(imports))


def _dvc_files(root: Path) -> list[Path]:
    """git's list when it answers (no walk through the data), else a walk of the tree."""
    if not (root / ".dvc").is_dir():
        return []  # not a DVC repository: nothing to look for (one stat per status)
    listed = git(root, "ls-files", "-co", "--exclude-standard", "-z", "--", "*.dvc", timeout=30)
    if listed is not None:
        names = sorted(n for n in listed.split("\0") if n)
        return [root / n for n in names if (root / n).is_file()]  # git lists a deleted file
    found = []
    for parent, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP)
        found += [Path(parent, f) for f in sorted(files) if f.endswith(".dvc")]
    return found


def _load(path: Path, rel: str, memo: DocumentMemo | None) -> Any:
    try:
        return load_yaml(path, memo, rel).data
    except ManifestError as exc:
        raise DataError(f"unreadable {rel}: {exc.message}", "fix or delete it") from None


def _rows(doc: Any, key: str) -> list[dict[str, Any]]:
    rows = doc.get(key) if isinstance(doc, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _placed(where: str, found: DvcPath | None) -> DvcPath | None:
    """`found` with a project-relative path; None if it has none or leaves the project."""
    if found is None:
        return None
    path = under(where, found.path)
    return None if path is None else DvcPath(path, found.md5, found.legacy)
