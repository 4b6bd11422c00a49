"""xgboost and lightgbm models are saved in their libraries' own formats (never pickle), load
without trust, predict as the model did, and are byte-deterministic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_wine

import pipeline.models as pm
from pipeline.models import predictor, read_package


def _wine() -> tuple[Any, Any]:
    features, target = load_wine(return_X_y=True, as_frame=True)
    return features, target


def _models() -> list[tuple[str, str, Any]]:
    """(flavor, native file, fitted model) for each booster installed."""
    features, target = _wine()
    found = []
    xgb = _optional("xgboost")
    if xgb is not None:
        classifier = xgb.XGBClassifier(n_estimators=5, max_depth=2, random_state=0)
        found.append(("xgboost", "model.ubj", classifier.fit(features, target)))
        booster = xgb.train({"max_depth": 2}, xgb.DMatrix(features, label=target), 3)
        found.append(("xgboost", "model.ubj", booster))
    lgb = _optional("lightgbm")
    if lgb is not None:
        regressor = lgb.LGBMRegressor(n_estimators=5, verbose=-1, random_state=0)
        found.append(("lightgbm", "model.lgb", regressor.fit(features, target)))
        classifier = lgb.LGBMClassifier(n_estimators=5, verbose=-1, random_state=0)
        found.append(("lightgbm", "model.lgb", classifier.fit(features, target)))
        binary = lgb.LGBMClassifier(n_estimators=5, verbose=-1, random_state=0)
        found.append(("lightgbm", "model.lgb", binary.fit(features, target == 1)))
    return found


def _optional(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        return None


MODELS = _models()


@pytest.mark.skipif(not MODELS, reason="neither xgboost nor lightgbm is installed")
@pytest.mark.parametrize(("flavor", "native", "model"), MODELS, ids=lambda v: str(type(v)))
def test_a_booster_round_trips_in_its_own_format(
    tmp_path: Path, flavor: str, native: str, model: Any
) -> None:
    features, _ = _wine()
    info = pm.save(model, tmp_path / "m", sample=features[:5])
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert native in files and "model.pkl" not in files
    written = json.loads((tmp_path / "m" / "MLmodel").read_text())
    assert written["pipeline"]["flavor"] == flavor and flavor in written["flavors"]
    assert written["flavors"]["python_function"]["loader_module"] == f"mlflow.{flavor}"
    assert info.trusted_required is False

    loaded = predictor.load(tmp_path / "m", read_package(tmp_path / "m"))  # no trust needed
    rows = features[:7]
    got = loaded.predict(list(rows.columns), rows.to_numpy().tolist())
    direct = _direct(model, rows)
    assert np.allclose(np.asarray(got, dtype="float64"), direct)


@pytest.mark.skipif(not MODELS, reason="neither xgboost nor lightgbm is installed")
@pytest.mark.parametrize(("flavor", "native", "model"), MODELS, ids=lambda v: str(type(v)))
def test_a_booster_package_is_byte_deterministic(
    tmp_path: Path, flavor: str, native: str, model: Any
) -> None:
    features, _ = _wine()
    pm.save(model, tmp_path / "a", sample=features[:5])
    pm.save(model, tmp_path / "b", sample=features[:5])
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def _direct(model: Any, rows: Any) -> Any:
    if type(model).__name__ == "Booster" and type(model).__module__.startswith("xgboost"):
        import xgboost

        return model.predict(xgboost.DMatrix(rows))
    return np.asarray(model.predict(rows), dtype="float64")  # a classifier: its labels
