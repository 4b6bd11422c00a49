"""Packs: many small objects in one remote file plus an index of where each lies. Any set of
small blobs packs and reads back identically (by ranged reads or the whole pack); the index is
written last, so a pack without one is invisible; a damaged index never lets wrong bytes in.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.config import RemoteSettings
from pipeline.core.hashing import HashInfo, digest_bytes
from pipeline.store.known import KnownIndex, Location
from pipeline.store.objects import ObjectStore
from pipeline.store.packs import (
    PACK_AT_LEAST,
    PACK_BELOW,
    PACK_SIZE,
    Pack,
    fetch_members,
    list_packs,
    plan_packs,
    read_index,
    small_objects,
    upload_pack,
)
from pipeline.store.remote import Remote
from pipeline.store.transfer import Transfer
from tests.servers import RemoteSpec


def stored(store: ObjectStore, blobs: list[bytes]) -> dict[str, bytes]:
    found = {}
    for data in blobs:
        digest = digest_bytes(data)
        store.put_bytes(data, digest)
        found[digest] = data
    return found


def pack_of(objects: dict[str, bytes]) -> Pack:
    return Pack(tuple((d, len(objects[d])) for d in sorted(objects)))


@pytest.fixture
def local(tmp_path: Path) -> tuple[ObjectStore, Remote]:
    store = ObjectStore(tmp_path / "cache")
    return store, Remote(RemoteSettings("o", str(tmp_path / "remote")), tmp_path)


class Calls:
    """The remote filesystem's calls by name (reads still go to the real filesystem)."""

    def __init__(self, fs: Any) -> None:
        self._fs = fs
        self.calls: Counter[str] = Counter()
        self.ranges: list[tuple[int | None, int | None]] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._fs, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name == "cat_file":
                self.ranges.append((kwargs.get("start"), kwargs.get("end")))
            return value(*args, **kwargs)

        return counted if callable(value) else value


# --- planning ------------------------------------------------------------------------------------


@given(
    st.dictionaries(st.text("0123456789abcdef", min_size=8, max_size=8), st.integers(0, 9 << 20))
)
def test_plan_puts_every_object_in_exactly_one_pack_in_digest_order(sizes: dict[str, int]) -> None:
    digests = {f"xxh3_128:{key}": size for key, size in sizes.items()}
    planned = plan_packs(digests)
    members = [digest for pack in planned for digest, _ in pack.members]
    assert members == sorted(digests)
    for pack in planned:
        assert pack.members
        assert pack.size <= PACK_SIZE or len(pack.members) == 1
        assert all(size == digests[d] for d, size in pack.members)
    for current, following in itertools.pairwise(planned):  # each pack is as full as it can be
        assert current.size + following.members[0][1] > PACK_SIZE


def test_only_objects_below_the_threshold_are_small() -> None:
    sizes = {f"d{i}": 4 for i in range(PACK_AT_LEAST - 1)}
    sizes |= {"below": PACK_BELOW - 1, "at": PACK_BELOW}
    assert set(small_objects(sizes)) == set(sizes) - {"at"}


def test_fewer_small_objects_than_a_pack_needs_go_one_by_one() -> None:
    sizes = {f"d{i}": 4 for i in range(PACK_AT_LEAST - 1)}
    assert small_objects(sizes) == {}
    assert len(small_objects({**sizes, "one more": 4})) == PACK_AT_LEAST


# --- packing and reading back --------------------------------------------------------------------


