"""`pipeline.models.save` and `load`: the package's files, round trips, byte determinism,
atomic replacement, the env files, and refusing pickle and unknown skops types without trust.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator

import pipeline.models as pm
from pipeline.errors import ModelError
from pipeline.models.requirements import normalise
from tests.models.support import fitted_on_array, fitted_pipeline, frame

FILES = {
    "MLmodel",
    "model.skops",
    "input_example.json",
    "serving_input_example.json",
    "requirements.txt",
    "python_env.yaml",
}


class Doubler(BaseEstimator):  # type: ignore[misc]
    """An estimator skops can store but does not trust: it is not scikit-learn's own."""

    def fit(self, x: Any, y: Any = None) -> Doubler:
        return self

    def predict(self, x: Any) -> Any:
        return np.asarray(x, dtype="float64")[:, 0] * 2


class NotAnEstimator:
    """A model no safe format holds: only pickle can store it."""

    def predict(self, x: Any) -> Any:
        return np.zeros(len(x), dtype="int64")


@pytest.fixture(autouse=True)
def _no_runner_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PIPELINE_ENV_LOCK", "PIPELINE_ENV_KIND", "PIPELINE_STAGE", "PIPELINE_RUN_ID"):
        monkeypatch.delenv(key, raising=False)


def mlmodel(path: Path) -> dict[str, Any]:
    return json.loads((path / "MLmodel").read_text())


def test_a_pipeline_saved_with_a_frame_sample_loads_and_predicts(tmp_path: Path) -> None:
    model = fitted_pipeline()
    info = pm.save(model, tmp_path / "model", sample=frame())
    assert {p.name for p in (tmp_path / "model").iterdir()} == FILES
    assert (info.flavor, info.model_file, info.trusted_required) == (
        "sklearn",
        "model.skops",
        False,
    )
    data = mlmodel(tmp_path / "model")
    assert data["flavors"]["python_function"]["loader_module"] == "mlflow.sklearn"
    assert data["flavors"]["sklearn"]["serialization_format"] == "skops"
    assert json.loads(data["signature"]["inputs"]) == [
        {"type": "double", "name": "a", "required": True},
        {"type": "long", "name": "b", "required": True},
        {"type": "boolean", "name": "c", "required": True},
    ]
    rows = frame().head(6).to_numpy().tolist()
    predictor = pm.load(tmp_path / "model", pm.read_package(tmp_path / "model"))
    expected = model.predict(frame().head(6)).tolist()
    assert predictor.predict(["a", "b", "c"], rows) == expected
    assert all(type(v) is int for v in expected)


def test_an_array_sample_gives_a_tensor_signature(tmp_path: Path) -> None:
    model, x = fitted_on_array(), frame().to_numpy(dtype="float64")
    info = pm.save(model, tmp_path / "m", sample=x)
    assert info.signature is not None
    assert info.signature.inputs == (pm.TensorSpec("float64", (-1, 3)),)
    assert info.signature.outputs == (pm.TensorSpec("int64", (-1,)),)
    example = json.loads((tmp_path / "m" / "input_example.json").read_text())
    assert example == {"inputs": x[:5].tolist()}
    assert mlmodel(tmp_path / "m")["saved_input_example_info"]["type"] == "ndarray"
    predictor = pm.load(tmp_path / "m", info)
    assert predictor.predict(None, x[:3].tolist()) == model.predict(x[:3]).tolist()


def test_the_example_files_have_mlflows_layout(tmp_path: Path) -> None:
    pm.save(fitted_pipeline(), tmp_path / "m", sample=frame())
    example = json.loads((tmp_path / "m" / "input_example.json").read_text())
    serving = json.loads((tmp_path / "m" / "serving_input_example.json").read_text())
    assert example == {"columns": ["a", "b", "c"], "data": frame().head(5).values.tolist()}
    assert serving == {"dataframe_split": example}
    assert mlmodel(tmp_path / "m")["saved_input_example_info"] == {
        "artifact_path": "input_example.json",
        "pandas_orient": "split",
        "serving_input_path": "serving_input_example.json",
        "type": "dataframe",
    }


