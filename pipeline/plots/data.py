"""The files behind plots: read from a `Revision` and parsed into rows (a list of records).

A `Revision` is a label and a reader (path → bytes, or None when the file is not there):
the workspace, a git commit (`git show`), or a recorded run's outputs from the cache. Parsers
follow DVC: TSV/CSV with a header row, JSON as a list of records or `{key: [records]}`, YAML
likewise. Garbage in a file is always a `DataError` naming it, never another exception.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.git import git, repo_prefix
from pipeline.core.paths import Bounds, ancestors
from pipeline.errors import DataError, UsageError
from pipeline.load.params import parse_text

Row = dict[str, Any]
Reader = Callable[[str], "bytes | None"]
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class Revision:
    """Where plot files are read from, and the label its points carry (`rev`)."""

    label: str
    read: Reader


def workspace_revision(root: Path) -> Revision:
    """Files as the workspace holds them; one that resolves outside the project (`..`, an
    absolute path, a symlink out) is refused with `OutsideProject`, never read."""
    bounds = Bounds(root)

    def read(path: str) -> bytes | None:
        try:
            return Path(bounds.path(path)).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    return Revision("workspace", read)


def git_revision(root: Path, rev: str) -> Revision:
    """Files as commit `rev` holds them; a revision git does not know is a usage error."""
    commit = git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if commit is None:
        raise UsageError(
            f"{rev!r} is neither a run nor a git revision",
            "use `workspace`, a run id or name from `pipeline runs`, or a commit",
        )
    prefix = repo_prefix(root)

    def read(path: str) -> bytes | None:
        return _git_bytes(root, f"{commit.strip()}:{prefix}{path}")

    return Revision(rev, read)


def _git_bytes(root: Path, blob: str) -> bytes | None:
    """A file at a commit, byte for byte (`core.git` speaks text, which would turn an image's
    `\\r\\n` into `\\n`); None when the commit does not have it."""
    try:
        done = subprocess.run(
            ["git", "show", blob], cwd=root, capture_output=True, check=False, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def cached_revision(
    label: str, outs: Mapping[str, str], object_path: Callable[[str], Path]
) -> Revision:
    """A run's outputs (path → hash) read from the cache, files inside directory outs too."""

    def read(path: str) -> bytes | None:
        for owner in (path, *ancestors(path)):
            if owner in outs:
                inner = path[len(owner) + 1 :]
                digest = outs[owner] if owner == path else _member(object_path, outs[owner], inner)
                return None if digest is None else _object(object_path, digest)
        return None

    return Revision(label, read)


def _member(object_path: Callable[[str], Path], tree: str, path: str) -> str | None:
    """The hash of a file in a cached directory (its listing: `[{path, hash}, …]`)."""
    listing = _object(object_path, tree)
    try:
        rows = json.loads(listing or b"[]")
        return next((str(r["hash"]) for r in rows if r["path"] == path), None)
    except (ValueError, TypeError, KeyError):
        return None


def _object(object_path: Callable[[str], Path], digest: str) -> bytes | None:
    try:
        return object_path(digest).read_bytes()
    except OSError:
        return None


def parse_rows(path: str, raw: bytes) -> list[Row]:
    """The records of a plot data file, by its extension; a `DataError` naming it if garbage."""
    try:
        text = raw.decode("utf-8-sig")
        if path.lower().endswith((".tsv", ".csv")):
            return _separated(text, "\t" if path.lower().endswith(".tsv") else ",")
        return _records(parse_text(text, path))
    except (UnicodeDecodeError, csv.Error, ValueError, SyntaxError, RecursionError) as exc:
        raise DataError(
            f"{path}: cannot read plot data: {exc}",
            "plot data is TSV/CSV with a header row, or JSON/YAML records",
        ) from None


def _separated(text: str, delimiter: str) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    return [
        {str(k): _number(v) for k, v in row.items() if k is not None and k != ""} for row in reader
    ]


def _number(value: Any) -> Any:
    """A cell as a number when it is one (`1_000` or `nan` are not, as in a spreadsheet)."""
    if not isinstance(value, str) or not _NUMBER.fullmatch(value.strip()):
        return value
    number = float(value)
    if not math.isfinite(number):  # too large for a double: kept as written
        return value
    if value.strip().lstrip("+-").isdigit():  # an integer, exact while a double holds it
        return int(number) if abs(number) < 2**53 else number
    return number


def _records(data: Any) -> list[Row]:
    if isinstance(data, dict):  # DVC's `{key: [records]}`: the first list of records
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if lists else [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError("expected a list of records, or {key: [records]}")
    return [{str(k): _scalar(v) for k, v in r.items()} for r in data]


def _scalar(value: Any) -> Any:
    """A value Vega can take: finite numbers, text, booleans, null; anything else as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)
