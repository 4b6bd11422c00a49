"""The known-objects index (`.pipeline/remotes.db`): what this machine knows each remote holds,
where (its own file or a pack), kept per remote, tied to the remote's generation, shared by
threads and later commands, and rebuilt when damaged (it is only a cache).
"""

from __future__ import annotations

import gc
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.core.hashing import digest_bytes
from pipeline.store.known import KnownIndex, Location

REMOTE = "s3://bucket/store"
OTHER = "ssh://host/srv/store"


def digests(count: int, tag: str = "d") -> list[str]:
    return [digest_bytes(f"{tag}{i}".encode()) for i in range(count)]


@pytest.fixture
def open_index(tmp_path: Path) -> Iterator[Callable[[], KnownIndex]]:
    """`open_index()`: the index at one path, opened again on each call (a later command)."""
    opened: list[KnownIndex] = []

    def make() -> KnownIndex:
        index = KnownIndex(tmp_path / ".pipeline" / "remotes.db")
        opened.append(index)
        return index

    yield make
    for index in opened:
        index.close()


def test_what_was_added_is_found_for_that_remote_only(open_index: Callable[[], KnownIndex]) -> None:
    index = open_index()
    index.adopt(REMOTE, "g1")
    index.adopt(OTHER, "g1")
    loose, packed, unknown = digests(3)
    index.add(REMOTE, {loose: Location(), packed: Location("pack1", 100, 42)})
    assert index.lookup(REMOTE, [loose, packed, unknown]) == {
        loose: Location(),
        packed: Location("pack1", 100, 42),
    }
    assert index.lookup(OTHER, [loose, packed]) == {}
    assert index.lookup(REMOTE, []) == {}


def test_lookups_of_many_digests_go_in_batches(open_index: Callable[[], KnownIndex]) -> None:
    index = open_index()
    known = digests(1234)
    index.add(REMOTE, dict.fromkeys(known[:1200], Location()))
    assert set(index.lookup(REMOTE, known)) == set(known[:1200])


def test_a_later_command_sees_what_an_earlier_one_recorded(
    open_index: Callable[[], KnownIndex],
) -> None:
    first = open_index()
    first.adopt(REMOTE, "g1")
    (digest,) = digests(1)
    first.add_pack(REMOTE, "pack1", {digest: Location("pack1", 0, 10)})
    first.close()
    later = open_index()
    later.adopt(REMOTE, "g1")  # the same generation: nothing is forgotten
    assert later.lookup(REMOTE, [digest]) == {digest: Location("pack1", 0, 10)}
    assert later.packs(REMOTE) == {"pack1"}


def test_a_new_generation_forgets_that_remote_and_no_other(
    open_index: Callable[[], KnownIndex],
) -> None:
    index = open_index()
    index.adopt(REMOTE, "g1")
    index.adopt(OTHER, "g1")
    mine, theirs = digests(2)
    index.add_pack(REMOTE, "pack1", {mine: Location("pack1", 0, 1)})
    index.add(OTHER, {theirs: Location()})
    index.adopt(REMOTE, "g2")  # gc --remote ran
    assert index.lookup(REMOTE, [mine]) == {}
    assert index.packs(REMOTE) == set()
    assert index.lookup(OTHER, [theirs]) == {theirs: Location()}
    index.add(REMOTE, {mine: Location()})
    index.adopt(REMOTE, "g2")
    assert index.lookup(REMOTE, [mine]) == {mine: Location()}


def test_a_remote_first_seen_empty_is_forgotten_once_pushed_to(
    open_index: Callable[[], KnownIndex],
) -> None:
    """No marker yet (generation None), then someone's first push creates one."""
    index = open_index()
    index.adopt(REMOTE, None)
    (digest,) = digests(1)
    index.add(REMOTE, {digest: Location()})
    index.adopt(REMOTE, None)
    assert index.lookup(REMOTE, [digest]) == {digest: Location()}
    index.adopt(REMOTE, "g1")
    assert index.lookup(REMOTE, [digest]) == {}


def test_adding_again_updates_where_an_object_lies(open_index: Callable[[], KnownIndex]) -> None:
    index = open_index()
    (digest,) = digests(1)
    index.add(REMOTE, {digest: Location("old", 5, 1)})
    index.add(REMOTE, {digest: Location()})
    assert index.lookup(REMOTE, [digest]) == {digest: Location()}


def test_threads_of_one_transfer_add_at_once(open_index: Callable[[], KnownIndex]) -> None:
    index = open_index()
    per_thread = [digests(25, f"t{n}-") for n in range(8)]
    barrier = threading.Barrier(len(per_thread))
    errors: list[BaseException] = []

    def add_all(mine: list[str]) -> None:
        try:
            barrier.wait()
            for digest in mine:
                index.add(REMOTE, {digest: Location()})
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=add_all, args=(d,)) for d in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    everything = [d for mine in per_thread for d in mine]
    assert set(index.lookup(REMOTE, everything)) == set(everything)


def test_two_commands_may_hold_the_index_at_once(open_index: Callable[[], KnownIndex]) -> None:
    first, second = open_index(), open_index()
    a, b = digests(2)
    first.add(REMOTE, {a: Location()})
    second.add(REMOTE, {b: Location()})
    assert set(first.lookup(REMOTE, [a, b])) == {a, b}
    assert set(second.lookup(REMOTE, [a, b])) == {a, b}


@pytest.mark.parametrize("damage", [b"not a database at all" * 100, b""])
def test_a_damaged_index_is_rebuilt_empty(tmp_path: Path, damage: bytes) -> None:
    path = tmp_path / ".pipeline" / "remotes.db"
    path.parent.mkdir()
    path.write_bytes(damage)
    index = KnownIndex(path)
    try:
        assert index.lookup(REMOTE, digests(3)) == {}
        (digest,) = digests(1)
        index.add(REMOTE, {digest: Location()})
        assert index.lookup(REMOTE, [digest]) == {digest: Location()}
    finally:
        index.close()


def test_the_index_creates_its_directory(tmp_path: Path) -> None:
    index = KnownIndex(tmp_path / "new" / ".pipeline" / "remotes.db")
    index.close()
    assert (tmp_path / "new" / ".pipeline" / "remotes.db").is_file()


def test_a_closed_index_is_empty_and_leaves_no_connection_to_the_collector(
    tmp_path: Path,
) -> None:
    """SQLite connections are always in a reference cycle (their statement cache); one left
    open is closed by the cyclic collector, on whatever thread it runs. Inside a Dask worker's
    `sys._current_frames()` that release of the GIL deadlocked the worker (CPython 3.11)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        index = KnownIndex(tmp_path / ".pipeline" / "remotes.db")
        (digest,) = digests(1)
        index.add(REMOTE, {digest: Location()})
        index.close()
        index.close()  # twice: harmless
        # a transfer thread finishing late: finds nothing, writes nothing, never fails
        index.adopt(REMOTE, "g2")
        index.add(REMOTE, {digest: Location()})
        index.add_pack(REMOTE, "p", {digest: Location("p", 0, 1)})
        assert index.lookup(REMOTE, [digest]) == {}
        assert index.packs(REMOTE) == set()
        assert not index.checked_within(REMOTE, 60)
        del index
        gc.collect()
        assert not [o for o in gc.garbage if isinstance(o, sqlite3.Connection)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
