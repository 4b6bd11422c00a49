"""The UI under test: a project with 10,000 recorded runs, and `pipeline ui` serving it.

Both are per session (per xdist worker): seeding takes about two seconds, and every UI test
only reads. The server is a real `pipeline ui --port 0` subprocess; it is ready when it prints
its address (it does so once uvicorn accepts connections), and is stopped by its PID.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_env
from tests.ui.seed import make_project

RUNS = 10_000
READY_SECONDS = 60.0
STOP_SECONDS = 10.0


@dataclass
class UiServer:
    """A running `pipeline ui`: its address, its process, and what it printed."""

    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Seeded:
    root: Path
    ids: list[str]
    with_history: list[str]
    showcase: str


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    root = tmp_path_factory.mktemp("ui") / "churn"
    info = make_project(root, RUNS)
    return Seeded(root, info["ids"], info["with_history"], info["showcase"])


def start_ui(root: Path, *args: str) -> UiServer:
    """`pipeline ui --port 0` in `root`, returned once it printed its address."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ui", "--port", "0", *args],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        start_new_session=True,
    )
    output: list[str] = []
    announced = threading.Event()
    found: list[str] = []

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            output.append(line)
            match = re.search(r"(http://\S+/)", line)
            if match and not found:
                found.append(match[1])
                announced.set()
        announced.set()  # the process ended: stop waiting

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    process.drain = thread  # type: ignore[attr-defined]  # stop_ui joins it
    if not announced.wait(READY_SECONDS) or not found:
        stop_ui(process)
        raise AssertionError(f"pipeline ui did not start: {''.join(output)}")
    return UiServer(found[0], process, output)


def stop_ui(process: subprocess.Popen[Any]) -> None:
    """SIGTERM by PID (a clean stop), then SIGKILL if it does not leave; close its pipe
    once everything it wrote has been read."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    drain = getattr(process, "drain", None)
    if drain is not None:
        drain.join()
    if process.stderr is not None:
        process.stderr.close()


@pytest.fixture(scope="session")
def ui(seeded: Seeded) -> Iterator[UiServer]:
    server = start_ui(seeded.root)
    try:
        yield server
    finally:
        stop_ui(server.process)
