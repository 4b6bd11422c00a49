"""`pipeline serve` as a real process on loopback: every endpoint, every payload shape, errors.

One server per module for the column model (iris, a 64 KB body limit so 413 is cheap to
provoke), one for the tensor model (wine), one with `--workers 2`; tests that kill or stop a
server start their own. Predictions are compared with the fitted model's own `predict`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline._version import __version__
from tests.serve.support import (
    Server,
    children,
    iris_package,
    moody_package,
    wait_gone,
    wine_package,
)

LIMIT = 64 * 1024
ROOT = Path(__file__).resolve().parents[2]  # where `tests` imports from (the pickled model)


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    return iris_package(tmp_path_factory.mktemp("iris") / "model")


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    return wine_package(tmp_path_factory.mktemp("wine") / "model")


@pytest.fixture(scope="module")
def server(iris: tuple[Path, Any]) -> Iterator[Server]:
    running = Server.start(iris[0], "--env-manager", "local", "--max-body", "64KB")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tensor_server(wine: tuple[Path, Any]) -> Iterator[Server]:
    running = Server.start(wine[0], "--env-manager", "local")
    yield running
    running.stop()


def rows(n: int = 3) -> tuple[list[str], list[list[float]]]:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).data
    sample = frame.sample(n, random_state=n)
    return list(frame.columns), sample.to_numpy().tolist()


def expected(model: Any, columns: list[str], data: list[list[float]]) -> list[Any]:
    import pandas as pd

    return list(model.predict(pd.DataFrame(data, columns=columns)).tolist())


def predictions(answer: tuple[int, bytes, str]) -> list[Any]:
    status, body, content_type = answer
    assert status == 200, body
    assert content_type == "application/json"
    found: list[Any] = json.loads(body)["predictions"]
    return found


def refused(answer: tuple[int, bytes, str], status: int = 400) -> str:
    """The message of an error answer, after checking its status and MLflow's shape."""
    code, body, _ = answer
    assert code == status, body
    found = json.loads(body)
    assert set(found) == {"error_code", "message"}
    assert "Traceback" not in found["message"]
    message: str = found["message"]
    return message


# --- endpoints ------------------------------------------------------------------------------


def test_ping_and_health(server: Server) -> None:
    for path in ("/ping", "/health"):
        status, body, content_type = server.get(path)
        assert (status, body, content_type) == (200, b"\n", "application/json")


def test_version(server: Server) -> None:
    assert server.get("/version")[:2] == (200, __version__.encode())


def test_openapi_describes_the_signature_and_example(
    server: Server, iris: tuple[Path, Any]
) -> None:
    status, body, _ = server.get("/openapi.json")
    assert status == 200
    document = json.loads(body)
    assert document["openapi"].startswith("3.")
    post = document["paths"]["/invocations"]["post"]
    content = post["requestBody"]["content"]
    shapes = {next(iter(s["required"])) for s in content["application/json"]["schema"]["oneOf"]}
    assert shapes == {"dataframe_split", "dataframe_records", "instances"}
    split = content["application/json"]["schema"]["oneOf"][0]["properties"]["dataframe_split"]
    assert split["properties"]["columns"]["items"]["enum"] == rows()[0]
    example = json.loads((iris[0] / "serving_input_example.json").read_text())
    assert content["application/json"]["example"] == example
    assert set(post["responses"]) >= {"200", "400", "413", "415"}


def test_interface_names_method_and_versions(server: Server) -> None:
    status, body, _ = server.get("/interface.json")
    found = json.loads(body)
    assert status == 200
    assert [c["name"] for c in found["methods"]["predict"]["inputs"]] == rows()[0]
    assert found["versions"]["pipeline"] == __version__
    assert "scikit-learn" in found["versions"]


def test_unknown_route_and_method(server: Server) -> None:
    assert server.get("/nothing")[0] == 404
    assert server.get("/invocations")[0] == 405


# --- payload shapes --------------------------------------------------------------------------


def test_dataframe_split(server: Server, iris: tuple[Path, Any]) -> None:
    columns, data = rows()
    body = {"dataframe_split": {"columns": columns, "data": data}}
    assert predictions(server.post(body)) == expected(iris[1], columns, data)


def test_dataframe_split_with_columns_in_another_order(
    server: Server, iris: tuple[Path, Any]
) -> None:
    columns, data = rows()
    body = {"dataframe_split": {"columns": columns[::-1], "data": [r[::-1] for r in data]}}
    assert predictions(server.post(body)) == expected(iris[1], columns, data)


def test_dataframe_records(server: Server, iris: tuple[Path, Any]) -> None:
    columns, data = rows(4)
    body = {"dataframe_records": [dict(zip(columns, row, strict=True)) for row in data]}
    assert predictions(server.post(body)) == expected(iris[1], columns, data)


