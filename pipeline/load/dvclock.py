"""`dvc.lock` as DVC 2 and 3 write it: what each stage last ran with, hashed with md5.

Read only to take a DVC repository over (`plan/adopt.py`): paths are project-relative here
(DVC writes them relative to the stage's `wdir`). A `dvc.lock` that cannot be read is one
line naming it; an entry of a shape we do not know is skipped (its stage then just runs).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.paths import PathRuleError, normalize
from pipeline.core.yamlio import DocumentMemo, load_yaml
from pipeline.errors import DataError, ManifestError

DVC_LOCK = "dvc.lock"
_HINT = "fix or delete dvc.lock (it is only read to adopt stages DVC already ran)"


@dataclass(frozen=True)
class DvcPath:
    """One dep or out as DVC recorded it; `legacy` marks DVC 2's md5-dos2unix hashes."""

    path: str
    md5: str
    legacy: bool = False

    @property
    def isdir(self) -> bool:
        return self.md5.endswith(".dir")


@dataclass(frozen=True)
class DvcStage:
    """One stage of `dvc.lock`: its command, params, deps and outs."""

    cmd: tuple[str, ...]
    params: dict[str, dict[str, Any]]
    deps: tuple[DvcPath, ...]
    outs: tuple[DvcPath, ...]


def read_dvc_lock(
    root: Path, folder: str = "", memo: DocumentMemo | None = None
) -> dict[str, DvcStage]:
    """The stages of `root/folder/dvc.lock` by name, paths as written; {} without one."""
    relpath = posixpath.join(folder, DVC_LOCK)
    path = root / relpath
    if not path.is_file():
        return {}
    try:
        data = load_yaml(path, memo, relpath).data
    except ManifestError as exc:
        raise DataError(f"unreadable {relpath}: {exc.message}", _HINT) from None
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        return {}  # DVC 1's lock (no schema) or an empty one: nothing to adopt
    found = {str(n): _stage(e) for n, e in stages.items()}
    return {name: stage for name, stage in found.items() if stage is not None}


def _stage(raw: Any) -> DvcStage | None:
    if not isinstance(raw, dict) or "cmd" not in raw:
        return None
    cmd = raw["cmd"]
    params = raw.get("params") or {}
    deps = [dvc_path(d) for d in raw.get("deps") or ()]
    outs = [dvc_path(o) for o in raw.get("outs") or ()]
    if not isinstance(params, dict) or None in deps or None in outs:
        return None
    return DvcStage(
        cmd=(str(cmd),) if isinstance(cmd, str) else tuple(str(c) for c in cmd),
        params={str(f): dict(v or {}) for f, v in params.items()},
        deps=tuple(d for d in deps if d is not None),
        outs=tuple(o for o in outs if o is not None),
    )


def dvc_path(raw: Any) -> DvcPath | None:
    """A `{path, md5[, hash: md5]}` row; None if it has no md5 (e.g. a cloud version id)."""
    if not isinstance(raw, dict) or "path" not in raw or not raw.get("md5"):
        return None
    return DvcPath(str(raw["path"]), str(raw["md5"]), legacy=raw.get("hash") != "md5")


def under(wdir: str, path: str) -> str | None:
    """A path DVC wrote relative to `wdir`, made project-relative; None if it leaves it."""
    try:
        return normalize(posixpath.join(wdir, path))
    except PathRuleError:
        return None