def test_two_saves_give_the_same_bytes(tmp_path: Path) -> None:
    pm.save(fitted_pipeline(), tmp_path / "one", sample=frame())
    pm.save(fitted_pipeline(), tmp_path / "two", sample=frame())
    code = (
        "import sys; from tests.models.support import fitted_pipeline, frame; "
        "import pipeline.models as pm; pm.save(fitted_pipeline(), sys.argv[1], sample=frame())"
    )
    repo = Path(__file__).resolve().parents[2]  # `tests.models.support` is imported from here
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "three")], check=True, cwd=repo)
    for name in FILES:
        first = (tmp_path / "one" / name).read_bytes()
        assert first == (tmp_path / "two" / name).read_bytes(), name
        assert first == (tmp_path / "three" / name).read_bytes(), name


def test_saving_over_a_package_replaces_it_whole(tmp_path: Path) -> None:
    target = tmp_path / "m"
    pm.save(fitted_pipeline(), target, sample=frame())
    (target / "stale.txt").write_text("from before\n")
    pm.save(fitted_on_array(), target, sample=frame().to_numpy(dtype="float64"))
    assert {p.name for p in target.iterdir()} == FILES
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp or old dir left behind


def test_a_failed_save_leaves_the_old_package(tmp_path: Path) -> None:
    target = tmp_path / "m"
    pm.save(fitted_pipeline(), target, sample=frame())
    before = (target / "MLmodel").read_bytes()
    with pytest.raises(ModelError, match="cannot predict its sample"):
        pm.save(fitted_pipeline(), target, sample=np.zeros((2, 7)))
    assert (target / "MLmodel").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_requirements_pin_the_running_env(tmp_path: Path) -> None:
    info = pm.save(fitted_pipeline(), tmp_path / "m", sample=frame())
    lines = (tmp_path / "m" / "requirements.txt").read_text().splitlines()
    assert lines == list(info.requirements)
    for dist in ("numpy", "scikit-learn", "skops", "pandas"):
        assert f"{dist}=={metadata.version(dist)}" in lines
    names = [line.split("==")[0] for line in lines]
    assert "pipeline" not in names and names == sorted(normalise(n) for n in names)
    assert len(names) == len(set(names))
    env = (tmp_path / "m" / "python_env.yaml").read_text()
    assert env.startswith(f"python: {'.'.join(map(str, sys.version_info[:3]))}\n")
    assert "- -r requirements.txt\n" in env


@pytest.mark.parametrize(
    ("kind", "name"), [("python_env", "pylock.toml"), ("conda_env", "conda-lock.yml")]
)
def test_the_stage_envs_lock_is_copied_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, name: str
) -> None:
    lock = tmp_path / "the.lock"
    lock.write_bytes(b"lock-version = '1.0'\r\n# exact bytes \xc3\xa9\n")
    monkeypatch.setenv("PIPELINE_ENV_LOCK", str(lock))
    monkeypatch.setenv("PIPELINE_ENV_KIND", kind)
    monkeypatch.setenv("PIPELINE_STAGE", "train")
    info = pm.save(fitted_pipeline(), tmp_path / "m", sample=frame())
    assert (tmp_path / "m" / name).read_bytes() == lock.read_bytes()
    assert info.lock == name
    ours = mlmodel(tmp_path / "m")["pipeline"]
    assert ours == {
        "env_kind": kind,
        "flavor": "sklearn",
        "format": 1,
        "lock": name,
        "stage": "train",
        "trusted": False,
    }


# -- trust -------------------------------------------------------------------------------------


