"""`pipeline pull` of a DVC repository's `.dvc` data from its DVC remote, without DVC.

The remote is `.dvc/config`'s (and `config.local`'s) `['remote "NAME"']` url, `core.remote`
the default; a relative local url is relative to `.dvc/`, as DVC reads it. Objects are where
DVC puts them: `files/md5/ab/cdef…` (DVC 3) or `ab/cdef…` (DVC 2); a directory is its `.dir`
listing and then each file. Every file is checked against its md5 before it replaces anything
in the workspace; then the data is tracked as `pipeline add` tracks it (xxh3, in the cache and
the lock's `data:`), so it never needs DVC again.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.core.config import RemoteSettings
from pipeline.data.add import add_paths
from pipeline.errors import UsageError
from pipeline.load.dvcfiles import DvcPointers
from pipeline.load.dvclock import DvcPath
from pipeline.load.dvcmd5 import file_md5, listing_md5, path_md5
from pipeline.plan.session import Session
from pipeline.store.remote import Remote
from pipeline.store.transfer import Report

_SECTION = re.compile(r"""^'?remote\s+"([^"]+)"'?$""")


def dvc_remote(root: Path, name: str | None = None) -> RemoteSettings:
    """The DVC remote `name` (default: `core.remote`, or the only one) of the repo at `root`."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read([root / ".dvc/config", root / ".dvc/config.local"], encoding="utf-8")
    urls = {m[1]: parser[s].get("url", "") for s in parser.sections() if (m := _SECTION.match(s))}
    chosen = name or parser.get("core", "remote", fallback=None)
    if chosen is None and len(urls) == 1:
        chosen = next(iter(urls))
    if chosen is None or not urls.get(chosen):
        raise UsageError(
            f"no DVC remote {'named ' + repr(chosen) if chosen else 'is the default'} "
            "in .dvc/config",
            "add one with `pipeline remote add NAME URL`, or set `core.remote` in .dvc/config",
        )
    url = urls[chosen]
    if "://" not in url and not os.path.isabs(url):  # DVC: relative to the config file
        url = os.path.normpath(root / ".dvc" / url)
    return RemoteSettings(chosen, url)


def stale_pointers(session: Session, pointers: DvcPointers) -> list[DvcPath]:
    """`.dvc` data the workspace lacks or holds changed (and `pipeline add` has not taken)."""
    root = session.project.root
    taken = session.lock.data
    return [
        p
        for p in pointers.data
        if p.path not in taken and path_md5(root / p.path, legacy=p.legacy) != p.md5
    ]


def pull_pointers(session: Session, wanted: list[DvcPath], settings: RemoteSettings) -> Report:
    """Bring `wanted` from the DVC remote, verified, and track it; what failed is reported."""
    report = Report()
    root = session.project.root
    remote = Remote(settings, root)
    brought = []
    for pointer in wanted:
        session.hasher.bounds.path(pointer.path, follow=False)  # a cloned repo's links: refused
        if _bring(remote, root, pointer, report):
            brought.append(str(root / pointer.path))
    if brought:
        add_paths(session, brought)
    return report


def _bring(remote: Remote, root: Path, pointer: DvcPath, report: Report) -> bool:
    dest = root / pointer.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".dvc-pull-") as tmp:
        staged = Path(tmp) / "data"
        try:
            if pointer.isdir:
                _directory(remote, pointer, staged, report)
            else:
                _file(remote, pointer.md5, staged, pointer.legacy)
        except FileNotFoundError:
            report.missing.append(pointer.md5)
            return False
        except _Corrupt:
            report.corrupt.append(pointer.md5)
            return False
        if not pointer.isdir:
            report.bytes += staged.stat().st_size
        _replace(staged, dest)
    report.transferred += 1
    return True


class _Corrupt(Exception):
    """A downloaded object did not have the md5 it is stored under."""


def _object(remote: Remote, md5: str) -> str:
    """Where DVC 3 or DVC 2 keeps the object `md5`; FileNotFoundError if neither has it."""
    for layout in (f"files/md5/{md5[:2]}/{md5[2:]}", f"{md5[:2]}/{md5[2:]}"):
        path = f"{remote.base}/{layout}"
        if remote.size(path) is not None:
            return path
    raise FileNotFoundError(md5)


def _file(remote: Remote, md5: str, dest: Path, legacy: bool) -> None:
    remote.get_file(_object(remote, md5), str(dest))
    if file_md5(dest, legacy=legacy) != md5:
        raise _Corrupt(md5)


def _directory(remote: Remote, pointer: DvcPath, dest: Path, report: Report) -> None:
    rows = _listing(remote.read_bytes(_object(remote, pointer.md5)))
    if listing_md5(rows) != pointer.md5:
        raise _Corrupt(pointer.md5)
    for row in rows:
        target = dest / row["relpath"]
        if not target.resolve().is_relative_to(dest.resolve()):
            raise _Corrupt(pointer.md5)  # a listing may never place a file outside its dir
        target.parent.mkdir(parents=True, exist_ok=True)
        _file(remote, row["md5"], target, pointer.legacy)
        report.bytes += target.stat().st_size


def _listing(data: bytes) -> list[dict[str, str]]:
    try:
        rows: Any = json.loads(data)
        return [{"md5": str(r["md5"]), "relpath": str(r["relpath"])} for r in rows]
    except (ValueError, TypeError, KeyError) as exc:
        raise _Corrupt(str(exc)) from None


def _replace(staged: Path, dest: Path) -> None:
    """Put `staged` where `dest` is, atomically for a file (a directory is removed first)."""
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    elif staged.is_dir() and dest.exists():
        dest.unlink()
    os.replace(staged, dest)
