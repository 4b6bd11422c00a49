"""Moving objects between the cache and a remote: what is where, then parallel transfers.

Uploads: what the known index lists is skipped without asking the remote; the rest is looked up
(the packs' indexes, then one lookup per object or one listing per hash prefix), and what is
missing is sent, largest first, small files in packs, every directory's tree object last and
only once all its files are there. Downloads: tree objects first (they name the files), then the
files; each lands on a temp name in the cache and enters it only if its bytes hash to its name.
A remote that stops answering ends the transfer with one error; what was done stays done, so the
next run sends only the rest.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.core.config import RemoteSettings
from pipeline.core.hashing import ALGORITHM, HashInfo
from pipeline.core.waiting import wait_any
from pipeline.errors import DataError
from pipeline.store.known import KnownIndex, Location
from pipeline.store.objects import ObjectStore
from pipeline.store.packs import (
    fetch_members,
    list_packs,
    plan_packs,
    read_index,
    small_objects,
    upload_pack,
)
from pipeline.store.remote import Remote

KNOWN_DB = "remotes.db"  # in .pipeline/: what this machine knows each remote holds
_PROBE_EACH_BELOW = 256  # fewer unknown objects than this: look each up; more: list prefixes
_FAMILY_DIR = ALGORITHM.split("_")[0]


class Meter(Protocol):
    """Hears about a transfer's progress (the CLI draws a bar; scripts ignore it)."""

    def start(self, label: str, files: int, size: int) -> None: ...
    def advance(self, files: int, size: int) -> None: ...


class QuietMeter:
    def start(self, label: str, files: int, size: int) -> None:
        pass

    def advance(self, files: int, size: int) -> None:
        pass


@dataclass
class Report:
    """What one transfer did: sent or received, already there, missing, rejected."""

    transferred: int = 0
    bytes: int = 0
    present: int = 0
    missing: list[str] = field(default_factory=list)  # asked for, on neither side
    not_local: list[str] = field(default_factory=list)  # to send, but not in the cache
    corrupt: list[str] = field(default_factory=list)  # received, did not match its hash

    def add(self, other: Report) -> None:
        self.transferred += other.transferred
        self.bytes += other.bytes
        self.present += other.present
        self.missing += other.missing
        self.not_local += other.not_local
        self.corrupt += other.corrupt


