"""MLflow's own tools load what `pipeline.models.save` writes; they predict as `pipeline serve`.

MLflow runs in a venv of its own (`tests/mlflowenv.py`: built once, cached across runs), never
next to `pipeline`. For a scikit-learn pipeline on the wine data saved with a DataFrame sample
(column signature) and with an ndarray sample (tensor signature):

- `mlflow.pyfunc.load_model` loads the package, sees our signature, and accepts our serving
  input example (`mlflow.models.validate_serving_input`), in a subprocess of that venv;
- its predictions on ten rows equal the answers of a real `pipeline serve --env-manager local`
  on loopback to the same rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import mlflowenv, servekit

# Run in the MLflow venv: load the package, check its example, predict the rows given on stdin.
MLFLOW_SCRIPT = """
import json, logging, sys
logging.disable(logging.WARNING)  # requirement mismatch warnings: the tool env pins more
import numpy as np, pandas as pd
import mlflow, mlflow.models, mlflow.pyfunc

path, kind = sys.argv[1], sys.argv[2]
rows = json.load(sys.stdin)
model = mlflow.pyfunc.load_model(path)
with open(f"{path}/serving_input_example.json") as f:
    mlflow.models.validate_serving_input(path, f.read())
if kind == "frame":
    data = pd.DataFrame(rows["data"], columns=rows["columns"])
else:
    data = np.array(rows["data"])
schema = model.metadata.get_input_schema()
print(json.dumps({
    "mlflow": mlflow.__version__,
    "flavors": sorted(model.metadata.flavors),
    "inputs": [str(s) for s in schema.inputs],
    "predictions": np.asarray(model.predict(data)).tolist(),
}))
"""


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    try:
        return mlflowenv.mlflow_python()
    except mlflowenv.MLflowUnavailable as exc:
        pytest.skip(f"no MLflow venv: {exc}")


def _save(tmp_path: Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """A StandardScaler + LogisticRegression on load_wine, saved with a frame or array sample."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import pipeline.models

    features, labels = load_wine(return_X_y=True, as_frame=True)
    sample = features if kind == "frame" else features.to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(sample, labels)
    path = tmp_path / f"wine-{kind}"
    pipeline.models.save(model, path, sample=sample[:5])
    picked = features.iloc[::17][:10]  # rows of every class
    return path, {"columns": list(picked.columns), "data": picked.to_numpy().tolist()}


def _mlflow_predict(python: Path, path: Path, kind: str, rows: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), "-c", MLFLOW_SCRIPT, str(path), kind],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"MLflow could not load the package:\n{done.stderr[-4000:]}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _served(path: Path, kind: str, rows: dict[str, Any]) -> Any:
    port = servekit.free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "pipeline", "serve", str(path), "--env-manager", "local"]
    body = {"dataframe_split": rows} if kind == "frame" else {"inputs": rows["data"]}
    with servekit.server([*argv, "--port", str(port)], url, cwd=path.parent):
        status, answer = servekit.post_json(url + "/invocations", body)
    assert status == 200, answer
    return answer["predictions"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["frame", "array"])
def test_mlflow_loads_the_package_and_predicts_as_pipeline_serve(
    tmp_path: Path, mlflow_python: Path, kind: str
) -> None:
    path, rows = _save(tmp_path, kind)
    found = _mlflow_predict(mlflow_python, path, kind, rows)
    assert found["mlflow"] == mlflowenv.MLFLOW_VERSION
    assert found["flavors"] == ["python_function", "sklearn"]
    if kind == "frame":
        assert found["inputs"][0] == "'alcohol': double (required)"
    else:
        assert found["inputs"] == ["Tensor('float64', (-1, 13))"]
    served = _served(path, kind, rows)
    assert found["predictions"] == served
    assert len(set(served)) == 3  # every class, so equal answers are not a coincidence
