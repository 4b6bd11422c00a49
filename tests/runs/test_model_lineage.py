"""Lineage of a registered model written by `pipeline.models.save` in a real stage: the
`champion` version back to the raw CSV by hash, and the package loads again from the cache
after the workspace copy is gone."""

from __future__ import annotations

import shutil
import sys
from typing import Any

import pytest

from pipeline import api
from pipeline.models import load, read_package
from tests.conftest import Project

TRAIN = """\
import csv, sys
import numpy as np
from sklearn.linear_model import LogisticRegression
import pipeline.models

rows = list(csv.reader(open("data/clean.csv")))
X = np.array([[float(a), float(b)] for a, b, _ in rows])
y = [int(c) for _, _, c in rows]
model = LogisticRegression(C=float(sys.argv[1])).fit(X, y)
pipeline.models.save(model, "models/clf", sample=X[:2])
"""

RAW = "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20))


def _manifest() -> dict[str, Any]:
    return {
        "stages": {
            "prepare": {
                "cmd": "mkdir -p data && sort raw.csv > data/clean.csv",
                "deps": ["raw.csv"],
                "outs": ["data/clean.csv"],
            },
            "train": {
                "cmd": f"{sys.executable} train.py ${{train.C}}",
                "deps": ["data/clean.csv", "train.py"],
                "params": ["train.C"],
                "outs": ["models/clf"],
            },
        },
        "artifacts": {"clf": {"path": "models/clf", "type": "model"}},
    }


@pytest.mark.slow
def test_champion_lineage_back_to_raw_data(project: Project) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("skops")
    import yaml

    project.write("dvc.yaml", yaml.safe_dump(_manifest(), sort_keys=False))
    project.write("train.py", TRAIN)
    project.write("raw.csv", RAW)
    project.params({"train": {"C": 1.0}})
    project.write(".gitignore", "/models\n/data\n")
    project.commit(message="classifier")
    result = project.repro()
    assert not result.failed, result
    version, _ = api.registry_add(project.root, "clf", message="first")
    api.registry_alias(project.root, "clf", "champion", version.version, message="ship it")

    found = api.model_lineage(project.root, "models:/clf@champion").to_json()
    assert (found["stage"], found["params"], found["dirty"]) == ("train", {"train.C": 1.0}, False)
    assert found["commit"] == project.git("rev-parse", "HEAD").strip()
    inputs = {i["path"]: i for i in found["lineage"]["inputs"]}
    assert inputs["data/clean.csv"]["stage"] == "prepare"
    (raw,) = inputs["data/clean.csv"]["inputs"]
    assert raw["path"] == "raw.csv" and "run" not in raw
    assert (
        raw["hash"]
        == api.lineage(project.root, str(project.root / "data/clean.csv")).inputs[0].hash
    )

    shutil.rmtree(project.root / "models")
    ref = api.resolve_model(project.root, "models:/clf@champion")
    assert ref.dir.parent.name == "models" and ref.hash == version.hash
    info = read_package(ref.dir)
    predictions = load(ref.dir, info).predict(None, [[1.0, 1.0], [4.0, 0.0]])
    assert len(predictions) == 2