class Transfer:
    """One project's cache and one remote, for the length of a command."""

    def __init__(
        self, store: ObjectStore, remote: Remote, known: KnownIndex, meter: Meter | None = None
    ) -> None:
        self.store = store
        self.remote = remote
        self.known = known
        self.meter = meter or QuietMeter()
        self.fresh = False  # the remote was empty when this transfer opened it
        self._opened = False

    def open(self, *, writing: bool) -> None:
        """Read the remote's generation (and start one on a new remote we write to)."""
        if self._opened:
            return
        self._opened = True
        if self.known.checked_within(self.remote.key, self.remote.recheck):
            return  # what the index says is recent enough: no request
        generation = self.remote.generation()
        if generation is None:
            self.remote.check_root()
            if writing:  # a remote never written to: nothing to look up there
                generation = self.remote.renew_generation()
                self.fresh = True
        self.known.adopt(self.remote.key, generation)

    # --- where objects are ---------------------------------------------------------------

    def locate(self, digests: Iterable[str]) -> dict[str, Location]:
        """The objects among `digests` the remote holds, and where; absent ones are left out."""
        wanted = set(digests)
        found = self.known.lookup(self.remote.key, wanted)
        rest = wanted - set(found)
        if rest:
            self._read_new_packs()
            found.update(self.known.lookup(self.remote.key, rest))
            rest -= set(found)
        if rest and not self.fresh:
            present = self._probe(rest)
            self.known.add(self.remote.key, {d: Location() for d in present})
            found.update({d: Location() for d in present})
        return found

    def _read_new_packs(self) -> None:
        for pack in sorted(list_packs(self.remote) - self.known.packs(self.remote.key)):
            self.known.add_pack(self.remote.key, pack, read_index(self.remote, pack))

    def _probe(self, digests: set[str]) -> set[str]:
        if len(digests) < _PROBE_EACH_BELOW:
            sizes = self.parallel(
                {
                    d: functools.partial(self.remote.size, self.remote.object_path(d))
                    for d in digests
                }
            )
            return {d for d, size in sizes.items() if size is not None}
        prefixes = {d.partition(":")[2][:2] for d in digests}
        listed = self.parallel(
            {p: functools.partial(self.remote.find, f"files/{_FAMILY_DIR}/{p}") for p in prefixes}
        )
        on_remote = {digest_of(path) for paths in listed.values() for path in paths}
        return digests & on_remote

    # --- uploads -------------------------------------------------------------------------

    def upload(self, files: Iterable[str], trees: dict[str, set[str]]) -> Report:
        """Send `files` and then the `trees` (tree object → its files) the remote lacks.

        Only what the remote lacks is looked at here: an object neither there nor in the
        cache is reported in `not_local`, and a tree with such a member is not sent."""
        self.open(writing=True)
        files = set(files)
        located = self.locate(files | set(trees))
        report = Report(present=len(located))
        todo = self._sizes(d for d in files if d not in located)
        report.not_local = sorted(d for d in files if d not in located and d not in todo)
        tree_todo = self._sizes(t for t in trees if t not in located)
        total = sum(todo.values()) + sum(tree_todo.values())
        self.meter.start("push", len(todo) + len(tree_todo), total)
        sent = self._send(todo)
        available = set(located) | sent
        ready = {t: size for t, size in tree_todo.items() if trees[t] <= available}
        report.missing += sorted(t for t in tree_todo if t not in ready)
        sent |= self._send(ready)  # listings last, once all their files are there
        report.transferred = len(sent)
        report.bytes = sum(todo.get(d, 0) + ready.get(d, 0) for d in sent)
        return report

    def _sizes(self, digests: Iterable[str]) -> dict[str, int]:
        """The size of each object the cache holds (the others are left out)."""
        sizes = {}
        for digest in digests:
            with contextlib.suppress(FileNotFoundError):
                sizes[digest] = os.stat(self.store.path(digest)).st_size
        return sizes

    def _send(self, todo: dict[str, int]) -> set[str]:
        """Upload objects: small ones in packs (when there are enough), the rest one by one,
        largest first."""
        small = small_objects(todo)
        loose = sorted((d for d in todo if d not in small), key=lambda d: -todo[d])
        sent = set(self._send_loose(loose, todo))
        packs: dict[Any, Callable[[], Any]] = {
            i: functools.partial(upload_pack, self.store, self.remote, p)
            for i, p in enumerate(plan_packs(small))
        }
        for members in self.parallel(packs).values():
            self.known.add(self.remote.key, members)
            sent.update(members)
            self.meter.advance(len(members), sum(small[d] for d in members))
        return sent

    def _send_loose(self, digests: list[str], sizes: dict[str, int]) -> dict[str, Location]:
        def send(digest: str) -> None:
            self.remote.put_file(str(self.store.path(digest)), self.remote.object_path(digest))
            self.known.add(self.remote.key, {digest: Location()})
            self.meter.advance(1, sizes[digest])

        self.parallel({d: functools.partial(send, d) for d in digests})
        return {d: Location() for d in digests}

    # --- downloads -----------------------------------------------------------------------

    def download(self, infos: Iterable[HashInfo]) -> Report:
        """Bring every object `infos` need (a directory's tree and files) into the cache."""
        self.open(writing=False)
        infos = list(infos)
        report = self._receive({i.hash for i in infos if i.isdir and not self.store.has(i.hash)})
        wanted = {i.hash for i in infos if not i.isdir and not self.store.has(i.hash)}
        for info in infos:
            if info.isdir and self.store.has(info.hash):
                try:
                    entries = self.store.read_tree(info.hash)
                except DataError:
                    report.corrupt.append(info.hash)
                    continue
                wanted |= {e.hash for e in entries if not self.store.has(e.hash)}
        report.add(self._receive(wanted))
        return report

    def _receive(self, digests: set[str]) -> Report:
        report = Report()
        if not digests:
            return report
        located = self.locate(digests)
        report.missing = sorted(digests - set(located))
        loose = [d for d, loc in located.items() if not loc.pack]
        by_pack: dict[str, dict[str, Location]] = {}
        for digest, loc in located.items():
            if loc.pack:
                by_pack.setdefault(loc.pack, {})[digest] = loc
        size = sum(loc.size for loc in located.values())
        self.meter.start("pull", len(located), size)
        tasks: dict[Any, Callable[[], Any]] = {
            d: functools.partial(self._get_loose, d) for d in loose
        }
        tasks.update({p: functools.partial(self._get_pack, p, m) for p, m in by_pack.items()})
        for result in self.parallel(tasks).values():
            for digest, received in result:
                if received is None:
                    report.corrupt.append(digest)
                else:
                    report.transferred += 1
                    report.bytes += received
        return report

    def _get_loose(self, digest: str) -> list[tuple[str, int | None]]:
        tmp = self.store.temp_path()
        try:
            self.remote.get_file(self.remote.object_path(digest), tmp)
            size = _size(tmp)
            ok = self.store.adopt(tmp, digest)
        except OSError as exc:
            raise self.remote.explain(exc, f"store {digest} in the cache") from None
        finally:
            Path(tmp).unlink(missing_ok=True)  # a failed or rejected download leaves nothing
        self.meter.advance(1, size)
        return [(digest, size if ok else None)]

    def _get_pack(self, pack: str, members: dict[str, Location]) -> list[tuple[str, int | None]]:
        results: list[tuple[str, int | None]] = []
        for digest, data in fetch_members(self.remote, pack, members):
            try:
                ok = self.store.adopt_bytes(data, digest)
            except OSError as exc:
                raise self.remote.explain(exc, f"store {digest} in the cache") from None
            results.append((digest, len(data) if ok else None))
            self.meter.advance(1, len(data))
        return results

    # --- small files: run-cache entries, records -----------------------------------------

    def present(self, keys: dict[str, str]) -> set[str]:
        """The keys (`run:…`) whose remote path exists: from the index, else looked up."""
        found = set(self.known.lookup(self.remote.key, keys))
        rest = {k: p for k, p in keys.items() if k not in found and not self.fresh}
        sizes = self.parallel({k: functools.partial(self.remote.size, p) for k, p in rest.items()})
        there = {k for k, size in sizes.items() if size is not None}
        self.known.add(self.remote.key, {k: Location() for k in there})
        return found | there

    def remember(self, key: str) -> None:
        self.known.add(self.remote.key, {key: Location()})

    # --- running many at once ------------------------------------------------------------

    def parallel(self, tasks: dict[Any, Callable[[], Any]]) -> dict[Any, Any]:
        """Run `tasks` on `remote.jobs` threads; the first error stops the rest and is raised."""
        if not tasks:
            return {}
        results: dict[Any, Any] = {}
        pool = ThreadPoolExecutor(min(self.remote.jobs, len(tasks)), thread_name_prefix="remote")
        futures: dict[Future[Any], Any] = {}
        try:  # submitting is inside: a Ctrl-C while tasks start still cleans up
            futures.update({pool.submit(fn): key for key, fn in tasks.items()})
            pending = set(futures)
            while pending:
                done = wait_any(pending)
                pending -= done
                for future in done:
                    results[futures[future]] = future.result()
        except Exception:
            # the transfers under way end soon once the remote has failed: let them settle
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        except BaseException:  # Ctrl-C: stop now, and leave no partial upload behind
            pool.shutdown(wait=False, cancel_futures=True)
            _settle(futures)
            self.remote.abandon()
            raise
        pool.shutdown(wait=False)
        return results


