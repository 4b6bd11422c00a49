"""Atomic file writes: readers see the old file or the new one, never half of either."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from pathlib import Path

from pipeline.core.syserrors import naming


@functools.cache
def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """`atomic_write_bytes` of the text encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write via a temp file in the same directory and `os.replace`, so readers never see half.

    `durable` also fsyncs the data before the rename (a power cut then leaves the old file or
    the new one); caches that may simply be lost skip it. A failure (a full disk) removes the
    temp file, leaves `path` as it was, and raises an `OSError` naming `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path):  # a failed write names no file: say which one it was
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            _fill(fd, data, durable)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _fill(fd: int, data: bytes, durable: bool) -> None:
    """Write `data` to the new file and close it, unbuffered: a failure surfaces once, here."""
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a committed file wants the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def stamped_sibling(path: Path, label: str) -> Path:
    """A name beside `path` that nothing uses yet: `<name>.<label>-<time>` (then `-1`, `-2`…),
    for keeping an old copy of a file (a damaged store moved aside, a backup)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{label}-{stamp}")
    count = 1
    while target.exists():
        target = path.with_name(f"{path.name}.{label}-{stamp}-{count}")
        count += 1
    return target
