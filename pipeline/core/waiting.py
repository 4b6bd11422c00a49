"""Waiting for worker threads without losing Ctrl-C.

POSIX hands a process's SIGINT or SIGTERM to any of its threads; Python runs the handler on the
main thread, but only once that thread wakes up. A main thread blocked in a plain `wait()` on
futures may never wake, so every wait here is taken in slices.
"""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, wait
from typing import Any

_TICK_SECONDS = 0.2


def wait_any(futures: Collection[Future[Any]]) -> set[Future[Any]]:
    """The futures that have finished, once at least one has (interruptible by Ctrl-C)."""
    while True:
        done, _ = wait(futures, timeout=_TICK_SECONDS, return_when=FIRST_COMPLETED)
        if done:
            return done


def wait_all(futures: Collection[Future[Any]]) -> None:
    """Return once every future has finished (interruptible by Ctrl-C)."""
    pending = set(futures)
    while pending:
        _, pending = wait(pending, timeout=_TICK_SECONDS, return_when=ALL_COMPLETED)