@settings(max_examples=30)
@given(
    blobs=st.lists(st.binary(max_size=3000), min_size=1, max_size=30, unique=True),
    data=st.data(),
)
def test_any_set_of_small_blobs_packs_and_reads_back_identically(
    blobs: list[bytes], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = ObjectStore(root / "cache")
        remote = Remote(RemoteSettings("o", str(root / "remote")), root)
        objects = stored(store, blobs)
        pack = pack_of(objects)
        where = upload_pack(store, remote, pack)
        assert set(where) == set(objects)
        assert {loc.pack for loc in where.values()} == {next(iter(where.values())).pack}
        assert read_index(remote, next(iter(where.values())).pack) == where
        assert list_packs(remote) == {next(iter(where.values())).pack}
        assert dict(fetch_members(remote, where[next(iter(where))].pack, where)) == objects
        some = data.draw(st.sets(st.sampled_from(sorted(objects)), min_size=1))
        wanted = {d: where[d] for d in some}
        assert dict(fetch_members(remote, wanted[next(iter(wanted))].pack, wanted)) == {
            d: objects[d] for d in some
        }


def test_the_same_members_make_the_same_pack(local: tuple[ObjectStore, Remote]) -> None:
    """A pack is named by its index: pushing the same objects again rewrites the same files."""
    store, remote = local
    objects = stored(store, [b"one", b"two", b"three"])
    first = upload_pack(store, remote, pack_of(objects))
    second = upload_pack(store, remote, pack_of(objects))
    assert first == second
    assert sorted(remote.find("packs")) == sorted(
        f"packs/{next(iter(first.values())).pack}.{suffix}" for suffix in ("idx", "pack")
    )


def test_packs_on_every_backend(any_remote: RemoteSpec, tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "cache")
    remote = Remote(any_remote.settings(), tmp_path)
    objects = stored(store, [f"blob {i}\n".encode() * (i + 1) for i in range(20)])
    where = upload_pack(store, remote, pack_of(objects))
    (name,) = {loc.pack for loc in where.values()}
    assert list_packs(remote) == {name}
    assert read_index(remote, name) == where
    assert dict(fetch_members(remote, name, where)) == objects


def test_few_far_members_are_read_by_range_and_many_in_one_read(
    local: tuple[ObjectStore, Remote], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, remote = local
    objects = stored(store, [bytes([i]) * 1000 for i in range(100)])
    where = upload_pack(store, remote, pack_of(objects))
    (name,) = {loc.pack for loc in where.values()}
    spy = Calls(remote.fs)
    monkeypatch.setattr(remote, "fs", spy)
    last_two = dict(sorted(where.items(), key=lambda item: item[1].offset)[-2:])
    assert dict(fetch_members(remote, name, last_two)) == {d: objects[d] for d in last_two}
    assert spy.ranges == [(loc.offset, loc.offset + loc.size) for loc in last_two.values()]
    spy.ranges.clear()
    assert dict(fetch_members(remote, name, where)) == objects
    assert spy.ranges == [(0, 100 * 1000)]


# --- damage --------------------------------------------------------------------------------------


def test_a_pack_without_its_index_is_invisible(local: tuple[ObjectStore, Remote]) -> None:
    store, remote = local
    objects = stored(store, [b"a", b"b"])
    where = upload_pack(store, remote, pack_of(objects))
    (name,) = {loc.pack for loc in where.values()}
    remote.delete([remote.pack_path(name, "idx")])  # as if the push died before the index
    assert list_packs(remote) == set()
    assert read_index(remote, name) == {}


@pytest.mark.parametrize(
    "index", [b"{not json", b"null", b"5", b'{"abc": 1}', b'[["a", 0]]', b'[["a", "x", 1]]']
)
def test_a_damaged_index_lists_no_members(local: tuple[ObjectStore, Remote], index: bytes) -> None:
    store, remote = local
    objects = stored(store, [b"a", b"b"])
    where = upload_pack(store, remote, pack_of(objects))
    (name,) = {loc.pack for loc in where.values()}
    remote.write_bytes(remote.pack_path(name, "idx"), index)
    assert read_index(remote, name) == {}


@pytest.fixture
def pushed(tmp_path: Path) -> Iterator[tuple[Remote, dict[str, bytes], str]]:
    """A local remote holding one pack of PACK_AT_LEAST objects, pushed by a Transfer."""
    root = tmp_path / "a"
    store = ObjectStore(root / "cache")
    remote = Remote(RemoteSettings("o", str(tmp_path / "remote")), root)
    known = KnownIndex(root / "remotes.db")
    objects = stored(store, [f"object {i}\n".encode() * 50 for i in range(PACK_AT_LEAST)])
    Transfer(store, remote, known).upload(set(objects), {})
    known.close()
    (index,) = [p for p in remote.find("packs") if p.endswith(".idx")]
    yield remote, objects, index[len("packs/") : -len(".idx")]


def download_all(
    tmp_path: Path, remote: Remote, objects: dict[str, bytes]
) -> tuple[Any, ObjectStore]:
    store = ObjectStore(tmp_path / "b" / "cache")
    known = KnownIndex(tmp_path / "b" / "remotes.db")
    try:
        report = Transfer(store, remote, known).download([HashInfo(d, 0, 1) for d in objects])
    finally:
        known.close()
    return report, store


def test_a_garbled_index_in_a_transfer_means_missing_not_a_crash(
    tmp_path: Path, pushed: tuple[Remote, dict[str, bytes], str]
) -> None:
    remote, objects, name = pushed
    remote.write_bytes(remote.pack_path(name, "idx"), b"\x00garbage")
    report, store = download_all(tmp_path, remote, objects)
    assert sorted(report.missing) == sorted(objects)
    assert list(store.all_objects()) == []


def test_an_index_pointing_at_the_wrong_bytes_lets_none_of_them_in(
    tmp_path: Path, pushed: tuple[Remote, dict[str, bytes], str]
) -> None:
    remote, objects, name = pushed
    rows = read_index(remote, name)
    shifted = [[d, loc.offset + 1, loc.size] for d, loc in rows.items()]  # off by one byte
    remote.write_bytes(remote.pack_path(name, "idx"), json.dumps(shifted).encode())
    report, store = download_all(tmp_path, remote, objects)
    assert sorted(report.corrupt) == sorted(objects)
    assert report.transferred == 0
    assert list(store.all_objects()) == []


def test_an_index_of_a_truncated_pack_lets_none_of_them_in(
    tmp_path: Path, pushed: tuple[Remote, dict[str, bytes], str]
) -> None:
    remote, objects, name = pushed
    path = remote.pack_path(name, "pack")
    remote.write_bytes(path, remote.read_bytes(path)[:100])  # the first member, barely
    report, store = download_all(tmp_path, remote, objects)
    assert sorted(report.corrupt) == sorted(objects)
    assert list(store.all_objects()) == []


def test_known_locations_come_from_the_index(local: tuple[ObjectStore, Remote]) -> None:
    store, remote = local
    objects = stored(store, [b"x" * 10, b"y" * 20])
    where = upload_pack(store, remote, pack_of(objects))
    ordered = sorted(objects)
    assert where[ordered[0]] == Location(where[ordered[0]].pack, 0, len(objects[ordered[0]]))
    assert where[ordered[1]].offset == len(objects[ordered[0]])
