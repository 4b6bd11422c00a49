"""Whatever a stage logs never fails the stage or its record, and never lands outside a folder.

Each test repeats a reviewer's reproduction: JSON nested past the decoder's depth, NUL and lone
surrogates (PostgreSQL and UTF-8 refuse them), ints too large for a float in DVCLive's files,
keys that are paths out of an MLflow export folder, and a hand-edited script header.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import track
from pipeline.runs import tracking
from pipeline.runs.mlflowexport import export
from pipeline.runs.model import RunRow, RunStatus
from pipeline.runs.runstore import RunStore, server_url
from pipeline.runs.trackfile import Parsed, Point, parse_lines
from pipeline.runs.trackimport import foreign_lines
from tests.conftest import Project
from tests.pg import pg_server, pg_url  # noqa: F401 (fixtures)

GOOD = b'{"type":"metric","key":"ok","value":1,"step":1}'


def _parse(*lines: bytes) -> Parsed:
    return parse_lines(b"\n".join([*lines, GOOD]), 0.0)


def test_json_nested_past_the_decoders_depth_is_one_skipped_line() -> None:
    parsed = _parse(b"[" * 100_000, b'{"type":"param","key":"p","value":' + b"[" * 100_000)
    assert (parsed.skipped, [p.key for p in parsed.metrics]) == (2, ["ok"])


@pytest.mark.parametrize(
    "line",
    [
        {"type": "metric", "key": "acc\x00x", "value": 1},
        {"type": "metric", "key": "\ud800", "value": 1},
        {"type": "tag", "key": "t", "value": "a\x00b"},
        {"type": "tag", "key": "t", "value": "\udfff"},
        {"type": "param", "key": "p\x00", "value": 1},
        {"type": "artifact", "path": "a\x00b"},
        {"type": "artifact", "path": "a" * 1001},
    ],
)
def test_text_a_database_refuses_is_an_unreadable_line(line: dict[str, object]) -> None:
    parsed = _parse(json.dumps(line).encode())
    assert (parsed.skipped, parsed.tags, parsed.params, parsed.artifacts) == (1, {}, [], [])


@pytest.mark.parametrize("key", ["/tmp/x.sh", "../../../../tmp/x", "a/../../b", "a/.."])
def test_a_key_that_is_a_path_out_is_an_unreadable_line(key: str) -> None:
    lines = [{"type": "metric", "key": key, "value": 1}, {"type": "tag", "key": key, "value": "v"}]
    parsed = _parse(*(json.dumps(line).encode() for line in lines))
    assert (parsed.skipped, parsed.tags, [p.key for p in parsed.metrics]) == (2, {}, ["ok"])


def test_dots_inside_a_key_part_are_fine() -> None:
    parsed = _parse(b'{"type":"tag","key":"a/b..c/.d","value":"v"}')
    assert (parsed.skipped, parsed.tags) == (0, {"a/b..c/.d": "v"})


def test_what_postgresql_refuses_never_loses_the_record(
    pg_url: str,  # noqa: F811 (a fixture)
    tmp_path: Path,
) -> None:
    lines = [
        {"type": "metric", "key": "acc\x00x", "value": 0.9, "step": 1},
        {"type": "tag", "key": "t", "value": "a\x00b"},
        {"type": "artifact", "path": "../" + "a" * 990},  # shown whole: past the column
    ]
    data = b"\n".join(json.dumps(line).encode() for line in lines)
    store = RunStore(server_url(pg_url))
    try:
        run = RunRow("r1", "repro", "pipeline repro", 1.0, RunStatus.SUCCEEDED)
        with store.batch() as writer:
            writer.start(run, {})
            errors = tracking.ingest(writer.conn, "r1", "s", _parse(data), tmp_path)
            writer.finish("r1", RunStatus.SUCCEEDED, 2.0, {})
        assert errors == ["2 unreadable line(s) in the track file were skipped"]
        assert store.metrics_of(["r1"])["r1"] == {"ok": 1.0}
    finally:
        store.close()


@pytest.fixture
def sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`pipeline.track` writing to a fresh track file in this process."""
    path = tmp_path / "t.jsonl"
    monkeypatch.setenv("PIPELINE_TRACK_FILE", str(path))
    monkeypatch.setattr(track._state, "sink", None)
    yield path
    if track._state.sink is not None:
        os.close(track._state.sink.fd)


def test_logging_such_a_key_never_fails_the_stage(sink: Path) -> None:
    for key in ("/tmp/x.sh", "../x", "a/../b", "a\x00b", "\ud800"):
        track.set_tag(key, "v")
        track.log_metric(key, 1.0)
    track.log_metric("a/b", 1.0)
    parsed = parse_lines(sink.read_bytes(), 0.0)
    assert ([p.key for p in parsed.metrics], parsed.tags, parsed.skipped) == (["a/b"], {}, 10)


def _dvclive(tmp_path: Path, summary: str) -> list[str]:
    (tmp_path / "dvclive").mkdir()
    (tmp_path / "dvclive" / "metrics.json").write_text(summary)
    (tmp_path / "dvclive" / "params.yaml").write_text("lr: 0.1\n")
    return foreign_lines(tmp_path, None, 0.0, dvclive=True)


