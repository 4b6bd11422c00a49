"""One `repro` per project at a time: a second one waits for the first (or, with `--no-wait`,
fails at once), then finds everything up to date.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tests.conftest import Project, cli_env, record


def start_repro(project: Project, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(project.root), "repro", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )


def wait_for(path: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def hold_until(go: Path) -> str:
    """A shell snippet that blocks until the test creates `go`: a barrier, not a time window."""
    return f"while [ ! -e {go} ]; do sleep 0.02; done"


def read_until(stream: IO[str], text: str, seconds: float = 60) -> str:
    """Lines of `stream` up to the first one containing `text` (fails after `seconds`)."""
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(_lines_until(stream, text)), daemon=True)
    reader.start()
    reader.join(seconds)
    assert not reader.is_alive(), f"{text!r} never appeared in: {''.join(seen)}"
    return "".join(seen)


def _lines_until(stream: IO[str], text: str) -> Iterator[str]:
    for line in stream:
        yield line
        if text in line:
            return


def test_two_concurrent_repros_both_finish_correctly(p: Project) -> None:
    started, go = p.root.parent / "started", p.root.parent / "go"
    p.manifest(
        {
            "stages": {
                "slow": {
                    "cmd": f"touch {started}; {hold_until(go)}; {record('slow')}; "
                    "echo done > out.txt",
                    "outs": ["out.txt"],
                }
            }
        }
    )
    first = start_repro(p)
    try:
        wait_for(started)
        second = start_repro(p)
        assert second.stderr is not None
        waited = read_until(second.stderr, "waiting for pipeline process PID")
    finally:
        go.touch()  # the first repro finishes only now, whatever the machine's load
    out2, err2 = second.communicate(timeout=60)
    _, err1 = first.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 0), (err1, waited + err2)
    assert p.executions() == ["slow"]  # the second found everything up to date
    assert "Everything is up to date" in out2
    assert p.lock()["stages"]["slow"]["outs"][0]["path"] == "out.txt"


def test_no_wait_fails_at_once_while_another_repro_runs(p: Project) -> None:
    started, go = p.root.parent / "started", p.root.parent / "go"
    p.manifest({"stages": {"slow": {"cmd": f"touch {started}; {hold_until(go)}"}}})
    first = start_repro(p)
    try:
        wait_for(started)
        done = p.cli("repro", "--no-wait", timeout=60)
    finally:
        go.touch()
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert done.returncode == 1
    assert "another pipeline process (PID" in done.stderr
    assert "is running in this project" in done.stderr
