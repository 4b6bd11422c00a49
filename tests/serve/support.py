"""A real `pipeline serve` process on loopback, and the model packages the serve tests use.

`Server.start` runs the command line in a subprocess on port 0 and waits for the URL it prints
(the socket is bound by then) and then for `/ping` (the model is loaded); `stop` ends it by its
PID. The packages are written by `pipeline.models.save` from scikit-learn's bundled datasets:
iris as a DataFrame (a column signature) and wine as an array (a tensor signature).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

STARTUP_SECONDS = 60.0
_URL = re.compile(r"listening on (http://\S+)/invocations")


@dataclass
class Server:
    """One `pipeline serve` process and the base URL it listens on."""

    process: subprocess.Popen[str]
    url: str
    first_lines: str

    @classmethod
    def start(
        cls,
        model: Path | str,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Server:
        command = [sys.executable, "-m", "pipeline", "serve", str(model), "--port", "0", *args]
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        seen = ""
        assert process.stderr is not None
        while not (found := _URL.search(seen)):
            line = process.stderr.readline()  # blocks until the server says where it listens
            if not line:
                process.wait()
                raise AssertionError(f"pipeline serve exited {process.returncode}:\n{seen}")
            seen += line
        server = cls(process, found.group(1), seen)
        server.wait_ping()
        return server

    def wait_ping(self) -> None:
        """Until the port answers /ping with 200 (it is listening once uvicorn started)."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if self.get("/ping")[0] == 200:
                    return
            except OSError:  # not listening yet: connection refused
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server never answered /ping: {self.stop()}")
            time.sleep(0.05)

    def get(self, path: str) -> tuple[int, bytes, str]:
        return self.request("GET", path)

    def post(
        self, body: bytes | Any, content_type: str | None = "application/json"
    ) -> tuple[int, bytes, str]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.request("POST", "/invocations", data, content_type)

    def request(
        self, method: str, path: str, data: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, bytes, str]:
        """(status, body, content type) of one request on a new connection."""
        where = urlsplit(self.url)
        connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            connection.request(method, path, data, headers)
            answer = connection.getresponse()
            return answer.status, answer.read(), answer.getheader("content-type", "")
        finally:
            connection.close()

    def stop(self, sig: int = signal.SIGINT) -> str:
        """Signal the server by PID, wait for it; its remaining stderr."""
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.first_lines + (err or "")


def iris_package(path: Path) -> tuple[Path, Any]:
    """A LogisticRegression on iris (a DataFrame: a column signature); (package, model)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import pipeline.models

    features, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(features, target)
    pipeline.models.save(model, path, sample=features[:5])
    return path, model


def wine_package(path: Path) -> tuple[Path, Any]:
    """A LogisticRegression on wine (a numpy array: a tensor signature); (package, model)."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    import pipeline.models

    features, target = load_wine(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(features, target)
    pipeline.models.save(model, path, sample=features[:5])
    return path, model


def children(pid: int) -> list[int]:
    """The PIDs of a process's children (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(p) for p in text]
    return found


def wait_gone(pid: int, seconds: float = 30.0) -> bool:
    """Whether process `pid` ended (its /proc entry is gone or a zombie) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


class Moody:
    """A model that fails on purpose: a negative first value is the input's fault (ValueError),
    one over 100 is the model's (RuntimeError). Pickled, so it is served only with --trusted."""

    def predict(self, rows: Any) -> list[int]:
        if rows[0][0] < 0:
            raise ValueError("negative values are not allowed")
        if rows[0][0] > 100:
            raise RuntimeError("the model broke\nTraceback (most recent call last): ...")
        return [1] * len(rows)


def moody_package(path: Path) -> Path:
    import numpy as np

    import pipeline.models

    pipeline.models.save(Moody(), path, sample=np.array([[1.0, 2.0]]), trusted=True)
    return path