def test_instances(server: Server, iris: tuple[Path, Any]) -> None:
    columns, data = rows(2)
    body = {"instances": [dict(zip(columns, row, strict=True)) for row in data]}
    assert predictions(server.post(body)) == expected(iris[1], columns, data)


def test_inputs_by_column(server: Server, iris: tuple[Path, Any]) -> None:
    columns, data = rows(5)
    body = {"inputs": {c: [row[i] for row in data] for i, c in enumerate(columns)}}
    assert predictions(server.post(body)) == expected(iris[1], columns, data)


def test_csv(server: Server, iris: tuple[Path, Any]) -> None:
    columns, data = rows(3)
    lines = [",".join(columns)] + [",".join(map(repr, row)) for row in data]
    text = "\n".join(lines) + "\n"
    answer = server.post(text.encode(), "text/csv; charset=utf-8")
    assert predictions(answer) == expected(iris[1], columns, data)


def test_ints_are_accepted_for_doubles_and_params_are_allowed(server: Server) -> None:
    columns, _ = rows()
    body = {"dataframe_records": [dict.fromkeys(columns, 1)], "params": {}}
    assert len(predictions(server.post(body))) == 1


def test_the_packaged_serving_example(server: Server, iris: tuple[Path, Any]) -> None:
    body = (iris[0] / "serving_input_example.json").read_bytes()
    assert len(predictions(server.post(body))) == 5


# --- misfits: 400, 413, 415 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"dataframe_split": ', "malformed JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "received a list"),
        (b'{"columns": ["a"], "data": [[1]]}', "exactly one of"),
        (b'{"inputs": [], "instances": []}', "exactly one of"),
        (b'{"dataframe_records": [{"a": 1}]}', "Model is missing inputs"),
        (b'{"dataframe_split": {"data": [[1, 2]]}}', "row 0 has 2 values for 4 columns"),
        (b'{"dataframe_records": []}', "no rows"),
        (b'{"inputs": {"a": 1}}', "lists of one length"),
    ],
)
def test_malformed_bodies_get_400(server: Server, body: bytes, words: str) -> None:
    assert words in refused(server.post(body))


def test_unknown_column_gets_400(server: Server) -> None:
    columns, data = rows(1)
    record = {**dict(zip(columns, data[0], strict=True)), "colour": 3.0}
    message = refused(server.post({"dataframe_records": [record]}))
    assert "unknown columns ['colour']" in message


@pytest.mark.parametrize("value", ["5.1", True, None, [1.0], {"x": 1}])
def test_wrong_type_gets_400(server: Server, value: Any) -> None:
    columns, data = rows(1)
    record = {**dict(zip(columns, data[0], strict=True)), columns[2]: value}
    message = refused(server.post({"dataframe_records": [record]}))
    assert repr(columns[2]) in message


def test_csv_with_text_in_a_number_column_gets_400(server: Server) -> None:
    columns, _ = rows()
    text = ",".join(columns) + "\n1,2,three,4\n"
    assert "takes double" in refused(server.post(text.encode(), "text/csv"))


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/xml", "application/json; charset=latin-1"]
)
def test_unsupported_content_type_gets_415(server: Server, content_type: str | None) -> None:
    refused(server.post(b'{"inputs": [[1, 2, 3, 4]]}', content_type), 415)


