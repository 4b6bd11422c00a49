"""The model worker (`python -m pipeline.models.worker`) as a real child process, speaking the
frame protocol of contract §3 on its stdin/stdout."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.models.worker import encode

HEADER = struct.Struct(">I")


class Worker:
    """A worker child and its two pipes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.models.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def send(self, value: Any) -> None:
        assert self.process.stdin is not None
        body = json.dumps(value).encode()
        self.process.stdin.write(HEADER.pack(len(body)) + body)
        self.process.stdin.flush()

    def receive(self) -> bytes:
        assert self.process.stdout is not None
        (size,) = HEADER.unpack(self.process.stdout.read(HEADER.size))
        return self.process.stdout.read(size)

    def finish(self) -> int:
        """Close its input (the end of the protocol); its exit code."""
        self.process.communicate(timeout=60)
        return self.process.returncode


def first_frame(package: Path, trusted: bool = False) -> dict[str, Any]:
    return {
        "path": str(package),
        "info": json.loads((package / "MLmodel").read_text()),
        "trusted": trusted,
    }


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    from tests.serve.support import iris_package

    return iris_package(tmp_path_factory.mktemp("worker") / "iris")


def test_ready_then_predictions_then_exit_at_end_of_input(iris: tuple[Path, Any]) -> None:
    import pandas as pd

    package, model = iris
    worker = Worker()
    worker.send(first_frame(package))
    ready = json.loads(worker.receive())
    assert ready["ready"] is True
    assert {"python", "pipeline", "scikit-learn"} <= set(ready["versions"])
    columns = list(model.feature_names_in_)
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    for _ in range(3):
        worker.send({"columns": columns, "rows": rows})
        answer = worker.receive()
        assert answer.startswith(b'{"predictions":')  # passed on by the server as it is
        want = model.predict(pd.DataFrame(rows, columns=columns)).tolist()
        assert json.loads(answer) == {"predictions": want}
    assert worker.finish() == 0


def test_an_input_the_model_refuses_is_an_input_error_and_the_worker_goes_on(
    iris: tuple[Path, Any],
) -> None:
    package, model = iris
    worker = Worker()
    worker.send(first_frame(package))
    worker.receive()
    worker.send({"columns": None, "rows": [[1.0, 2.0]]})
    failed = json.loads(worker.receive())
    assert failed["kind"] == "input"
    assert "\n" not in failed["error"]
    worker.send({"columns": list(model.feature_names_in_), "rows": [[5.1, 3.5, 1.4, 0.2]]})
    assert "predictions" in json.loads(worker.receive())
    assert worker.finish() == 0


def test_a_package_that_cannot_load_is_a_load_error_and_exit_3(tmp_path: Path) -> None:
    worker = Worker()
    worker.send({"path": str(tmp_path), "info": {"flavors": {}}, "trusted": False})
    failed = json.loads(worker.receive())
    assert failed["kind"] == "load"
    assert failed["error"]
    assert worker.finish() == 3


def test_a_pickle_package_needs_trust_at_load_time(tmp_path: Path) -> None:
    from sklearn.datasets import load_wine

    import pipeline.models
    from tests.serve.support import wine_package

    _, model = wine_package(tmp_path / "plain")
    pickled = tmp_path / "pickled"
    pipeline.models.save(_Wrapped(model), pickled, sample=load_wine().data[:3], trusted=True)
    worker = Worker()
    worker.send(first_frame(pickled, trusted=False))
    failed = json.loads(worker.receive())
    assert failed["kind"] == "load"
    assert worker.finish() == 3


class _Wrapped:
    """Something skops does not handle: saved as pickle, only with trust."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, rows: Any) -> Any:
        return self.model.predict(rows)


def test_the_end_of_input_before_any_frame_is_a_clean_exit() -> None:
    assert Worker().finish() == 0


def test_non_finite_predictions_are_written_as_null() -> None:
    assert json.loads(encode({"predictions": [1.0, float("nan"), float("inf")]})) == {
        "predictions": [1.0, None, None]
    }