def test_an_int_too_large_for_a_float_is_not_a_metric(tmp_path: Path) -> None:
    lines = _dvclive(tmp_path, '{"acc": 0.5, "big": 1' + "0" * 400 + "}")
    assert [json.loads(line)["key"] for line in lines] == ["acc", "lr"]


def test_a_summary_nested_too_deep_costs_that_file_only(tmp_path: Path) -> None:
    lines = _dvclive(tmp_path, '{"a": ' * 100_000)
    assert [json.loads(line)["key"] for line in lines] == ["lr"]


def test_a_repro_whose_dvclive_summary_holds_a_huge_int_succeeds(p: Project) -> None:
    summary = '{"acc": 0.5, "big": 1' + "0" * 400 + "}"
    p.write(
        "s.py",
        "import os\nos.makedirs('dvclive', exist_ok=True)\n"
        f"open('dvclive/metrics.json', 'w').write({summary!r})\nopen('o.txt', 'w').write('z')\n",
    )
    p.write("dvc.yaml", "stages:\n  s:\n    cmd: python s.py\n    deps: [s.py]\n    outs: [o.txt]")
    p.commit("dvc.yaml", "s.py")
    for _ in range(2):  # it failed every time: the summary stays in the workspace
        done = p.cli("repro", "--force")
        assert done.returncode == 0, done.stderr
    shown = json.loads(p.cli("runs", "show", "latest", "--json").stdout)
    assert shown["metrics"]["acc"] == 0.5


# --- `runs export --mlflow file:` of a run recorded before keys were checked ------------------


def _recorded(store: RunStore, key: str) -> RunRow:
    run = RunRow("r1", "repro", "pipeline repro", 1.0, RunStatus.SUCCEEDED, ended_at=2.0)
    parsed = Parsed(
        metrics=[Point(key, 0, 1.0, 0, 1.0), Point("fine/key", 0, 1.0, 1, 2.0)],
        params=[(key, "1")],
        tags={key: "#!/bin/sh", "fine": "yes"},
    )
    with store.batch() as writer:
        writer.start(run, {})
        tracking.ingest(writer.conn, run.id, "train", parsed, Path.cwd())
        writer.finish(run.id, RunStatus.SUCCEEDED, 2.0, {})
    return store.find(run.id)


@pytest.mark.parametrize("key", ["/tmp/escaped", "../../../../../escaped", "a/../../../b"])
def test_a_key_that_is_a_path_out_is_not_exported(
    tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = key.replace("/tmp", str(tmp_path))
    store = RunStore.for_project(tmp_path / "p" / ".pipeline")
    try:
        run = _recorded(store, key)
        mlruns = tmp_path / "export" / "deep" / "mlruns"
        [(_, mlflow_run)] = export(store, [run], mlruns.as_uri(), "pipeline")
    finally:
        store.close()
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    expected = ("p/", f"export/deep/mlruns/1/{mlflow_run}/", "export/deep/mlruns/1/meta.yaml")
    assert all(p.startswith(expected) for p in written), written
    folder = mlruns / "1" / mlflow_run
    assert (folder / "tags" / "fine").read_text() == "yes"
    assert (folder / "metrics" / "fine" / "key").exists()
    assert "not exported: MLflow refuses a key" in capsys.readouterr().err


def test_doubled_slashes_are_collapsed_as_mlflow_wants(tmp_path: Path) -> None:
    store = RunStore.for_project(tmp_path / "p" / ".pipeline")
    try:
        [(_, mlflow_run)] = export(store, [_recorded(store, "a//./b")], str(tmp_path / "m"), "e")
    finally:
        store.close()
    assert (tmp_path / "m" / "1" / mlflow_run / "tags" / "a" / "b").read_text() == "#!/bin/sh"


# --- a script run's header, edited by hand ----------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        [],
        {"host": socket.gethostname()},
        {"id": "x", "host": socket.gethostname(), "pid": "1", "started_at": 1.0},
        {"id": "x", "host": socket.gethostname(), "pid": 10**30, "started_at": 1.0},
        {"id": "x", "host": socket.gethostname(), "pid": 1, "started_at": "now"},
        "[" * 100_000,
    ],
)
@pytest.mark.parametrize("end", ["", '{"type":"end","status":"succeeded"}\n'])
def test_a_bad_script_header_never_fails_the_readers(p: Project, header: object, end: str) -> None:
    p.write("dvc.yaml", "stages:\n  noop:\n    cmd: echo\n")
    folder = p.root / ".pipeline" / "tmp" / "track" / "x"
    folder.mkdir(parents=True)
    text = header if isinstance(header, str) else json.dumps(header)
    (folder / "run.json").write_text(text)
    (folder / "script.jsonl").write_text('{"type":"metric","key":"a","value":1}\n' + end)
    done = p.cli("runs", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize("pid", ["99999999999999999999", "\u00b2", "0"])
def test_an_unrecorded_folder_with_a_bad_pid_never_fails_the_readers(p: Project, pid: str) -> None:
    p.write("dvc.yaml", "stages:\n  noop:\n    cmd: echo\n")
    folder = p.root / ".pipeline" / "tmp" / "track" / f".unrecorded-{pid}-x"
    folder.mkdir(parents=True)
    (folder.parent / "ended").mkdir()  # something to ingest, so the folder is looked at
    done = p.cli("runs", "--json")
    assert done.returncode == 0, done.stderr
    assert folder.is_dir()
