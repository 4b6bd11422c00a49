"""MODEL references against a hostile remote: registry events that are not this tool's are
skipped by `pull --runs` (with a warning) rather than failing it, and a package hash that is not
one never becomes a path, so `serve` cannot be pointed at a folder outside the cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline import api
from pipeline.data.options import SyncOptions
from pipeline.errors import DataError, UsageError
from pipeline.runs.registry import Event, Registry
from pipeline.runs.runstore import RunStore
from tests.cli.test_registry import model_project
from tests.conftest import Project

ESCAPE = "xxh3_128:../../../../outside_pkg"  # .pipeline/tmp/models/<that> is beside the project


@pytest.fixture
def registered(project: Project) -> Project:
    model_project(project)
    api.registry_add(project.root, "churn", message="baseline")
    return project


def _outside_package(root: Path) -> Path:
    """A package beside the project, where ESCAPE leads from .pipeline/tmp/models."""
    folder = root.parent / "outside_pkg"
    folder.mkdir()
    (folder / "MLmodel").write_text('{"flavors": {}}\n')
    return folder


def _event(**values: Any) -> dict[str, Any]:
    body = {
        "format": "pipeline-registry-event 1",
        "at": 1.0,
        "actor": "mallory",
        "action": "register",
        "to_version": 1,
        **values,
    }
    return {k: body.get(k) for k in ("format", *Event.__dataclass_fields__)}


def test_pull_skips_events_that_are_not_this_tools(registered: Project, tmp_path: Path) -> None:
    root = registered.root
    _outside_package(root)
    api.remote_add(root, "origin", str(tmp_path / "remote"), default=True)
    api.push(SyncOptions(runs=True), root)
    folder = next((tmp_path / "remote").rglob("registry/*/*.json")).parent
    planted = {
        "a" * 32: _event(id="a" * 32, name="esc", hash=ESCAPE),
        "b" * 32: _event(id="b" * 32, name="churn", hash="xxh3_128:" + "b" * 32, to_version="x"),
        "c" * 32: _event(id="d" * 32, name="churn", hash="xxh3_128:" + "c" * 32),
    }
    for name, body in planted.items():
        (folder / f"{name}.json").write_text(json.dumps(body))

    reports = api.pull(SyncOptions(runs=True), root)  # was: internal error TypeError
    warnings = [w for r in reports for w in r.warnings]
    assert len(warnings) == 3 and all("skipped" in w for w in warnings)
    assert sum(r.events for r in reports) == 0
    with pytest.raises(UsageError, match="no registered model 'esc'"):
        api.resolve_model(root, "models:/esc/1")
    assert [v.version for v in api.registry_versions(root, "churn")] == [1]


def test_a_hash_that_is_no_package_hash_never_becomes_a_path(registered: Project) -> None:
    """Even an event already in the store (written before events were checked) cannot make
    `serve` use a folder outside the cache unverified."""
    root = registered.root
    _outside_package(root)
    store = RunStore.for_project(root / ".pipeline")
    try:
        event = Event("e" * 32, 1.0, "mallory", "esc", "register", to_version=1, hash=ESCAPE)
        Registry(store).import_events([event])
    finally:
        store.close()
    with pytest.raises(DataError, match="is not a package hash"):
        api.resolve_model(root, "models:/esc/1")
