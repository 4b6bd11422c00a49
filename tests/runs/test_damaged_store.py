"""A damaged run store (`.pipeline/runs.db`) is moved aside with a warning, never dropped
silently and never fatal; a store the machine refuses (cannot be opened) is one clear error.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pipeline.errors import DataError, DiskError
from pipeline.runs.runstore import RunStore
from tests.conftest import Project
from tests.runs.support import _row

GARBAGE = b"garbage, not a database\n" * 50


def _filled(state: Path, count: int = 200) -> Path:
    """A store holding `count` runs, all in its main file (no WAL): the file to damage."""
    store = RunStore.for_project(state)
    for i in range(count):
        store.start(_row(f"r{i:03d}", float(i), command="x" * 200), {"p": i})
    store.close()
    db = state / "runs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


def _damage_pages(db: Path) -> bytes:
    """Overwrite every page after the schema and the tables' root pages (rows inserted later
    live after them): opening still works, reading the runs finds the file malformed."""
    with sqlite3.connect(db) as conn:
        (last_root,) = conn.execute("SELECT max(rootpage) FROM sqlite_master").fetchone()
    conn.close()
    data = bytearray(db.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    start = last_root * size  # pages count from 1: page n ends at byte n * size
    assert start < len(data), "no row page to damage"
    data[start:] = b"\xab" * (len(data) - start)
    db.write_bytes(bytes(data))
    return bytes(data)


def _aside(state: Path) -> list[Path]:
    return sorted(
        p for p in state.glob("runs.db.corrupt-*") if not p.name.endswith(("-wal", "-shm"))
    )


def test_a_garbage_store_is_moved_aside_on_opening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / ".pipeline"
    state.mkdir()
    (state / "runs.db").write_bytes(GARBAGE)

    store = RunStore.for_project(state)
    store.start(_row("new", 1.0), {})
    assert [r.id for r in store.runs()] == ["new"]
    store.close()
    [aside] = _aside(state)
    assert aside.read_bytes() == GARBAGE  # kept as it was, for SQLite's own recovery tools
    assert f"moved it to {aside}" in capsys.readouterr().err  # outside the cwd: in full


def test_pages_found_damaged_by_a_query_are_moved_aside_and_the_query_answered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / ".pipeline"
    db = _filled(state)
    damaged = _damage_pages(db)
    store = RunStore.for_project(state)  # opening reads only the schema: it still works
    assert _aside(state) == []

    assert store.runs() == []  # the new store's answer
    [aside] = _aside(state)
    assert aside.read_bytes() == damaged
    err = capsys.readouterr().err
    assert "warning: the run store" in err and "is damaged" in err and aside.name in err
    store.close()


def test_two_stores_on_one_damaged_file_move_it_aside_once(tmp_path: Path) -> None:
    state = tmp_path / ".pipeline"
    db = _filled(state)
    first, second = RunStore.for_project(state), RunStore.for_project(state)
    _damage_pages(db)

    assert first.runs() == []
    first.start(_row("after", 1.0), {})
    assert [r.id for r in second.runs()] == ["after"]  # the other's new store, not moved again
    assert len(_aside(state)) == 1
    first.close()
    second.close()


def test_a_write_that_finds_the_file_damaged_says_its_record_is_incomplete(
    tmp_path: Path,
) -> None:
    state = tmp_path / ".pipeline"
    db = _filled(state)
    store = RunStore.for_project(state)
    _damage_pages(db)

    with pytest.raises(DataError, match="damaged while writing"):
        store.finish("r150", "succeeded", 2.0, {})  # the run's row is in a damaged page
    assert len(_aside(state)) == 1
    store.start(_row("next", 3.0), {})  # and the new store takes the next run
    assert [r.id for r in store.runs()] == ["next"]
    store.close()


def test_a_store_that_cannot_be_opened_is_one_error_and_left_alone(tmp_path: Path) -> None:
    state = tmp_path / ".pipeline"
    (state / "runs.db").mkdir(parents=True)  # sqlite: "unable to open database file"
    with pytest.raises(DiskError, match=r"cannot open the database: .*runs\.db"):
        RunStore.for_project(state)
    assert (state / "runs.db").is_dir() and _aside(state) == []


def test_the_command_line_moves_a_damaged_store_aside_and_records_the_next_run(
    three: Project,
) -> None:
    state = three.root / ".pipeline"
    for name in ("runs.db-wal", "runs.db-shm"):
        (state / name).unlink(missing_ok=True)
    (state / "runs.db").write_bytes(GARBAGE)

    done = three.cli("runs")
    assert done.returncode == 0, done.stderr
    [aside] = _aside(state)
    assert done.stderr.splitlines() == [
        "warning: the run store .pipeline/runs.db is damaged (file is not a database);"
        f" moved it to .pipeline/{aside.name} and started a new one"
    ]
    assert aside.read_bytes() == GARBAGE

    three.write("raw.txt", "changed\n")
    done = three.cli("repro")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    listed = three.cli("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["kind"] for r in json.loads(listed.stdout)] == ["repro"]  # in the new store
    assert len(_aside(state)) == 1