def test_oversized_body_gets_413(server: Server) -> None:
    columns, data = rows(1)
    record = dict(zip(columns, data[0], strict=True))
    body = {"dataframe_records": [record] * (LIMIT // 60)}
    encoded = json.dumps(body).encode()
    assert len(encoded) > LIMIT
    assert "limit of 64 KB" in refused(server.post(encoded), 413)
    assert server.get("/ping")[0] == 200  # and the server carries on


def test_oversized_streamed_body_gets_413(server: Server) -> None:
    """Without Content-Length (chunked), the bytes are counted as they arrive."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(server.url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    chunks = (b" " * 8192 for _ in range(2 * LIMIT // 8192))
    connection.request(
        "POST", "/invocations", chunks, {"Content-Type": "application/json"}, encode_chunked=True
    )
    answer = connection.getresponse()
    assert answer.status == 413
    assert json.loads(answer.read())["error_code"] == "BAD_REQUEST"
    connection.close()


# --- a tensor signature ------------------------------------------------------------------------


def wine_rows(n: int) -> list[list[float]]:
    from sklearn.datasets import load_wine

    return list(load_wine().data[:n].tolist())


def test_tensor_inputs_and_instances(tensor_server: Server, wine: tuple[Path, Any]) -> None:
    import numpy as np

    data = wine_rows(4)
    want = wine[1].predict(np.array(data)).tolist()
    assert predictions(tensor_server.post({"inputs": data})) == want
    assert predictions(tensor_server.post({"instances": data})) == want


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"inputs": [[1.0, 2.0]]}, "dimension 1"),
        ({"inputs": [1.0, 2.0]}, "dimensions"),
        ({"inputs": [[1.0] * 13, [1.0] * 12]}, "ragged"),
        ({"inputs": [["a"] * 13]}, "takes float64"),
        ({"inputs": [[True] * 13]}, "takes float64"),
        ({"dataframe_split": {"data": [[1.0] * 13]}}, "takes a tensor"),
    ],
)
def test_tensor_misfits_get_400(tensor_server: Server, body: Any, words: str) -> None:
    assert words in refused(tensor_server.post(body))


def test_tensor_openapi(tensor_server: Server) -> None:
    document = json.loads(tensor_server.get("/openapi.json")[1])
    schema = document["paths"]["/invocations"]["post"]["requestBody"]["content"]
    tensor = schema["application/json"]["schema"]["oneOf"][0]["properties"]["inputs"]
    assert tensor["items"]["minItems"] == tensor["items"]["maxItems"] == 13


# --- processes: workers, death of the model worker, stopping ----------------------------------


def test_two_workers(iris: tuple[Path, Any]) -> None:
    running = Server.start(iris[0], "--env-manager", "local", "--workers", "2")
    try:
        columns, data = rows(3)
        body = {"dataframe_split": {"columns": columns, "data": data}}
        for _ in range(10):
            assert predictions(running.post(body)) == expected(iris[1], columns, data)
    finally:
        err = running.stop()
    assert "Traceback" not in err
    assert running.process.returncode == 0


def test_a_dead_model_worker_gives_503_never_a_traceback(iris: tuple[Path, Any]) -> None:
    running = Server.start(iris[0], "--env-manager", "local")
    try:
        (worker,) = children(running.process.pid)
        os.kill(worker, signal.SIGKILL)
        assert wait_gone(worker)
        columns, data = rows(1)
        message = refused(
            running.post({"dataframe_split": {"columns": columns, "data": data}}), 503
        )
        assert "the model worker exited with code -9" in message
        assert running.get("/ping")[0] == 503
    finally:
        running.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_server_and_model_cleanly(iris: tuple[Path, Any], sig: int) -> None:
    running = Server.start(iris[0], "--env-manager", "local")
    (worker,) = children(running.process.pid)
    err = running.stop(sig)
    assert running.process.returncode == 0, err
    assert "Traceback" not in err
    assert err.rstrip().endswith("stopped")
    assert wait_gone(worker)


def test_the_model_dies_with_a_killed_server(iris: tuple[Path, Any]) -> None:
    running = Server.start(iris[0], "--env-manager", "local")
    (worker,) = children(running.process.pid)
    running.stop(signal.SIGKILL)
    assert wait_gone(worker)  # PR_SET_PDEATHSIG


def test_a_taken_port_is_one_line(server: Server, iris: tuple[Path, Any]) -> None:
    port = server.url.rsplit(":", 1)[1]
    command = [sys.executable, "-m", "pipeline", "serve", str(iris[0]), "--port", port]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode != 0
    assert "cannot listen on 127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr


def test_not_a_package(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pipeline", "serve", str(tmp_path), "--env-manager", "local"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 2
    assert "no model package here" in done.stderr


def test_help_lists_endpoints_and_flags() -> None:
    command = [sys.executable, "-m", "pipeline", "serve", "--help"]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    for word in ("/invocations", "/openapi.json", "--max-body", "--env-manager", "--trusted"):
        assert word in done.stdout


def test_the_server_module_needs_only_starlette() -> None:
    """A container holds starlette, uvicorn and the model's libraries, nothing else of ours."""
    heavy = ("pydantic", "sqlalchemy", "click", "yaml", "xxhash", "filelock", "rich", "numpy")
    code = (
        "import sys, pipeline.serve.app\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_model_failures_are_400_or_500_in_one_line(tmp_path: Path) -> None:
    package = moody_package(tmp_path / "moody")
    running = Server.start(package, "--env-manager", "local", "--trusted", cwd=ROOT)
    try:
        assert predictions(running.post({"inputs": [[1.0, 2.0]]})) == [1]
        message = refused(running.post({"inputs": [[-1.0, 2.0]]}), 400)
        assert "ValueError: negative values are not allowed" in message
        message = refused(running.post({"inputs": [[101.0, 2.0]]}), 500)
        assert message == "the model failed: RuntimeError: the model broke"
        assert predictions(running.post({"inputs": [[3.0, 4.0]]})) == [1]  # it carries on
    finally:
        running.stop()


def test_a_pickle_model_is_refused_without_trusted(tmp_path: Path) -> None:
    package = moody_package(tmp_path / "moody")
    command = [sys.executable, "-m", "pipeline", "serve", str(package), "--env-manager", "local"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "trusted" in done.stderr
    assert "Traceback" not in done.stderr
