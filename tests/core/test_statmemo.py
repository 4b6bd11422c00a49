"""The stat memo (`.pipeline/state.db`): trusted only when safe, rebuilt when damaged."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

import pipeline.core.hashing
from pipeline.core.hashing import Hasher, digest_bytes
from pipeline.core.statmemo import RACY_MARGIN_NS, StatMemo, init_state_dir
from tests.conftest import Project, ran
from tests.core.support import HOUR_NS, _age, _age_tree

DIGEST = digest_bytes(b"x")  # a realistic hash: the memo refuses values that are not one


class DigestCounter:
    """Replaces `pipeline.core.hashing.file_digest`, recording which files were read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        real = pipeline.core.hashing.file_digest

        def counting(path: str | os.PathLike[str], size: int = -1) -> str:
            self.paths.append(os.fspath(path))
            return real(path, size)

        monkeypatch.setattr(pipeline.core.hashing, "file_digest", counting)


# -- StatMemo -------------------------------------------------------------------------------------


def test_init_state_dir_keeps_local_state_out_of_git(tmp_path: Path) -> None:
    state = init_state_dir(tmp_path / ".pipeline")
    assert (state / ".gitignore").read_text().splitlines()[-3:] == [
        "*",
        "!.gitignore",
        "!config.yaml",
    ]


def test_put_flush_get_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    _age(f)
    st = os.stat(f)
    db = StatMemo(tmp_path / ".pipeline" / "state.db")
    db.put("f.txt", st, DIGEST, time.time_ns())
    db.close()
    again = StatMemo(tmp_path / ".pipeline" / "state.db")
    assert again.get("f.txt", st) == DIGEST
    assert again.get("other.txt", st) is None
    again.close()


