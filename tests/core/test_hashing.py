"""Content hashes: files are their bytes, directories their sorted tree manifest."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.hashing import (
    Hasher,
    HashInfo,
    digest_bytes,
    file_digest,
    hash_file,
    tree_manifest,
)


def _xxh(data: bytes) -> str:
    return "xxh3_128:" + xxhash.xxh3_128(data).hexdigest()


def test_file_digest_of_known_content(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    assert file_digest(path) == "xxh3_128:99aa06d3014798d86001c324468d497f"
    path.write_bytes(b"hello\n")
    assert file_digest(path) == _xxh(b"hello\n") == digest_bytes(b"hello\n")
    assert hash_file(path) == HashInfo(_xxh(b"hello\n"), 6, 1)


@settings(max_examples=100)
@given(st.binary(max_size=5000))
def test_file_digest_equals_xxhash_of_the_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.getbasetemp() / "digest-me"
    path.write_bytes(data)
    assert file_digest(path) == _xxh(data) == digest_bytes(data)


def test_file_digest_of_a_file_larger_than_one_read(tmp_path: Path) -> None:
    data = os.urandom((1 << 20) * 2 + 12345)  # spans three 1 MiB reads
    path = tmp_path / "big"
    path.write_bytes(data)
    assert file_digest(path) == _xxh(data)


@settings(max_examples=100)
@given(st.binary(min_size=1, max_size=2000), st.data())
def test_any_single_byte_change_changes_the_hash(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, draw: st.DataObject
) -> None:
    index = draw.draw(st.integers(0, len(data) - 1))
    new_byte = draw.draw(st.integers(0, 255).filter(lambda b: b != data[index]))
    changed = data[:index] + bytes([new_byte]) + data[index + 1 :]
    path = tmp_path_factory.getbasetemp() / "one-byte"
    path.write_bytes(data)
    before = file_digest(path)
    path.write_bytes(changed)
    assert file_digest(path) != before


# -- directories -------------------------------------------------------------------------------

_FILE_NAMES = st.text(alphabet="abcdefgh_-.", min_size=1, max_size=6).filter(
    lambda n: n not in (".", "..")
)


_TREES = st.dictionaries(
    st.lists(_FILE_NAMES, min_size=1, max_size=3).map("/".join),
    st.binary(max_size=50),
    min_size=1,
    max_size=8,
).filter(
    # no path may be both a file and a directory
    lambda tree: not any(other.startswith(p + "/") for p in tree for other in tree)
)


def _build(root: Path, files: list[tuple[str, bytes]]) -> None:
    for rel, data in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@settings(max_examples=60)
@given(_TREES, st.randoms(use_true_random=False))
def test_tree_hash_is_independent_of_file_creation_order(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[str, bytes], rnd: random.Random
) -> None:
    base = tmp_path_factory.mktemp("trees")
    files = list(tree.items())
    shuffled = files[:]
    rnd.shuffle(shuffled)
    _build(base / "one" / "d", files)
    _build(base / "two" / "d", shuffled)
    one = Hasher(base / "one", None).hash("d")
    two = Hasher(base / "two", None).hash("d")
    assert one is not None
    assert one == two
    assert (one.nfiles, one.size, one.isdir) == (len(tree), sum(map(len, tree.values())), True)
    shutil.rmtree(base)


def test_tree_hash_is_the_digest_of_the_tree_manifest(tmp_path: Path) -> None:
    _build(tmp_path / "d", [("b.txt", b"B"), ("a/x.txt", b"X")])
    info = Hasher(tmp_path, None).hash("d")
    manifest = tree_manifest([("a/x.txt", _xxh(b"X"), False), ("b.txt", _xxh(b"B"), False)])
    assert manifest == (
        b'[{"path":"a/x.txt","hash":"' + _xxh(b"X").encode() + b'","x":false},'
        b'{"path":"b.txt","hash":"' + _xxh(b"B").encode() + b'","x":false}]'
    )
    assert info == HashInfo(digest_bytes(manifest), 2, 2, isdir=True)


@pytest.mark.parametrize("change", ["edit", "rename", "add", "remove", "chmod", "move"])
def test_any_change_inside_a_directory_changes_its_hash(tmp_path: Path, change: str) -> None:
    d = tmp_path / "d"
    _build(d, [("a.txt", b"A"), ("sub/b.txt", b"B")])
    before = Hasher(tmp_path, None).hash("d")
    if change == "edit":
        (d / "a.txt").write_bytes(b"a")
    elif change == "rename":
        (d / "a.txt").rename(d / "c.txt")
    elif change == "add":
        (d / "sub/new.txt").write_bytes(b"")
    elif change == "remove":
        (d / "sub/b.txt").unlink()
    elif change == "chmod":
        (d / "a.txt").chmod(0o755)
    else:
        (d / "a.txt").rename(d / "sub/a.txt")
    assert Hasher(tmp_path, None).hash("d") != before


def test_empty_directories_do_not_count(tmp_path: Path) -> None:
    _build(tmp_path / "d", [("a.txt", b"A")])
    before = Hasher(tmp_path, None).hash("d")
    (tmp_path / "d" / "empty").mkdir()
    assert Hasher(tmp_path, None).hash("d") == before


def test_missing_path_hashes_to_none(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    hasher = Hasher(tmp_path, None)
    assert hasher.hash("nope") is None
    assert hasher.hash("f/below-a-file") is None


def test_file_symlinks_hash_as_their_target(tmp_path: Path) -> None:
    (tmp_path / "target.txt").write_bytes(b"T")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "link.txt").symlink_to("../target.txt")
    (tmp_path / "d" / "dangling").symlink_to("nowhere")
    info = Hasher(tmp_path, None).hash("d")
    assert info is not None
    assert (info.nfiles, info.size) == (1, 1)
    assert Hasher(tmp_path, None).hash("d/link.txt") == HashInfo(_xxh(b"T"), 1, 1)


def test_files_in_a_symlinked_subdirectory_are_hashed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f.txt").write_text("one\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "own.txt").write_text("own\n")
    (tmp_path / "d" / "linked").symlink_to("../real", target_is_directory=True)
    before = Hasher(tmp_path, None).hash("d")
    assert before is not None
    assert before.nfiles == 2
    (tmp_path / "real" / "f.txt").write_text("two\n")
    assert Hasher(tmp_path, None).hash("d") != before


def test_hasher_memoises_within_one_invocation_until_forget(tmp_path: Path) -> None:
    _build(tmp_path, [("d/a.txt", b"1"), ("d/b.txt", b"2"), ("x.txt", b"x")])
    hasher = Hasher(tmp_path, None)
    d_before, a_before, x_before = hasher.hash("d"), hasher.hash("d/a.txt"), hasher.hash("x.txt")
    (tmp_path / "d" / "a.txt").write_bytes(b"changed")
    (tmp_path / "x.txt").write_bytes(b"changed")
    assert hasher.hash("d") == d_before  # memoised
    hasher.forget("d/a.txt")  # drops d/a.txt and its parent d, not x.txt
    assert hasher.hash("d/a.txt") != a_before
    assert hasher.hash("d") != d_before
    assert hasher.hash("x.txt") == x_before


def test_many_files_hash_the_same_in_parallel(tmp_path: Path) -> None:
    files = [(f"d/{i:03}.bin", os.urandom(64)) for i in range(100)]
    _build(tmp_path, files)
    serial = tree_manifest((rel[2:], _xxh(data), False) for rel, data in files)
    assert Hasher(tmp_path, None, workers=4).hash("d") == HashInfo(
        digest_bytes(serial), 6400, 100, isdir=True
    )
