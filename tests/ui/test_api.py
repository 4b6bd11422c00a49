"""`pipeline ui`'s JSON API and command line, against real servers on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pipeline.runs.model import RunRow, RunStatus
from pipeline.runs.runstore import RunStore
from tests.conftest import cli_env
from tests.ui.conftest import RUNS, Seeded, UiServer, start_ui, stop_ui


def get(url: str) -> tuple[int, Any]:
    """(status, parsed JSON body) of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


def test_runs_table_is_columns_of_every_run(ui: UiServer) -> None:
    status, data = get(ui.url + "api/runs")
    assert status == 200
    assert data["count"] == RUNS + 1
    assert all(len(column) == RUNS + 1 for column in data["runs"].values())
    assert set(data["params"]) == {"model", "train.lr", "train.n_estimators"}
    # compare's own naming: one metrics file, so its keys lose the `file:` prefix
    assert {"accuracy", "f1", "loss"} <= set(data["metrics"])
    assert all(len(column) == RUNS + 1 for column in data["metrics"].values())


def test_compare_has_changed_params_metrics_and_curves(ui: UiServer, seeded: Seeded) -> None:
    chosen = seeded.with_history[:3]
    status, data = get(ui.url + "api/compare?runs=" + ",".join(chosen))
    assert status == 200
    assert [r["id"] for r in data["runs"]] == chosen
    assert "accuracy" in data["metrics"]
    assert {c["key"] for c in data["curves"]} == {"train_loss", "val_loss"}
    assert all(c["lines"] == 3 for c in data["curves"])
    assert all(c["spec"]["mark"]["type"] == "line" for c in data["curves"])


def test_run_page_has_stages_lineage_and_logs(ui: UiServer, seeded: Seeded) -> None:
    status, data = get(ui.url + "api/runs/showcase")
    assert status == 200
    assert data["run"]["id"] == seeded.showcase
    assert [s["stage"] for s in data["stages"]] == ["prepare", "featurize", "train", "evaluate"]
    raw = [n for n in data["lineage"]["nodes"] if n.get("raw")]
    assert [n["label"] for n in raw] == ["data/raw.csv"]
    status, log = get(ui.url + "api/runs/showcase/logs/train")
    assert status == 200 and "fitting 100 trees" in log["logs"][0]["text"]


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("api/runs/no-such-run", 404, "no run 'no-such-run'"),
        ("api/compare", 400, "nothing to compare"),
        ("api/compare?runs=showcase,nope", 404, "no run 'nope'"),
        ("api/runs/showcase/logs/prepare", 400, "did not run"),
        ("api/models/nope", 404, "nope"),
        ("api/nothing/here", 404, "no page /api/nothing/here"),
    ],
)
def test_bad_requests_are_json_messages(ui: UiServer, path: str, status: int, words: str) -> None:
    got, data = get(ui.url + path)
    assert got == status
    assert words in data["error"]
    assert "Traceback" not in json.dumps(data)


def test_page_loads_nothing_from_the_network(ui: UiServer) -> None:
    page = text(ui.url)
    assert "<title>churn · pipeline</title>" in page
    for body in (page, text(ui.url + "app.js")):
        assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in body


def test_an_empty_project_then_its_first_run(tmp_path: Path) -> None:
    """No run store: the UI answers without creating one; a run recorded while it is open
    shows up on the next request. A broken manifest is a 400 naming the file."""
    root = tmp_path / "fresh"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "dvc.yaml").write_text("stages:\n  train:\n    cmd: [unclosed\n", "utf-8")
    server = start_ui(root)
    try:
        assert get(server.url + "api/runs")[1]["count"] == 0
        assert not (root / ".pipeline" / "runs.db").exists()
        status, data = get(server.url + "api/dag")
        assert status == 400 and "dvc.yaml" in data["error"]
        store = RunStore.for_project(root / ".pipeline")
        store.start(RunRow("r1", "repro", "pipeline repro", time.time(), RunStatus.RUNNING), {})
        store.finish("r1", RunStatus.SUCCEEDED, time.time(), {"acc": 0.5})
        store.close()
        runs = get(server.url + "api/runs")[1]
        assert runs["count"] == 1 and runs["metrics"] == {"acc": [0.5]}
    finally:
        stop_ui(server.process)
    assert server.process.returncode == 0, server.output


def test_a_taken_port_is_one_line(ui: UiServer, seeded: Seeded) -> None:
    port = ui.url.rsplit(":", 1)[1].strip("/")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "ui", "--port", port],
        check=False,
        cwd=seeded.root,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "ui", "--help"],
        check=False,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert done.returncode == 0
    assert "--port" in done.stdout and "127.0.0.1" in done.stdout


def test_started_from_python(seeded: Seeded) -> None:
    code = (
        "import sys\n"
        "from pipeline.ui import UiOptions, serve\n"
        f"serve(UiOptions({str(seeded.root)!r}, port=0), sys.stderr.write)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=cli_env()
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("pipeline ui: http://127.0.0.1:"), line
        url = line.split()[2]
        assert get(url + "api/project")[1]["name"] == "churn"
    finally:
        stop_ui(process)
