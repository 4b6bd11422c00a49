"""A directory outside the project whose every file must survive a test untouched.

`Sentinel.snapshot()` records each entry's bytes, mode, link count, inode and mtime (and where a
symlink points); a test compares it with the snapshot taken before running hostile commands.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

Snapshot = dict[str, tuple[Any, ...]]


class Sentinel:
    """`root` holds files, a directory and a hardlinked pair that hostile paths point at."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "dir").mkdir(parents=True)
        (root / "x.txt").write_text("victim x\n")
        (root / "secret.txt").write_text("victim secret\n")
        (root / "params.yaml").write_text("lr: 0.1\n")
        (root / "dir/a.txt").write_text("victim a\n")
        os.link(root / "x.txt", root / "x-link.txt")  # a link count that must stay 2
        os.chmod(root / "secret.txt", 0o600)
        self.before = self.snapshot()

    def snapshot(self) -> Snapshot:
        found: Snapshot = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                content = b"" if os.path.isdir(path) else Path(path).read_bytes()
                found[os.path.relpath(path, self.root)] = (
                    content,
                    st.st_mode,
                    st.st_nlink,
                    st.st_ino,
                    st.st_mtime_ns,
                )
        return found

    def assert_untouched(self) -> None:
        after = self.snapshot()
        changed = sorted(k for k in {*self.before, *after} if self.before.get(k) != after.get(k))
        assert not changed, f"files outside the project changed: {changed}"
