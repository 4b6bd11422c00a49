"""MODEL references: a package dir, `runs:/`, `models:/` and declared artifacts resolve to a
loadable directory; packages the workspace lacks are materialised read-only from the cache,
or from the default remote when the cache lacks them too."""

from __future__ import annotations

import copy
import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from pipeline import api
from pipeline.data.options import SyncOptions
from pipeline.errors import DataError, UsageError
from tests.cli.test_registry import MANIFEST, model_project
from tests.conftest import Project


@pytest.fixture
def registered(project: Project) -> Project:
    model_project(project)
    api.registry_add(project.root, "churn", message="baseline")
    api.registry_alias(project.root, "churn", "champion", 1)
    return project


def test_every_form_resolves_to_the_same_package(registered: Project) -> None:
    root = registered.root
    workspace = root / "models" / "churn"
    digest = api.registry_show(root, "churn", 1).hash
    for ref in ("models:/churn@champion", "models:/churn/1", "models:/churn/latest"):
        found = api.resolve_model(root, ref)
        assert (found.dir, found.hash, found.version) == (workspace, digest, ("churn", 1))
        assert found.run_id is not None
    by_run = api.resolve_model(root, "runs:/latest/models/churn")
    assert (by_run.dir, by_run.hash) == (workspace, digest)
    by_name = api.resolve_model(root, "churn")  # the declared artifact
    assert (by_name.dir, by_name.hash, by_name.source) == (
        workspace,
        digest,
        "artifact churn (models/churn)",
    )
    os.chdir(root)
    by_path = api.resolve_model(root, "models/churn")
    assert (by_path.dir, by_path.hash, by_path.path) == (workspace, digest, "models/churn")


def test_a_deleted_workspace_copy_is_materialised_from_the_cache(registered: Project) -> None:
    root = registered.root
    original = (root / "models/churn/model.txt").read_bytes()
    digest = api.registry_show(root, "churn").hash
    shutil.rmtree(root / "models")
    found = api.resolve_model(root, "models:/churn@champion")
    expected = root / ".pipeline" / "tmp" / "models" / digest.partition(":")[2]
    assert found.dir == expected
    assert (found.dir / "model.txt").read_bytes() == original
    assert not os.stat(found.dir / "MLmodel").st_mode & stat.S_IWUSR  # read-only
    assert [p.name for p in found.dir.parent.iterdir()] == [expected.name]  # no temp left
    again = api.resolve_model(root, "runs:/latest/models/churn")  # reused as it is
    assert again.dir == expected and again.hash == digest
    assert api.resolve_model(root, "churn").dir == expected  # the artifact, from the lock


def test_a_package_the_cache_lacks_comes_from_the_default_remote(
    registered: Project, tmp_path: Path
) -> None:
    root = registered.root
    api.remote_add(root, "origin", str(tmp_path / "remote"), default=True)
    api.push(SyncOptions(runs=True), root)
    shutil.rmtree(root / "models")
    _remove_tree(root / ".pipeline" / "cache" / "objects")
    found = api.resolve_model(root, "models:/churn/1")
    assert (found.dir / "MLmodel").is_file()
    assert found.dir.parent == root / ".pipeline" / "tmp" / "models"


def test_a_run_output_inside_a_recorded_directory(registered: Project) -> None:
    """`runs:/RUN/PATH` may name a directory inside an output the run recorded."""
    root = registered.root
    registered.write("bundle.sh", "mkdir -p bundle && cp -r models/churn bundle/inner\n")
    manifest = copy.deepcopy(MANIFEST)
    manifest["stages"]["bundle"] = {
        "cmd": "bash bundle.sh",
        "deps": ["models/churn", "bundle.sh"],
        "outs": ["bundle"],
    }
    registered.write("dvc.yaml", yaml.safe_dump(manifest, sort_keys=False))
    registered.repro()
    inner = api.resolve_model(root, "runs:/latest/bundle/inner")
    assert inner.hash == api.registry_show(root, "churn").hash  # same files: same tree hash
    shutil.rmtree(root / "bundle")
    again = api.resolve_model(root, "runs:/latest/bundle/inner")
    assert (again.dir / "MLmodel").is_file() and again.hash == inner.hash


def test_what_is_not_a_model_is_refused(registered: Project) -> None:
    root = registered.root
    os.chdir(root)
    with pytest.raises(UsageError, match="no MLmodel file"):
        api.resolve_model(root, "data")
    with pytest.raises(UsageError, match="no model 'nothing'") as caught:
        api.resolve_model(root, "nothing")
    assert "churn" in (caught.value.hint or "")  # the declared artifacts are suggested
    with pytest.raises(UsageError, match="wrote no models/other"):
        api.resolve_model(root, "runs:/latest/models/other")
    with pytest.raises(UsageError, match="no alias 'staging'"):
        api.resolve_model(root, "models:/churn@staging")
    shutil.rmtree(root / "models")
    _remove_tree(root / ".pipeline" / "cache" / "objects")
    with pytest.raises(DataError, match="not in the cache"):
        api.resolve_model(root, "models:/churn/1")


def _remove_tree(path: Path) -> None:
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(path)