# How long Ctrl-C waits for the transfers under way: each then ends whole or removes its temp
# file itself. Removing a temp file under a transfer still writing it (an SFTP upload) would
# let the transfer create it again after the removal.
SETTLE_SECONDS = 5.0


def _settle(futures: Iterable[Future[Any]]) -> None:
    """Wait (briefly) for the transfers under way to end; a second Ctrl-C stops the wait."""
    running = [f for f in futures if not f.done()]
    with contextlib.suppress(BaseException):
        wait_all(running, timeout=SETTLE_SECONDS)


@contextlib.contextmanager
def connected(
    store: ObjectStore, settings: RemoteSettings, project_root: Path, meter: Meter | None = None
) -> Iterator[Transfer]:
    """A transfer between `store` (in `<project>/.pipeline/cache`) and the remote `settings`."""
    remote = Remote(settings, project_root)
    known = KnownIndex(store.root.parent / KNOWN_DB)
    try:
        yield Transfer(store, remote, known, meter)
    finally:
        known.close()


def digest_of(path: str) -> str:
    """`files/xxh3/ab/cdef…` → `xxh3_128:abcdef…`."""
    parts = path.split("/")
    return f"{ALGORITHM}:{parts[-2]}{parts[-1]}"


def _size(path: str) -> int:
    with contextlib.suppress(OSError):
        return os.path.getsize(path)
    return 0
