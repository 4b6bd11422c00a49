"""DVC's md5 of files and directories, to recognise data that DVC hashed (`dvc.lock`, `.dvc`).

A file's md5 is of its bytes (DVC 3, `hash: md5`). DVC 2 wrote `md5-dos2unix` hashes: a text
file's CRLF line ends were read as LF first; `legacy=True` reproduces that. A directory's md5
is the md5 of DVC's listing, `json.dumps(sorted [{"md5", "relpath"}], sort_keys=True)` with
json's default separators, followed by `.dir` (dvc_data/hashfile/tree.py `Tree.digest`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DIR_SUFFIX = ".dir"
_CHUNK = 1 << 20  # DVC's chunk: its dos2unix decision is per chunk
_TEXT_PROBE = 512  # DVC 2 judged "text" by the first 512 bytes (dvc_data istextblock)
_TEXT_CHARS = bytes(range(32, 127)) + b"\n\r\t\f\b"


def file_md5(path: str | os.PathLike[str], *, legacy: bool = False) -> str:
    """The md5 DVC records for one file (read in DVC's 1 MiB chunks)."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            # DVC 2 (md5-dos2unix) judged each chunk by its first 512 bytes, as here
            text = legacy and _is_text(chunk[:_TEXT_PROBE])
            digest.update(chunk.replace(b"\r\n", b"\n") if text else chunk)
    return digest.hexdigest()


def _is_text(head: bytes) -> bool:
    """DVC's `istextblock`: no NUL byte, at most 30% of bytes outside printable ASCII."""
    if b"\0" in head:
        return False
    return len(head.translate(None, _TEXT_CHARS)) / len(head) <= 0.30


def listing_md5(entries: list[dict[str, str]]) -> str:
    """The `.dir` md5 of a listing of `{"relpath", "md5"}` rows (sorted here)."""
    rows = sorted(entries, key=lambda row: row["relpath"])
    return hashlib.md5(json.dumps(rows, sort_keys=True).encode("utf-8")).hexdigest() + DIR_SUFFIX


def dir_listing(path: Path, *, legacy: bool = False) -> list[dict[str, str]]:
    """Every file under `path` (symlinks followed, as DVC does) with its md5."""
    rows = []
    for parent, _, files in os.walk(path, followlinks=True):
        for name in files:
            full = Path(parent, name)
            rel = full.relative_to(path).as_posix()
            rows.append({"md5": file_md5(full, legacy=legacy), "relpath": rel})
    return rows


def path_md5(path: Path, *, legacy: bool = False) -> str | None:
    """The md5 DVC records for a file or directory; None if it does not exist."""
    if path.is_dir():
        return listing_md5(dir_listing(path, legacy=legacy))
    if path.is_file():
        return file_md5(path, legacy=legacy)
    return None
