"""A real scoring server on loopback for tests that need one: start it, wait for /ping, stop it.

Used by the MLflow compatibility test and the build-context test (and `bench/serve.py` imports
it by path). The server is a subprocess in its own process group, stopped by its PID (SIGTERM,
then SIGKILL of the group if it does not leave), so its model worker goes with it. Readiness is
the server answering `GET /ping` with 200, polled until then (or until the process exits).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

READY_SECONDS = 120.0  # building nothing, loading a small model: seconds; a slow CI: more
STOP_SECONDS = 10.0


def free_port() -> int:
    """A port nothing listens on right now (the kernel's choice for an ephemeral bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[Any], seconds: float = READY_SECONDS) -> None:
    """Return once `url` + /ping answers 200; AssertionError if the process exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {_output(process)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/ping", timeout=2) as r:
            if r.status == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"{url}/ping did not answer 200 within {seconds:.0f} s")


def _output(process: subprocess.Popen[Any]) -> str:
    if process.stdout is None:
        return ""
    text = process.stdout.read()
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)


@contextlib.contextmanager
def server(
    argv: Sequence[str], url: str, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` (a server listening at `url`) until the block ends; ready on entry."""
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: the model worker is stopped with it
    )
    try:
        wait_ready(url, process)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM the server, then SIGKILL its whole group if it has not left in time."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # a worker left behind, if any
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def post_json(url: str, body: Any) -> tuple[int, Any]:
    """POST `body` as JSON; the status and the parsed answer (errors included)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
