"""The run-cache: stage fingerprint → what a successful run with exactly those inputs produced.

`.pipeline/cache/runs/ab/cdef….json` holds the deps and outs (with hashes) and the log object of
one run. A stage whose fingerprint is found here, with every object still in the cache, is
restored instead of run: switching a param back, or rebuilding a deleted output, costs links.

An entry records its own fingerprint; one whose recorded fingerprint is not its file name
(damaged, or forged to make one stage restore another's outputs) is never used: `get` deletes
it. The restore itself verifies every object it places (`store/restore.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.atomic import atomic_write_text
from pipeline.core.hashing import ALGORITHM, HashInfo
from pipeline.core.lockfile import LockedPath
from pipeline.errors import DataError
from pipeline.store.objects import ObjectStore


@dataclass(frozen=True)
class RunEntry:
    """One remembered run."""

    fingerprint: str
    deps: tuple[LockedPath, ...]
    outs: tuple[LockedPath, ...]
    log: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "deps": [d.to_yaml() for d in self.deps],
            "outs": [o.to_yaml() for o in self.outs],
            "log": self.log,
        }


class RunCache:
    """Run entries by fingerprint, next to the object store they point into."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.root = store.root / "runs"

    def path(self, fingerprint: str) -> Path:
        hexdigest = fingerprint.partition(":")[2]
        return self.root / hexdigest[:2] / f"{hexdigest[2:]}.json"

    def get(self, fingerprint: str) -> RunEntry | None:
        """The entry for `fingerprint`; a damaged or forged one is deleted (a lost shortcut)."""
        entry = self.read(fingerprint)
        if entry is not None and entry.fingerprint == fingerprint:
            return entry
        with contextlib.suppress(OSError):  # none there, or a shortcut lost either way
            os.unlink(self.path(fingerprint))
        return None

    def read(self, fingerprint: str) -> RunEntry | None:
        """The entry stored under `fingerprint` as it is, forged or not (None: none, or damaged).

        Only for reporting (`pipeline verify`): whoever restores uses `get`.
        """
        try:
            data = self.path(fingerprint).read_bytes()
        except OSError:  # none, or unreadable: either way no shortcut
            return None
        return parse_entry(data)

    def put(self, entry: RunEntry) -> None:
        text = json.dumps(entry.to_json(), indent=1)
        atomic_write_text(self.path(entry.fingerprint), text, durable=False)  # a lost shortcut

    def restorable(self, fingerprint: str) -> RunEntry | None:
        """The entry, if every object it needs is still in the cache."""
        entry = self.get(fingerprint)
        if entry is None:
            return None
        try:  # existence only: a missing object must lead to a run, not to a failed restore
            complete = all(self.store.complete(o.info) for o in entry.outs)
        except DataError:
            complete = False
        return entry if complete else None

    def close(self) -> None:
        """Nothing to release here (a remote-backed run-cache has a connection)."""

    def all_entries(self) -> Iterator[tuple[Path, RunEntry | None]]:
        """Every entry file, with its entry (None: damaged or forged; nothing is deleted)."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*/*.json")):
            fingerprint = f"{ALGORITHM}:{path.parent.name}{path.stem}"
            entry = self.read(fingerprint)
            yield path, entry if entry is not None and entry.fingerprint == fingerprint else None


def parse_entry(data: bytes) -> RunEntry | None:
    """An entry from its JSON text; None when it is damaged."""
    try:
        raw = json.loads(data)
        return RunEntry(
            str(raw["fingerprint"]),
            tuple(_locked(d) for d in raw["deps"]),
            tuple(_locked(o) for o in raw["outs"]),
            raw.get("log"),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _locked(raw: dict[str, Any]) -> LockedPath:
    info = HashInfo(raw["hash"], int(raw["size"]), int(raw["nfiles"]), bool(raw.get("isdir")))
    return LockedPath(str(raw["path"]), info)
