"""The directory a stage (or model worker) puts on PYTHONPATH to `import pipeline.models`.

A stage runs in its own env, without the tool's dependencies. Putting the tool's site-packages
on its path would leak them all (pydantic, SQLAlchemy, ...); this directory holds only a
`pipeline` symlink to the tool's package, and `pipeline.models` imports nothing else of it.
One directory per package location and version, per user:
`$XDG_CACHE_HOME/pipeline/stagepath/<digest>/pipeline`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from pipeline._version import __version__


def stage_pythonpath() -> Path:
    """The directory holding only the `pipeline` symlink, created if need be."""
    package = Path(__file__).resolve().parents[1]  # pipeline/env/stagepath.py → pipeline/
    key = hashlib.sha256(f"{package}\0{__version__}".encode()).hexdigest()[:16]
    base = _cache_home() / "pipeline" / "stagepath" / key
    link = base / "pipeline"
    if _points_at(link, package):
        return base
    base.mkdir(parents=True, exist_ok=True)
    # a fresh symlink renamed over the name: a racing process or thread sees the old or the new
    tmp = base / f".pipeline.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(package, tmp, target_is_directory=True)
    os.replace(tmp, link)
    return base


def _points_at(link: Path, target: Path) -> bool:
    try:
        return Path(os.readlink(link)) == target
    except OSError:
        return False


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
