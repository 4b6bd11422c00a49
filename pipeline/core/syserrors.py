"""Failures of the machine, not of `pipeline`: a full disk, a read-only or failing filesystem.

`disk_error` turns such an `OSError` (or an sqlite error saying the same) into a `DiskError`:
one line naming the path, and the space a copy needed when that is known. The command line
uses it so these never read as internal errors; anything else stays one, because it is a bug.
The stat memo uses `sqlite_code` to tell an unwritable or busy `state.db` (go on without it)
from a damaged one (set it aside).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.sizes import human_size
from pipeline.errors import DiskError

_AGAIN = "then run the command again"
_FREE = f"free some space on that disk, {_AGAIN}"
_MODE = "check the owner and mode of that path and its parents"
# errno → (what happened, what to do); the message names the path after the first part.
_REFUSALS = {
    errno.ENOSPC: ("no space left on device", _FREE),
    errno.EDQUOT: ("disk quota exceeded", f"free some space or raise the quota, {_AGAIN}"),
    errno.EFBIG: ("file too large for its filesystem", "keep it on a filesystem that allows it"),
    errno.EROFS: ("read-only file system", f"make it writable, {_AGAIN}"),
    errno.EACCES: ("permission denied", _MODE),
    errno.EPERM: ("operation not permitted", _MODE),
    errno.EIO: ("I/O error", "the disk reported a failure: check it (dmesg) before going on"),
    errno.EMFILE: ("too many open files", f"raise the limit (ulimit -n), {_AGAIN}"),
    errno.ENFILE: ("too many open files on this system", f"close some programs, {_AGAIN}"),
}
_FULL = (errno.ENOSPC, errno.EDQUOT)

# sqlite's primary result codes that mean the machine refused, and how each reads.
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY = 3, 5, 6, 7, 8
SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN = 10, 13, 14
_SQLITE_REFUSALS = {
    SQLITE_FULL: _REFUSALS[errno.ENOSPC],
    SQLITE_IOERR: _REFUSALS[errno.EIO],
    SQLITE_READONLY: ("read-only database", f"make it and its directory writable, {_AGAIN}"),
    SQLITE_CANTOPEN: ("cannot open the database", f"make its directory writable, {_AGAIN}"),
    SQLITE_PERM: _REFUSALS[errno.EACCES],
}
# What sqlite says for each, for Python 3.10, whose errors carry no code.
_SQLITE_TEXTS = {
    "database or disk is full": SQLITE_FULL,
    "disk i/o error": SQLITE_IOERR,
    "attempt to write a readonly database": SQLITE_READONLY,
    "unable to open database file": SQLITE_CANTOPEN,
    "access permission denied": SQLITE_PERM,
    "database is locked": SQLITE_BUSY,
    "database table is locked": SQLITE_LOCKED,
    "out of memory": SQLITE_NOMEM,
}
# Refusals after which a memo (state.db) simply goes unused for the command.
ENVIRONMENTAL = frozenset({*_SQLITE_REFUSALS, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM})


def disk_error(
    exc: BaseException,
    path: str | os.PathLike[str] | None = None,
    *,
    below: str | os.PathLike[str] | None = None,
) -> DiskError | None:
    """`exc` as a user error if the machine refused (see `_REFUSALS`), else None (a bug).

    `path` names the file when `exc` does not: the database behind an sqlite error. Failing
    that, `below` names the directory the command worked in (a write that names no file).
    """
    if isinstance(exc, OSError):
        found = _from_os(exc, path)
        if found is None or exc.filename is not None or path is not None or below is None:
            return found
        return DiskError(f"{found.message}, writing below {os.fspath(below)}", found.hint)
    code = sqlite_code(exc)
    if code not in _SQLITE_REFUSALS:
        return None
    said = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    where = _show(path) if path is not None else "a database in .pipeline/"
    what, hint = _SQLITE_REFUSALS[code]
    return DiskError(f"{what}: {where} (sqlite: {said})", hint)


@contextlib.contextmanager
def naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise an `OSError` that names no file (a failed `write`) as one naming `path`.

    Same errno, so the same `OSError` subclass: callers catching one still catch it.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc


def sqlite_code(exc: BaseException | None) -> int | None:
    """sqlite's primary result code behind `exc` (or the one SQLAlchemy wraps), if any."""
    exc = getattr(exc, "orig", None) or exc
    if exc is None or type(exc).__module__ != "sqlite3":  # no import: only look at what came
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF  # an extended code (SQLITE_IOERR_WRITE…) keeps the primary one below
    text = str(exc).lower()
    return next((c for t, c in _SQLITE_TEXTS.items() if t in text), None)


def _from_os(exc: OSError, path: str | os.PathLike[str] | None) -> DiskError | None:
    where = exc.filename2 if exc.errno in _FULL and exc.filename2 else exc.filename
    where = where if where is not None else path
    if exc.errno == errno.ENOTDIR and where is not None:
        return _not_a_directory(os.fsdecode(where))
    if exc.errno not in _REFUSALS:
        return None
    what, hint = _REFUSALS[exc.errno]
    message = what if where is None else f"{what}: {_show(where)}"
    need = _needed(exc)
    if need is None:
        return DiskError(message, hint)
    return DiskError(f"{message} (copying {_show(exc.filename)}: {human_size(need)} needed)", hint)


def _needed(exc: OSError) -> int | None:
    """The size of what a copy was writing: `shutil.copyfile` names its source first."""
    if exc.errno not in _FULL or not exc.filename or not exc.filename2:
        return None
    try:
        return os.stat(exc.filename).st_size
    except OSError:
        return None


def blocked_directory(path: str | os.PathLike[str]) -> DiskError | None:
    """The error if a file stands at `path` or a parent, where directories must be."""
    return _not_a_directory(os.fsdecode(path))


def _not_a_directory(path: str) -> DiskError | None:
    """A file stands where a directory must be (`.pipeline/cache/objects`): name that file."""
    for candidate in (Path(path), *Path(path).parents):
        if os.path.lexists(candidate):
            if os.path.isdir(candidate):
                return None  # nothing blocks the path: not this condition
            shown = _show(candidate)
            return DiskError(
                f"{shown} is a file where a directory is expected",
                f"move {shown} aside: pipeline recreates the directories it needs",
            )
    return None


def _show(path: str | os.PathLike[str]) -> str:
    """`path` relative to the working directory when it lies below it, else as given."""
    text = os.fsdecode(path)
    try:
        relative = os.path.relpath(text)
    except ValueError:
        return text
    return text if relative.startswith("..") else relative
