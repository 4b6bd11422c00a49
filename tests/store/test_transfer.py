"""Transfers between a cache and a real remote (a directory, S3 on moto, SSH on sshd): uploads
and verified downloads, packs for many small files, trees only after their files, no-op pushes
that ask the remote nothing, corrupt remote objects rejected, and network errors that are never
taken for absent objects.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.hashing import HashInfo, digest_bytes, tree_manifest
from pipeline.errors import DataError
from pipeline.store import transfer as transfer_module
from pipeline.store.known import KnownIndex
from pipeline.store.objects import ObjectStore
from pipeline.store.packs import PACK_AT_LEAST, PACK_BELOW
from pipeline.store.remote import Remote
from pipeline.store.transfer import Transfer
from tests.servers import RemoteSpec, S3Server, isolate_aws


def rechecking(spec: RemoteSpec) -> RemoteSpec:
    """The same remote with `recheck: 0`: its generation is read by every command."""
    return dataclasses.replace(spec, options={**spec.options, "recheck": 0})


@dataclass
class Side:
    """One machine's end: its cache, its known-objects index, and the remote it opened."""

    root: Path
    store: ObjectStore
    known: KnownIndex
    remote: Remote

    def transfer(self, meter: Any = None) -> Transfer:
        return Transfer(self.store, self.remote, self.known, meter)

    def put(self, data: bytes) -> str:
        digest = digest_bytes(data)
        self.store.put_bytes(data, digest)
        return digest

    def put_dir(self, files: dict[str, bytes]) -> tuple[HashInfo, set[str]]:
        """A stored directory: its tree object's info and its files' digests."""
        digests = {path: self.put(data) for path, data in files.items()}
        tree = self.put(tree_manifest((p, d, False) for p, d in digests.items()))
        size = sum(len(d) for d in files.values())
        return HashInfo(tree, size, len(files), isdir=True), set(digests.values())

    def temp_leftovers(self) -> list[str]:
        return os.listdir(self.store.tmp) if self.store.tmp.is_dir() else []


MakeSide = Callable[..., Side]


@pytest.fixture
def make_side(tmp_path: Path) -> Iterator[MakeSide]:
    """`make_side(name, spec)`: a fresh cache at tmp_path/name, with the remote `spec` opened;
    the same name again is the same machine (same cache and index files, new handles)."""
    opened: list[KnownIndex] = []

    def make(name: str, spec: RemoteSpec) -> Side:
        root = tmp_path / name
        known = KnownIndex(root / ".pipeline" / "remotes.db")
        opened.append(known)
        store = ObjectStore(root / ".pipeline" / "cache")
        return Side(root, store, known, Remote(spec.settings(), root))

    yield make
    for known in opened:
        known.close()


@dataclass
class RecordingMeter:
    started: list[tuple[str, int, int]] = field(default_factory=list)
    files: int = 0
    size: int = 0

    def start(self, label: str, files: int, size: int) -> None:
        self.started.append((label, files, size))

    def advance(self, files: int, size: int) -> None:
        self.files += files
        self.size += size


class CountingFs:
    """The remote's own filesystem, with every method call counted by name."""

    def __init__(self, fs: Any) -> None:
        self._fs = fs
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._fs, name)
        if not callable(value):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return value(*args, **kwargs)

        return counted


