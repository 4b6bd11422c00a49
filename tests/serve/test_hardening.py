"""The scoring server against hostile input and surroundings: numbers no column can hold are a
400 (never a 500), the worker imports nothing from the caller's or the package's directory, a
build context never follows a link out of the package, and a foreign Host header is refused."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ModelError
from pipeline.serve import app as server
from pipeline.serve import dockerfile
from pipeline.serve.payload import Column, InputSchema, PayloadError, Tensor, parse
from tests.serve.support import iris_package

JSON = "application/json"
INTS = InputSchema(columns=(Column("a", "integer"), Column("b", "long")))
DOUBLE = InputSchema(columns=(Column("x", "double"),))


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def refused(raw: bytes, schema: InputSchema, mime: str = JSON) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        parse(raw, mime, schema)
    assert caught.value.status == 400
    return caught.value


# --- numbers ----------------------------------------------------------------------------------


def test_an_integer_longer_than_python_reads_is_malformed_json() -> None:
    error = refused(b'{"inputs": [[' + b"1" * 5000 + b", 1]]}", INTS)
    assert error.message.startswith("malformed JSON")


def test_an_int_beyond_any_double_is_out_of_range() -> None:
    error = refused(body({"inputs": {"x": [10**400]}}), DOUBLE)
    assert "out of its range" in error.message


def test_integer_and_long_columns_are_range_checked() -> None:
    for a, b in ((3_000_000_000, 1), (-(2**31) - 1, 1), (1, 10**22), (1, 2**63)):
        error = refused(body({"inputs": {"a": [a], "b": [b]}}), INTS)
        assert "out of its range" in error.message
    refused(b"a,b\n3000000000,1\n", INTS, "text/csv")
    edges = {"inputs": {"a": [2**31 - 1, -(2**31)], "b": [2**63 - 1, -(2**63)]}}
    assert parse(body(edges), JSON, INTS).rows == [[2**31 - 1, 2**63 - 1], [-(2**31), -(2**63)]]


def test_tensor_ints_are_range_checked_by_dtype() -> None:
    for dtype, value in (("int32", 2**31), ("uint8", 256), ("uint8", -1), ("float64", 10**400)):
        refused(body({"inputs": [[value]]}), InputSchema(tensors=(Tensor(dtype, (-1, 1)),)))
    fine = InputSchema(tensors=(Tensor("int64", (-1, 1)),))
    assert parse(body({"inputs": [[2**63 - 1]]}), JSON, fine).rows == [[2**63 - 1]]


# --- the worker's sys.path --------------------------------------------------------------------


def _plant(folder: Path, marker: Path) -> None:
    """A fake `skops` that leaves `marker` if anything imports it."""
    (folder / "skops").mkdir()
    (folder / "skops" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")


def test_the_worker_imports_nothing_from_the_cwd_or_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package, _ = iris_package(tmp_path / "model")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    _plant(elsewhere, tmp_path / "RAN_FROM_CWD")
    _plant(package, tmp_path / "RAN_FROM_PACKAGE")
    monkeypatch.chdir(elsewhere)
    mlmodel = json.loads((package / "MLmodel").read_text())
    config = server.ServeConfig(str(package), mlmodel, sys.executable)
    child = server.spawn(config)
    try:
        versions = server.wait_ready(child)
    finally:
        child.kill()
        child.communicate()  # closes its pipes too
    assert "skops" in versions
    assert not (tmp_path / "RAN_FROM_CWD").exists()
    assert not (tmp_path / "RAN_FROM_PACKAGE").exists()


def test_the_worker_env_keeps_pythonpath_but_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = server._worker_env({"PYTHONPATH": ":lib:/abs/stage:"})
    assert env["PYTHONPATH"].split(":") == [str(tmp_path / "lib"), "/abs/stage"]


# --- the build context ------------------------------------------------------------------------


def _write(package: Path, out: Path) -> dockerfile.BuildContext:
    return dockerfile.write_context(
        package,
        out,
        mlmodel=json.loads((package / "MLmodel").read_text()),
        python_version="3.11",
        requirements=[],
    )


def test_a_link_out_of_the_package_is_refused(tmp_path: Path) -> None:
    package, _ = iris_package(tmp_path / "model")
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2\n")
    (package / "notes.txt").symlink_to(secret)
    with pytest.raises(ModelError, match="not a file of the model package") as caught:
        _write(package, tmp_path / "ctx")
    assert caught.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "secret.txt"]  # no context


def test_links_to_directories_are_refused_and_inside_file_links_copied(tmp_path: Path) -> None:
    package, _ = iris_package(tmp_path / "model")
    (package / "again.json").symlink_to(package / "input_example.json")
    context = _write(package, tmp_path / "ctx")
    copied = context.directory / "model" / "again.json"
    assert not copied.is_symlink()
    assert copied.read_bytes() == (package / "input_example.json").read_bytes()
    (package / "loop").symlink_to(package)
    with pytest.raises(ModelError, match="link"):
        _write(package, tmp_path / "ctx2")
    (package / "loop").unlink()
    (package / "gone.txt").symlink_to(package / "nothing-here")
    with pytest.raises(ModelError, match="link"):
        _write(package, tmp_path / "ctx3")


# --- the Host header --------------------------------------------------------------------------


def host_status(app: Any, host: str, path: str = "/version") -> int:
    """The status `app` answers a GET of `path` carrying this Host header (no lifespan run)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", host.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 5000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


def test_the_server_answers_only_loopback_names_and_its_host() -> None:
    app = server.create_app(server.ServeConfig("/nowhere", {}, host="127.0.0.1"))
    for good in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000", "LOCALHOST"):
        assert host_status(app, good) == 200, good
    for bad in ("attacker.example:5000", "127.0.0.1.nip.io", "evil"):
        assert host_status(app, bad) == 400, bad
    named = server.create_app(server.ServeConfig("/nowhere", {}, host="10.1.2.3"))
    assert host_status(named, "10.1.2.3:5000") == 200
    assert host_status(named, "attacker.example") == 400
    exposed = server.create_app(server.ServeConfig("/nowhere", {}, host="0.0.0.0"))
    assert host_status(exposed, "attacker.example") == 200


def test_allowed_hosts_brackets_ipv6() -> None:
    assert "[fe80::1]" in server.allowed_hosts("fe80::1")
    assert server.allowed_hosts("::") == ["*"]
