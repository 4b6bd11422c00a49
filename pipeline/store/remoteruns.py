"""A remote's run-cache, asked by `repro` when the local one has no entry for a stage.

A stage about to run whose exact inputs (fingerprint, environment included) someone already ran
and pushed is restored instead: the entry and its outputs' objects come down, each verified as
every download is, and only then does the entry join the local run-cache. The remote is opened
on the first miss. If it cannot be reached, the error is kept and the rest of the run stays
local: a lost shortcut, never a failed run and never a wrong restore.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from pipeline.core.config import RemoteSettings
from pipeline.core.hashing import HashInfo
from pipeline.errors import DataError
from pipeline.store.objects import ObjectStore
from pipeline.store.runcache import RunCache, RunEntry, parse_entry
from pipeline.store.transfer import Transfer, connected


class RemoteRunCache(RunCache):
    """The local run-cache, backed by the run-cache of one remote."""

    def __init__(self, store: ObjectStore, settings: RemoteSettings, project_root: Path) -> None:
        super().__init__(store)
        self.settings = settings
        self.project_root = project_root
        self.error: DataError | None = None  # why the remote stopped being asked
        self._exit = contextlib.ExitStack()
        self._transfer: Transfer | None = None
        self._lock = threading.Lock()

    def restorable(self, fingerprint: str) -> RunEntry | None:
        found = super().restorable(fingerprint)
        if found is not None or self.error is not None:
            return found
        try:
            entry = self._fetch(fingerprint)
        except DataError as exc:
            with self._lock:
                self.error = self.error or exc
            return None
        return None if entry is None else super().restorable(fingerprint)

    def _fetch(self, fingerprint: str) -> RunEntry | None:
        transfer = self._open()
        entry = fetch_entry(transfer, fingerprint)
        if entry is None:
            return None
        wanted = [o.info for o in entry.outs]
        wanted += [HashInfo(entry.log, 0, 1)] if entry.log else []
        report = transfer.download(wanted)
        if report.missing or report.corrupt:
            return None  # incomplete on the remote: the stage runs
        self.put(entry)
        return entry

    def _open(self) -> Transfer:
        with self._lock:
            if self._transfer is None:
                transfer = self._exit.enter_context(
                    connected(self.store, self.settings, self.project_root)
                )
                transfer.open(writing=False)
                self._transfer = transfer
            return self._transfer

    def close(self) -> None:
        self._exit.close()


def fetch_entry(transfer: Transfer, fingerprint: str) -> RunEntry | None:
    """One run-cache entry from the remote (None: it has none, or a damaged or forged one)."""
    try:
        data = transfer.remote.read_bytes(transfer.remote.run_path(fingerprint))
    except FileNotFoundError:
        return None
    entry = parse_entry(data)
    if entry is None or entry.fingerprint != fingerprint:
        return None
    transfer.remember(f"run:{fingerprint}")
    return entry
