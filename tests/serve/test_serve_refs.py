"""`pipeline serve` by path, by run and by `models:/NAME@ALIAS`, on a real server: moving the
alias and restarting serves the new version."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cli.support import _json, _ok
from tests.conftest import Project
from tests.serve.support import Server

TRAIN = """\
import sys
import numpy as np
from sklearn.dummy import DummyClassifier
import pipeline.models

label = int(sys.argv[1])
features = np.loadtxt("data/features.csv", delimiter=",")
model = DummyClassifier(strategy="constant", constant=label).fit(features, [0, 1] * 5)
pipeline.models.save(model, "models/clf", sample=features[:3])
"""

MANIFEST: dict[str, Any] = {
    "stages": {
        "prepare": {
            "cmd": "mkdir -p data && python -c \"import numpy as np; "
            "np.savetxt('data/features.csv', np.arange(40.0).reshape(10, 4), delimiter=',')\"",
            "outs": ["data/features.csv"],
        },
        "train": {
            "cmd": "python train.py ${train.label}",
            "deps": ["data/features.csv", "train.py"],
            "params": ["train.label"],
            "outs": ["models/clf"],
        },
    },
    "artifacts": {"clf": {"path": "models/clf", "type": "model"}},
}

ROWS = {"inputs": [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]}


def predicted(ref: str, project: Project) -> list[Any]:
    server = Server.start(ref, "--env-manager", "local", cwd=project.root)
    try:
        status, body, _ = server.post(ROWS)
        assert status == 200, body
        return list(json.loads(body)["predictions"])
    finally:
        server.stop()


@pytest.mark.slow
def test_serve_by_path_run_and_alias_and_follow_the_alias(project: Project) -> None:
    import yaml

    project.write("dvc.yaml", yaml.safe_dump(MANIFEST, sort_keys=False))
    project.write("train.py", TRAIN)
    project.params({"train": {"label": 0}})
    project.write(".gitignore", "/models\n/data\n")
    project.commit(message="a model project")
    _ok(project.cli("repro"))
    first_run = _json(project.cli("runs", "--json"))[0]["id"]
    assert _json(project.cli("registry", "add", "clf", "--json"))["version"] == 1
    _ok(project.cli("registry", "alias", "clf", "champion", "1", "-m", "first"))

    project.params({"train": {"label": 1}})
    _ok(project.cli("repro"))
    assert _json(project.cli("registry", "add", "clf", "--json"))["version"] == 2

    assert predicted("models/clf", project) == [1, 1]  # the workspace package: version 2
    assert predicted(f"runs:/{first_run}/models/clf", project) == [0, 0]  # from the cache
    assert predicted("models:/clf@champion", project) == [0, 0]
    _ok(project.cli("registry", "alias", "clf", "champion", "2", "-m", "better"))
    assert predicted("models:/clf@champion", project) == [1, 1]  # restarted: the new version
    assert predicted("models:/clf/1", project) == [0, 0]
