"""Putting a cached object at a workspace path: reflink, hardlink, symlink or copy.

A reflink (copy-on-write clone) and a hardlink cost nothing whatever the size; a copy costs a
read and a write of every byte, done inside the kernel (`copy_file_range`, else `sendfile`). A
hardlink or symlink shares the object itself, so linked files are read-only: the object's mode
is 0444, and a stage's outputs are deleted (or, for `persist` outputs, unlinked into a private
copy) before it runs, so no stage ever writes into the cache through a link. Anything else that
writes in place (a notebook, a script run as root, whom 0444 does not stop) would, which is why
both are opt-in (`cache.type`) and the default is reflink, else copy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Sequence

_FICLONE = 0x40049409  # linux/fs.h: clone a whole file (btrfs, xfs, bcachefs, zfs 2.2+)
_NOT_POSSIBLE = {
    errno.EOPNOTSUPP,
    errno.ENOTTY,
    errno.EXDEV,
    errno.EINVAL,
    errno.EPERM,
    errno.EMLINK,
    errno.ENOSYS,
}


class LinkUnavailable(OSError):
    """This strategy cannot link these two paths (filesystem, device, permissions)."""


def place(src: str, dst: str, strategies: Sequence[str]) -> str:
    """Make `dst` hold `src`'s content with the first strategy that works; return its name.

    `dst` must not exist. "copy" always works, so list it last as the fallback.
    """
    for strategy in strategies:
        try:
            _LINKERS[strategy](src, dst)
        except LinkUnavailable:
            continue
        return strategy
    raise LinkUnavailable(errno.EOPNOTSUPP, f"none of {', '.join(strategies)} worked", dst)


def reflink(src: str, dst: str) -> None:
    """A copy-on-write clone: instant, and the two files are independent afterwards."""
    with open(src, "rb") as source:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.ioctl(fd, _FICLONE, source.fileno())
        except OSError as exc:
            os.close(fd)
            os.unlink(dst)
            raise _unavailable(exc) from None
        os.close(fd)


def hardlink(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError as exc:
        raise _unavailable(exc) from None


def symlink(src: str, dst: str) -> None:
    try:
        os.symlink(os.path.abspath(src), dst)
    except OSError as exc:
        raise _unavailable(exc) from None


def copy(src: str, dst: str) -> None:
    copy_file(src, dst, 0o644)


def copy_file(src: str, dst: str, mode: int) -> None:
    """Copy `src` to a new file `dst` created with `mode`, the bytes moved inside the kernel.

    The mode is set at creation (writing through the open descriptor still works for 0444), so
    a copy costs no extra `chmod`; this is the cache's hot path when storing many small files.
    """
    fd_in = os.open(src, os.O_RDONLY)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            _copy_fds(fd_in, fd_out, os.fstat(fd_in).st_size)
        except OSError as exc:  # name both files, as shutil does: a full disk then says where
            with contextlib.suppress(OSError):
                os.unlink(dst)  # ours (O_EXCL): no half copy is left behind
            raise OSError(exc.errno, exc.strerror, src, None, dst) from exc
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_fds(fd_in: int, fd_out: int, size: int) -> None:
    try:
        while os.copy_file_range(fd_in, fd_out, 1 << 30):  # 0 at end of file
            pass
        return
    except OSError as exc:  # e.g. EXDEV on older kernels, EINVAL on some filesystems
        if exc.errno not in _NOT_POSSIBLE:
            raise
    os.lseek(fd_in, 0, os.SEEK_SET)
    os.lseek(fd_out, 0, os.SEEK_SET)
    os.ftruncate(fd_out, 0)
    offset = 0
    while sent := os.sendfile(fd_out, fd_in, offset, max(size - offset, 1 << 20)):
        offset += sent


def _unavailable(exc: OSError) -> OSError:
    if exc.errno in _NOT_POSSIBLE:
        return LinkUnavailable(exc.errno, exc.strerror, exc.filename)
    return exc


_LINKERS = {"reflink": reflink, "hardlink": hardlink, "symlink": symlink, "copy": copy}


def shares_storage(path: str) -> bool:
    """True if writing to `path` in place could change another file (a cache object)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return os.path.islink(path) or st.st_nlink > 1


def unshare(path: str) -> None:
    """Replace a hardlinked or symlinked file by a private, writable copy (for persist outs)."""
    if not shares_storage(path):
        return
    tmp = f"{path}.pipeline-unshare"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    shutil.copyfile(path, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
