"""Which failures are the machine's (`core/syserrors.py`): one line naming the path, or None."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from pipeline.core.syserrors import disk_error, naming, sqlite_code
from pipeline.errors import DiskError


def test_a_full_disk_during_a_copy_names_the_destination_source_and_size(tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(b"x" * 1500)
    exc = OSError(errno.ENOSPC, "No space left on device", str(src), None, str(tmp_path / "dst"))
    found = disk_error(exc)
    assert isinstance(found, DiskError) and found.exit_code == 4
    assert (
        found.message
        == f"no space left on device: {tmp_path / 'dst'} (copying {src}: 1.5 KB needed)"
    )


@pytest.mark.parametrize(
    ("code", "start"),
    [
        (errno.EROFS, "read-only file system: "),
        (errno.EACCES, "permission denied: "),
        (errno.EIO, "I/O error: "),
        (errno.EDQUOT, "disk quota exceeded: "),
    ],
)
def test_refusals_name_the_path(code: int, start: str) -> None:
    found = disk_error(OSError(code, os.strerror(code), "/some/file"))
    assert found is not None and found.message == f"{start}/some/file"


def test_other_errors_are_bugs() -> None:
    assert disk_error(OSError(errno.ENOENT, "No such file", "/x")) is None
    assert disk_error(ValueError("no")) is None
    assert disk_error(sqlite3.OperationalError("no such table: runs")) is None


def test_a_file_where_a_directory_must_be_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "objects"
    blocker.write_text("x")
    found = disk_error(OSError(errno.ENOTDIR, "Not a directory", str(blocker / "ab" / "cd")))
    assert found is not None
    assert found.message == f"{blocker} is a file where a directory is expected"


@pytest.mark.parametrize(
    ("said", "start"),
    [
        ("database or disk is full", "no space left on device: "),
        ("disk I/O error", "I/O error: "),
        ("attempt to write a readonly database", "read-only database: "),
    ],
)
def test_sqlite_refusals_name_the_database(said: str, start: str) -> None:
    raw = sqlite3.OperationalError(said)
    wrapped = OperationalError("INSERT …", {}, raw)  # as SQLAlchemy raises it
    for exc in (raw, wrapped):
        found = disk_error(exc, "/p/.pipeline/runs.db")
        assert found is not None
        assert found.message == f"{start}/p/.pipeline/runs.db (sqlite: {said})"
    assert sqlite_code(sqlite3.OperationalError("database is locked")) == 5


def test_a_write_without_a_file_name_is_named_and_one_without_a_path_below_a_directory(
    tmp_path: Path,
) -> None:
    with pytest.raises(OSError) as caught, naming(tmp_path / "log"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.filename == str(tmp_path / "log")
    found = disk_error(OSError(errno.ENOSPC, "No space left on device"), below="/work/proj")
    assert found is not None
    assert found.message == "no space left on device, writing below /work/proj"