def test_entry_is_ignored_when_the_stat_changes(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    _age(f)
    db = StatMemo(tmp_path / "state.db")
    db.put("f.txt", os.stat(f), DIGEST, time.time_ns())
    db.flush()
    f.write_text("xy")  # size and mtime change
    assert db.get("f.txt", os.stat(f)) is None
    replaced = tmp_path / "new.txt"
    replaced.write_text("x")
    os.replace(replaced, f)  # same size, new inode
    _age(f)
    assert db.get("f.txt", os.stat(f)) is None
    db.close()


@pytest.mark.parametrize(
    ("hashed_after_mtime_ns", "trusted"),
    [
        (0, False),  # hashed in the very tick the file was written: racy
        (RACY_MARGIN_NS // 2, False),
        (RACY_MARGIN_NS, False),
        (RACY_MARGIN_NS + 1, True),
        (HOUR_NS, True),
    ],
)
def test_racy_entries_are_not_trusted(
    tmp_path: Path, hashed_after_mtime_ns: int, trusted: bool
) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    _age(f)
    st = os.stat(f)
    db = StatMemo(tmp_path / "state.db")
    db.put("f.txt", st, DIGEST, st.st_mtime_ns + hashed_after_mtime_ns)
    db.flush()
    assert db.get("f.txt", st) == (DIGEST if trusted else None)
    db.close()


def test_a_racily_hashed_file_rewritten_with_an_identical_stat_is_rehashed(
    tmp_path: Path,
) -> None:
    f = tmp_path / "f.txt"
    f.write_bytes(b"aaaa")
    _age(f, -10 * 10**9)  # not safely older than the hash that follows: racy
    before = os.stat(f)
    db = StatMemo(tmp_path / "state.db")
    assert Hasher(tmp_path, db).hash("f.txt").hash == digest_bytes(b"aaaa")  # type: ignore[union-attr]
    db.close()

    # rewrite in place within the same timestamp tick: inode, size and mtime all unchanged
    f.write_bytes(b"bbbb")
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(f)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    db = StatMemo(tmp_path / "state.db")
    assert Hasher(tmp_path, db).hash("f.txt").hash == digest_bytes(b"bbbb")  # type: ignore[union-attr]
    db.close()


def test_hasher_trusts_old_entries_and_rereads_fresh_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "old.txt").write_text("old")
    (tmp_path / "fresh.txt").write_text("fresh")
    _age(tmp_path / "old.txt")
    _age(tmp_path / "fresh.txt", -10 * 10**9)  # not older than its hashing: racy
    db_path = tmp_path / "state.db"
    first = StatMemo(db_path)
    Hasher(tmp_path, first).hash("old.txt")
    Hasher(tmp_path, first).hash("fresh.txt")
    first.close()

    counter = DigestCounter(monkeypatch)
    second = StatMemo(db_path)
    hasher = Hasher(tmp_path, second)
    assert hasher.hash("old.txt").hash == digest_bytes(b"old")  # type: ignore[union-attr]
    assert hasher.hash("fresh.txt").hash == digest_bytes(b"fresh")  # type: ignore[union-attr]
    second.close()
    assert counter.paths == [os.path.join(tmp_path, "fresh.txt")]


# -- the memo in a real project -------------------------------------------------------------------


def test_no_op_status_hashes_nothing(chain_done: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    _age_tree(chain_done.root)
    chain_done.plan()  # warms the memo: every file's stat changed, so each is read once
    counter = DigestCounter(monkeypatch)

    plan = chain_done.plan()
    assert plan.stale == []
    assert counter.paths == []

    # control: an edited dep is the one file read again
    chain_done.write("other.txt", "other 2\n")
    plan = chain_done.plan()
    assert [d.stage for d in plan.stale] == ["other"]
    assert counter.paths == [os.path.join(chain_done.root, "other.txt")]


def test_no_op_repro_hashes_nothing(chain_done: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    _age_tree(chain_done.root)
    chain_done.plan()
    counter = DigestCounter(monkeypatch)
    assert ran(chain_done.repro()) == []
    assert counter.paths == []


def test_corrupt_state_db_is_set_aside_and_rebuilt(chain_done: Project) -> None:
    state = chain_done.root / ".pipeline" / "state.db"
    garbage = b"this is not an sqlite database" * 100
    state.write_bytes(garbage)
    for suffix in ("-wal", "-shm"):
        Path(str(state) + suffix).unlink(missing_ok=True)

    plan = chain_done.plan()
    assert plan.stale == []
    assert (chain_done.root / ".pipeline" / "state.db.corrupt").read_bytes() == garbage
    with sqlite3.connect(state) as conn:
        assert conn.execute("SELECT count(*) FROM hashes").fetchone()[0] > 0
    # and the rebuilt memo is used as usual
    assert ran(chain_done.repro()) == []


def test_state_db_with_damaged_pages_is_set_aside_and_rebuilt(chain_done: Project) -> None:
    state = chain_done.root / ".pipeline" / "state.db"
    data = bytearray(state.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    assert len(data) > page_size  # the schema page is intact, the table pages follow it
    data[page_size:] = b"\xab" * (len(data) - page_size)
    state.write_bytes(bytes(data))

    plan = chain_done.plan()
    assert plan.stale == []
    assert (chain_done.root / ".pipeline" / "state.db.corrupt").exists()


def test_truncated_state_db_is_set_aside_and_rebuilt(chain_done: Project) -> None:
    state = chain_done.root / ".pipeline" / "state.db"
    _checkpoint(state)
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 3])  # cut mid-page, as a crash or a full disk might

    plan = chain_done.plan()
    assert plan.stale == []
    assert (chain_done.root / ".pipeline" / "state.db.corrupt").exists()
    assert ran(chain_done.repro()) == []


@pytest.mark.parametrize("table", ["hashes", "parsed"])
def test_a_row_that_is_not_utf8_is_a_miss(
    chain_done: Project, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    _age_tree(chain_done.root)
    chain_done.plan()  # every file is memoised, with stats that will still match
    state = chain_done.root / ".pipeline" / "state.db"
    column = "hash" if table == "hashes" else "json"
    with sqlite3.connect(state) as conn:
        conn.execute(f"UPDATE {table} SET {column} = CAST(X'fffe80c3' AS TEXT)")
    counter = DigestCounter(monkeypatch)

    plan = chain_done.plan()
    assert plan.stale == []
    if table == "hashes":  # each damaged hash is a miss: read again, never trusted
        assert os.path.join(chain_done.root, "raw.txt") in counter.paths
    # only rows were damaged, not the file: it is kept
    assert not (chain_done.root / ".pipeline" / "state.db.corrupt").exists()
    chain_done.plan()  # and the rows were rewritten: read once, then memoised again
    assert ran(chain_done.repro()) == []


@pytest.mark.parametrize(
    ("column", "value"),
    [("hash", "not a hash"), ("hash", None), ("inode", "'12'"), ("hashed_at_ns", "1.5")],
)
def test_a_row_that_does_not_read_back_as_written_is_a_miss(
    tmp_path: Path, column: str, value: str | None
) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    _age(f)
    st = os.stat(f)
    db = StatMemo(tmp_path / "state.db")
    db.put("f.txt", st, DIGEST, time.time_ns())
    db.close()
    with sqlite3.connect(tmp_path / "state.db") as conn:  # sqlite keeps whatever type it is given
        literal = "'not a hash'" if value == "not a hash" else value
        if literal is None:
            conn.execute("UPDATE hashes SET hash = ''")
        else:
            conn.execute(f"UPDATE hashes SET {column} = {literal}")
    again = StatMemo(tmp_path / "state.db")
    assert again.get("f.txt", st) is None
    again.close()


def test_a_state_db_that_cannot_be_opened_is_not_used(chain_done: Project) -> None:
    state = chain_done.root / ".pipeline" / "state.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(state) + suffix).unlink(missing_ok=True)
    state.mkdir()  # sqlite: "unable to open database file", as for an unwritable directory

    assert chain_done.plan().stale == []
    assert ran(chain_done.repro()) == []
    assert state.is_dir() and not list(state.iterdir())  # refused, so left alone
    assert not (chain_done.root / ".pipeline" / "state.db.corrupt").exists()


def _checkpoint(state: Path) -> None:
    """Move the WAL's pages into the main file, so damaging that file damages the memo."""
    with sqlite3.connect(state) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