def test_pickle_is_refused_at_save_without_trust(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no safe format") as caught:
        pm.save(NotAnEstimator(), tmp_path / "m", sample=frame())
    assert caught.value.hint is not None and "trusted=True" in caught.value.hint
    assert not (tmp_path / "m").exists()


def test_pickle_is_refused_at_load_without_trust(tmp_path: Path) -> None:
    info = pm.save(NotAnEstimator(), tmp_path / "m", sample=frame(), trusted=True)
    assert (info.flavor, info.model_file, info.trusted_required) == ("pickle", "model.pkl", True)
    assert mlmodel(tmp_path / "m")["flavors"]["sklearn"]["serialization_format"] == "pickle"
    with pytest.raises(ModelError, match="refusing to load a pickled model") as caught:
        pm.load(tmp_path / "m", info)
    assert caught.value.hint is not None and "--trusted" in caught.value.hint
    assert pm.load(tmp_path / "m", info, trusted=True).predict(None, [[1.0]]) == [0]


def test_the_mlmodels_own_trusted_key_grants_no_trust(tmp_path: Path) -> None:
    pm.save(NotAnEstimator(), tmp_path / "m", sample=frame(), trusted=True)
    data = mlmodel(tmp_path / "m")
    data["pipeline"]["trusted"] = False  # what a hostile repo would write
    info = pm.parse_mlmodel(data, tmp_path / "m")
    assert info.trusted_required
    with pytest.raises(ModelError, match="pickled"):
        pm.load(tmp_path / "m", info)


def test_types_skops_does_not_trust_fail_the_save(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=f"{__name__}.Doubler") as caught:
        pm.save(Doubler().fit(None), tmp_path / "m", sample=frame())
    assert caught.value.hint is not None and "trusted=True" in caught.value.hint


def test_a_skops_file_with_an_unknown_type_is_refused_at_load(tmp_path: Path) -> None:
    info = pm.save(Doubler().fit(None), tmp_path / "m", sample=frame(), trusted=True)
    assert (info.flavor, info.trusted_required) == ("sklearn", True)
    with pytest.raises(ModelError, match=f"does not trust: {__name__}.Doubler") as caught:
        pm.load(tmp_path / "m", pm.read_package(tmp_path / "m"))
    assert caught.value.hint is not None and "--trusted" in caught.value.hint
    predictor = pm.load(tmp_path / "m", info, trusted=True)
    assert predictor.predict(["a", "b", "c"], [[1.5, 0, True]]) == [3.0]


# -- MLmodel -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a mapping"),
        ({"flavors": {}}, "no `flavors.python_function`"),
        ({"flavors": {"python_function": {}}}, "no supported native flavor"),
        ({"flavors": {"python_function": {}, "sklearn": {}}}, "names no model file"),
        (
            {"flavors": {"python_function": {}, "sklearn": {"pickled_model": "../../x.pkl"}}},
            "inside the package",
        ),
        (
            {
                "flavors": {"python_function": {}, "sklearn": {"pickled_model": "m.skops"}},
                "signature": {"inputs": "[{'type': 1}]"},
            },
            "malformed spec list",
        ),
    ],
)
def test_a_malformed_mlmodel_is_a_model_error_naming_the_file(
    tmp_path: Path, data: Any, message: str
) -> None:
    with pytest.raises(ModelError, match=message) as caught:
        pm.parse_mlmodel(data, tmp_path)
    assert caught.value.message.startswith(f"{tmp_path / 'MLmodel'}: ")


def test_a_package_without_a_json_mlmodel_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no MLmodel file"):
        pm.read_package(tmp_path)
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    with pytest.raises(ModelError, match=f"{tmp_path / 'MLmodel'}: not a JSON MLmodel"):
        pm.read_package(tmp_path)


def test_an_mlflow_cloudpickle_model_needs_trust(tmp_path: Path) -> None:
    data = {
        "flavors": {
            "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
            "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"},
        }
    }
    info = pm.parse_mlmodel(data, tmp_path / "MLmodel")
    assert (info.flavor, info.trusted_required, info.path) == ("pickle", True, tmp_path)
