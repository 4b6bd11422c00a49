"""The progress bar of `push`, `fetch` and `pull`: files, bytes and rate, on a terminal only.

Apart from `progress.py` so that a transfer whose output is not a terminal (scripts, CI,
`--json`) never imports rich.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any


class TransferMeter:
    """A transfer's progress: a bar of bytes with the files done, their rate (terminal only)."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._task: Any = None
        self._label = ""
        self._files = [0, 0]  # done, total

    def start(self, label: str, files: int, size: int) -> None:
        self._files = [0, files]
        self._label = label
        if self._bar is not None and files:
            self._task = self._bar.add_task(self._text(label), total=size or files)

    def advance(self, files: int, size: int) -> None:
        self._files[0] += files
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=size or files, description=self._text(self._label))

    def _text(self, label: str) -> str:
        return f"{label} {self._files[0]}/{self._files[1]} files"


@contextlib.contextmanager
def transfer_meter() -> Iterator[TransferMeter]:
    """A `TransferMeter` drawing on the terminal, or a silent one when output is not a terminal."""
    if not sys.stdout.isatty() or os.environ.get("TERM") == "dumb":
        yield TransferMeter(None)
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    from pipeline.cli.progress import console

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, console=console(), transient=True) as bar:
        yield TransferMeter(bar)