def count_calls(remote: Remote, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    spy = CountingFs(remote.fs)
    monkeypatch.setattr(remote, "fs", spy)
    return spy.calls


def blobs(count: int, size: int, tag: str) -> list[bytes]:
    """`count` distinct blobs of `size` bytes (at least a few bytes each)."""
    return [(f"{tag}-{i}:".encode() + os.urandom(size))[: max(size, 12)] for i in range(count)]


def on_remote(remote: Remote, digest: str) -> bool:
    return remote.size(remote.object_path(digest)) is not None


# --- round trips ---------------------------------------------------------------------------------


def test_upload_then_download_round_trips(make_side: MakeSide, any_remote: RemoteSpec) -> None:
    a = make_side("a", any_remote)
    big = os.urandom(PACK_BELOW + 1000)
    files = [a.put(big), a.put(b""), a.put(b"a small file\n")]
    tree, members = a.put_dir({"x.txt": b"x\n", "sub/y.bin": os.urandom(5000), "z": b""})
    meter = RecordingMeter()
    report = a.transfer(meter).upload(set(files) | members, {tree.hash: members})
    everything = set(files) | members | {tree.hash}
    assert (report.transferred, report.present, report.missing) == (len(everything), 0, [])
    assert report.bytes == sum(a.store.path(d).stat().st_size for d in everything)
    assert meter.started == [("push", len(everything), report.bytes)]
    assert (meter.files, meter.size) == (len(everything), report.bytes)
    assert all(on_remote(a.remote, d) for d in everything)  # few small files: no packs
    assert a.remote.find("packs") == []
    assert a.remote.read_bytes(a.remote.object_path(files[0])) == big

    b = make_side("b", any_remote)
    infos = [HashInfo(d, 0, 1) for d in files] + [tree]
    report = b.transfer().download(infos)
    assert (report.transferred, report.missing, report.corrupt) == (len(everything), [], [])
    for digest in everything:
        assert b.store.path(digest).read_bytes() == a.store.path(digest).read_bytes()
        assert b.store.path(digest).stat().st_mode & 0o777 == 0o444
    assert b.temp_leftovers() == []
    assert b.transfer().download(infos).transferred == 0  # all in the cache: nothing asked


def test_objects_never_pushed_are_reported_missing(
    make_side: MakeSide, any_remote: RemoteSpec
) -> None:
    a = make_side("a", any_remote)
    pushed = a.put(b"pushed\n")
    a.transfer().upload({pushed}, {})
    b = make_side("b", any_remote)
    absent = digest_bytes(b"never pushed\n")
    report = b.transfer().download([HashInfo(pushed, 7, 1), HashInfo(absent, 13, 1)])
    assert report.missing == [absent]
    assert report.transferred == 1
    assert b.store.has(pushed)
    assert not b.store.has(absent)


# --- packs ---------------------------------------------------------------------------------------


def test_many_small_files_travel_in_packs(make_side: MakeSide, any_remote: RemoteSpec) -> None:
    a = make_side("a", any_remote)
    digests = {a.put(data) for data in blobs(PACK_AT_LEAST + 4, 700, "small")}
    big = a.put(os.urandom(PACK_BELOW))  # not small: its own file
    report = a.transfer().upload(digests | {big}, {})
    assert report.transferred == len(digests) + 1
    packs = sorted(a.remote.find("packs"))
    assert len(packs) == 2
    assert packs[0].endswith(".idx")
    assert packs[1].endswith(".pack")
    assert a.remote.find("files") == [a.remote.relative(a.remote.object_path(big))]

    b = make_side("b", any_remote)
    report = b.transfer().download([HashInfo(d, 0, 1) for d in digests | {big}])
    assert (report.transferred, report.missing, report.corrupt) == (len(digests) + 1, [], [])
    assert all(b.store.path(d).read_bytes() == a.store.path(d).read_bytes() for d in digests)


def test_a_few_members_of_a_pack_come_by_ranged_reads(
    make_side: MakeSide, any_remote: RemoteSpec
) -> None:
    a = make_side("a", any_remote)
    digests = sorted(a.put(data) for data in blobs(PACK_AT_LEAST + 4, 20_000, "member"))
    a.transfer().upload(set(digests), {})
    wanted = [digests[-5], digests[-2]]  # 2 of 20, far into the pack: read by range
    b = make_side("b", any_remote)
    report = b.transfer().download([HashInfo(d, 0, 1) for d in wanted])
    assert (report.transferred, report.corrupt, report.missing) == (2, [], [])
    assert all(b.store.path(d).read_bytes() == a.store.path(d).read_bytes() for d in wanted)
    assert sorted(b.store.all_objects()) == wanted


def test_fewer_small_files_than_a_pack_go_one_by_one(
    make_side: MakeSide, any_remote: RemoteSpec
) -> None:
    a = make_side("a", any_remote)
    digests = {a.put(data) for data in blobs(PACK_AT_LEAST - 1, 100, "few")}
    a.transfer().upload(digests, {})
    assert a.remote.find("packs") == []
    assert len(a.remote.find("files")) == len(digests)


# --- trees last ----------------------------------------------------------------------------------


def test_a_tree_is_uploaded_only_after_all_its_files(
    make_side: MakeSide, any_remote: RemoteSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make_side("a", any_remote)
    tree, members = a.put_dir({f"f{i}.bin": os.urandom(1000 + i) for i in range(4)})
    failing = a.remote.object_path(sorted(members)[1])
    real_put = a.remote.put_file

    def put_file(local: str, path: str) -> None:
        if path == failing:
            raise DataError(f"remote 'origin' did not answer while trying to upload {path}")
        real_put(local, path)

    monkeypatch.setattr(a.remote, "put_file", put_file)
    with pytest.raises(DataError, match="did not answer"):
        a.transfer().upload(members, {tree.hash: members})
    assert not on_remote(a.remote, tree.hash)
    assert not on_remote(a.remote, sorted(members)[1])

    monkeypatch.setattr(a.remote, "put_file", real_put)  # the network is back: push again
    report = a.transfer().upload(members, {tree.hash: members})
    assert report.transferred + report.present == len(members) + 1
    assert report.transferred >= 2  # the failed file and the tree were still to send
    assert all(on_remote(a.remote, d) for d in members | {tree.hash})


def test_a_tree_whose_files_are_nowhere_is_not_uploaded(
    make_side: MakeSide, any_remote: RemoteSpec
) -> None:
    a = make_side("a", any_remote)
    tree, members = a.put_dir({"kept.txt": b"kept\n", "lost.txt": b"lost\n"})
    lost = digest_bytes(b"lost\n")
    report = a.transfer().upload(members - {lost}, {tree.hash: members})
    assert report.missing == [tree.hash]
    assert not on_remote(a.remote, tree.hash)
    assert on_remote(a.remote, digest_bytes(b"kept\n"))


# --- the known-objects index ---------------------------------------------------------------------


def test_a_second_push_sends_nothing_and_asks_the_remote_nothing(
    make_side: MakeSide, any_remote: RemoteSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_side("a", any_remote)
    small = {first.put(data) for data in blobs(PACK_AT_LEAST + 2, 300, "s")}
    loose = {first.put(os.urandom(PACK_BELOW + i)) for i in range(2)}
    tree, members = first.put_dir({"a.txt": b"a\n", "b.txt": b"b\n"})
    files = small | loose | members
    assert first.transfer().upload(files, {tree.hash: members}).transferred == len(files) + 1

    again = make_side("a", any_remote)  # the same machine, a later command
    calls = count_calls(again.remote, monkeypatch)
    report = again.transfer().upload(files, {tree.hash: members})
    assert (report.transferred, report.bytes, report.present) == (0, 0, len(files) + 1)
    assert calls == Counter()  # within `recheck` seconds of the last look: no request at all

    checking = make_side("a", rechecking(any_remote))  # `recheck: 0`: every command looks
    calls = count_calls(checking.remote, monkeypatch)
    assert checking.transfer().upload(files, {tree.hash: members}).transferred == 0
    assert calls == Counter({"cat_file": 1})  # the generation marker, and nothing else


def test_a_download_of_known_objects_lists_nothing(
    make_side: MakeSide, any_remote: RemoteSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make_side("a", any_remote)
    digests = {a.put(data) for data in blobs(3, 100, "k")}
    a.transfer().upload(digests, {})
    for digest in digests:  # the cache lost them (gc), the index still knows the remote has them
        a.store.path(digest).unlink()
    again = make_side("a", any_remote)
    calls = count_calls(again.remote, monkeypatch)
    report = again.transfer().download([HashInfo(d, 0, 1) for d in digests])
    assert report.transferred == len(digests)
    assert not {"find", "ls", "info", "exists"} & set(calls)


def test_many_unknown_objects_are_found_by_listing_prefixes(
    make_side: MakeSide, any_remote: RemoteSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects another client wrote one by one: many unknown ones (a few hundred; here, with
    the threshold lowered, 20) are found by listing their hash prefixes, not one by one."""
    monkeypatch.setattr(transfer_module, "_PROBE_EACH_BELOW", 10)
    a = make_side("a", any_remote)
    present = [digest_bytes(data) for data in blobs(16, 8, "p")]
    absent = [digest_bytes(data) for data in blobs(4, 8, "absent")]
    a.remote.renew_generation()  # the other client's first push started a generation
    for digest in present:
        a.remote.write_bytes(a.remote.object_path(digest), b"")  # existence is what counts
    transfer = a.transfer()
    transfer.open(writing=True)
    calls = count_calls(a.remote, monkeypatch)
    found = transfer.locate(present + absent)
    assert set(found) == set(present)
    prefixes = {d.partition(":")[2][:2] for d in present + absent}
    assert calls["find"] == len(prefixes) + 1  # and one listing of packs/
    assert calls["info"] == 0


def test_a_renewed_generation_empties_the_known_index(
    make_side: MakeSide, any_remote: RemoteSpec
) -> None:
    """`gc --remote` deletes objects and renews the generation: every client forgets what it
    knew of that remote, and its next push sends the objects again."""
    a = make_side("a", any_remote)
    digests = {a.put(data) for data in blobs(3, 100, "g")}
    a.transfer().upload(digests, {})
    assert set(a.known.lookup(a.remote.key, digests)) == digests

    a.remote.delete([a.remote.object_path(d) for d in digests])  # what gc --remote does
    a.remote.renew_generation()

    trusting = make_side("a", any_remote).transfer()  # within `recheck` seconds: not seen yet
    trusting.open(writing=True)
    assert set(trusting.known.lookup(a.remote.key, digests)) == digests

    transfer = make_side("a", rechecking(any_remote)).transfer()
    transfer.open(writing=True)
    assert transfer.known.lookup(a.remote.key, digests) == {}
    report = transfer.upload(digests, {})
    assert (report.transferred, report.present) == (len(digests), 0)
    assert all(on_remote(a.remote, d) for d in digests)


# --- corrupt objects -----------------------------------------------------------------------------


def test_a_corrupt_object_on_the_remote_is_rejected_and_never_placed(
    make_side: MakeSide, any_remote: RemoteSpec
) -> None:
    a = make_side("a", any_remote)
    good, bad = a.put(b"good object\n"), a.put(b"bad object\n")
    tree, members = a.put_dir({"m.txt": b"member\n"})
    a.transfer().upload({good, bad} | members, {tree.hash: members})
    a.remote.fs.pipe_file(a.remote.object_path(bad), b"BAD OBJECT\n")  # same size, other bytes
    a.remote.fs.pipe_file(a.remote.object_path(tree.hash), b"[]")

    b = make_side("b", any_remote)
    report = b.transfer().download([HashInfo(good, 12, 1), HashInfo(bad, 11, 1), tree])
    assert sorted(report.corrupt) == sorted([bad, tree.hash])
    assert report.transferred == 1
    assert b.store.has(good)
    assert not b.store.has(bad)
    assert not b.store.has(tree.hash)
    assert b.temp_leftovers() == []
    assert list(b.store.all_objects()) == [good]


def test_a_corrupt_member_of_a_pack_is_rejected(
    make_side: MakeSide, any_remote: RemoteSpec
) -> None:
    a = make_side("a", any_remote)
    digests = sorted(a.put(data) for data in blobs(PACK_AT_LEAST, 500, "c"))
    a.transfer().upload(set(digests), {})
    (pack,) = [p for p in a.remote.find("packs") if p.endswith(".pack")]
    path = f"{a.remote.base}/{pack}"
    data = bytearray(a.remote.read_bytes(path))
    data[10:20] = b"X" * 10  # inside the first member (digest order)
    a.remote.fs.pipe_file(path, bytes(data))

    b = make_side("b", any_remote)
    report = b.transfer().download([HashInfo(d, 0, 1) for d in digests])
    assert report.corrupt == [digests[0]]
    assert report.transferred == len(digests) - 1
    assert not b.store.has(digests[0])
    assert all(b.store.has(d) for d in digests[1:])


# --- faults --------------------------------------------------------------------------------------


def test_a_remote_that_stops_answering_is_an_error_not_missing_objects(
    make_side: MakeSide,
    moto_process: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    spec = moto_process.spec(moto_process.new_bucket())
    a = make_side("a", spec)
    digest = a.put(b"pushed before the server died\n")
    a.transfer().upload({digest}, {})
    moto_process.stop()
    b = make_side("b", spec)
    with pytest.raises(DataError, match="did not answer"):
        b.transfer().download([HashInfo(digest, 0, 1)])
    assert not b.store.has(digest)
    assert b.known.lookup(b.remote.key, [digest]) == {}
    with pytest.raises(DataError, match="did not answer"):
        a.transfer().upload({a.put(b"new\n")}, {})


def test_pushing_to_a_missing_bucket_says_so(
    make_side: MakeSide, moto_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolate_aws(monkeypatch, tmp_path)
    a = make_side("a", moto_server.spec("no-such-bucket-here"))
    with pytest.raises(DataError, match="the bucket does not exist"):
        a.transfer().upload({a.put(b"data\n")}, {})


def test_pulling_from_a_missing_bucket_says_so(
    make_side: MakeSide, moto_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Not "every object is missing": the bucket itself is, and the error says so."""
    isolate_aws(monkeypatch, tmp_path)
    b = make_side("b", moto_server.spec("no-such-bucket-here"))
    with pytest.raises(DataError, match="the bucket does not exist"):
        b.transfer().download([HashInfo(digest_bytes(b"data\n"), 5, 1)])
