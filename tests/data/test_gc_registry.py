"""`gc` keeps what the model registry names: a registered package stays servable after its
run is dropped and its workspace copy is gone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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


def test_remote_gc_keeps_packages_the_shared_registry_names(
    project: Project, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    model_project(project)
    _ok(project.cli("remote", "add", "-d", "shared", str(remote)))
    added = _json(project.cli("registry", "add", "churn", "--json"))
    _ok(project.cli("push", "--runs"))
    project.params({"train": {"lr": 0.7}})
    _ok(project.cli("repro"))
    _ok(project.cli("push"))
    runs = [r["id"] for r in _json(project.cli("runs", "--json"))]
    _ok(project.cli("gc", "--workspace", "--drop-runs", *runs))  # no local run needs v1 now
    for record in (remote / "records").rglob("*.json"):  # nor a shared run record
        record.unlink()
    _ok(project.cli("gc", "--workspace", "--remote", "shared", "--yes"))
    digest = added["hash"].split(":", 1)[1]
    listing = remote / "files" / "xxh3" / digest[:2] / digest[2:]
    assert listing.is_file(), "the registered package's listing left the remote"
    members = json.loads(listing.read_bytes())
    for member in members:  # and so did none of its files
        hexdigest = member["hash"].split(":", 1)[1]
        assert (remote / "files" / "xxh3" / hexdigest[:2] / hexdigest[2:]).is_file(), member
