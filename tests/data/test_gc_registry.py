"""`gc` keeps what the model registry names: a registered package stays servable after its
run is dropped and its workspace copy is gone."""

from __future__ import annotations

import json
import shutil

from tests.cli.support import _json, _ok
from tests.cli.test_registry import model_project
from tests.conftest import Project


def test_gc_keeps_registered_packages_after_their_runs_are_dropped(project: Project) -> None:
    model_project(project)
    added = _json(project.cli("registry", "add", "churn", "--json"))
    project.params({"train": {"lr": 0.7}})
    _ok(project.cli("repro"))  # the lock now names another package; v1 is only registered
    shutil.rmtree(project.root / "models")
    runs = [r["id"] for r in _json(project.cli("runs", "--json"))]
    _ok(project.cli("gc", "--workspace", "--drop-runs", *runs))
    shown = _json(project.cli("registry", "show", "churn/1", "--json"))
    assert shown["hash"] == added["hash"]
    _ok(project.cli("fsck"))
    materialised = project.root / ".pipeline" / "tmp" / "models"
    from pipeline.serve.refs import resolve_model

    ref = resolve_model(project.root, "models:/churn/1")
    assert (ref.dir / "MLmodel").is_file() and str(ref.dir).startswith(str(materialised))
    assert json.loads((ref.dir / "MLmodel").read_text())["pipeline"]["format"] == 1
