"""A real `pipeline repro` whose stage calls `pipeline.models.save`: the output is a model
package, the stage is named in it, and it is an ordinary cached output.
"""

from __future__ import annotations

import json
import shlex
import sys

from tests.conftest import Project
from tests.env.support import ok

TRAIN_PY = """\
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
import pipeline.models

x = pd.DataFrame({"a": np.arange(12, dtype="float64"), "b": np.arange(12) % 2})
model = LogisticRegression().fit(x, (x.a > 5).astype(int))
pipeline.models.save(model, "model", sample=x)
"""


def test_a_stage_saves_a_model_package(project: Project) -> None:
    project.write("train.py", TRAIN_PY)
    python = shlex.quote(sys.executable)
    project.manifest(
        {
            "stages": {
                "train": {"cmd": f"{python} train.py", "deps": ["train.py"], "outs": ["model"]}
            }
        }
    )
    ok(project.cli("repro"))
    data = json.loads(project.read("model/MLmodel"))
    assert data["pipeline"]["stage"] == "train"
    assert data["pipeline"]["flavor"] == "sklearn"
    assert project.exists("model/model.skops")
    outs = project.lock()["stages"]["train"]["outs"]
    assert [o["path"] for o in outs] == ["model"]
    ok(project.cli("repro", "-f"))  # the same model again: the same package, the same hash
    assert project.lock()["stages"]["train"]["outs"] == outs
