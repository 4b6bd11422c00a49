"""The flavors a model is saved in: which library made the object, how it is written and read.

Detection looks at the classes of the object (their modules), so saving never imports a library
the model does not use. Each flavor writes the sections MLflow itself writes for it, so MLflow's
loaders (`mlflow.sklearn`, `mlflow.xgboost`, `mlflow.lightgbm`) read the package too.
"""

from __future__ import annotations

import pickle
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.errors import ModelError
from pipeline.models import skopsfile
from pipeline.models.lazy import library


@dataclass(frozen=True)
class Written:
    """What a flavor wrote: the model file, MLmodel's `flavors`, what loading needs trust for."""

    flavor: str  # sklearn | xgboost | lightgbm | pickle
    model_file: str
    flavors: dict[str, Any]
    trusted_required: bool
    predict: Callable[[Any], Any] = field(repr=False)  # what the loaded model will answer


def made_by(obj: Any) -> str | None:
    """The library whose class `obj` is (any class of its MRO), or None."""
    for cls in type(obj).__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("sklearn", "xgboost", "lightgbm"):
            return root
    return None


def write(obj: Any, dest: Path, *, trusted: bool) -> Written:
    """Write `obj` into the package dir `dest` in the safest format that holds it."""
    found = made_by(obj)
    if found == "xgboost":
        return _write_xgboost(obj, dest)
    if found == "lightgbm":
        return _write_lightgbm(obj, dest)
    if found == "sklearn":
        return _write_sklearn(obj, dest, trusted=trusted)
    if not trusted:
        raise ModelError(
            f"no safe format for a {type(obj).__module__}.{type(obj).__qualname__}",
            "save(..., trusted=True) pickles it; loading it will need --trusted too",
        )
    return _write_pickle(obj, dest)


def _pyfunc(loader: str, **extra: Any) -> dict[str, Any]:
    return {
        "loader_module": loader,
        "python_version": platform.python_version(),
        "env": {"virtualenv": "python_env.yaml"},
        **extra,
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _write_sklearn(obj: Any, dest: Path, *, trusted: bool) -> Written:
    try:
        data = skopsfile.dump_bytes(obj)
    except ModelError:
        if not trusted:
            raise
        return _write_pickle(obj, dest)
    unknown = skopsfile.untrusted_types(data)
    if unknown and not trusted:
        raise ModelError(
            f"skops would refuse to load these types without trust: {', '.join(unknown)}",
            "save(..., trusted=True) keeps them; loading will then need --trusted too",
        )
    (dest / "model.skops").write_bytes(data)
    return Written(
        "sklearn",
        "model.skops",
        _sklearn_flavors("model.skops", "skops"),
        bool(unknown),
        obj.predict,
    )


def _sklearn_flavors(model_file: str, serialization: str) -> dict[str, Any]:
    native = {
        "pickled_model": model_file,
        "serialization_format": serialization,
        "sklearn_version": _version("scikit-learn"),
        "code": None,
    }
    pyfunc = _pyfunc("mlflow.sklearn", model_path=model_file, predict_fn="predict")
    return {"python_function": pyfunc, "sklearn": native}


def _write_pickle(obj: Any, dest: Path) -> Written:
    # protocol 5, no framing of our own: MLflow's sklearn loader unpickles any object this way
    (dest / "model.pkl").write_bytes(pickle.dumps(obj, protocol=5))
    return Written(
        "pickle", "model.pkl", _sklearn_flavors("model.pkl", "pickle"), True, obj.predict
    )


def _write_xgboost(obj: Any, dest: Path) -> Written:
    xgboost = library("xgboost")  # present whenever the model is an xgboost one

    obj.save_model(str(dest / "model.ubj"))
    cls = type(obj)
    native = {
        "xgb_version": xgboost.__version__,
        "data": "model.ubj",
        "model_class": f"{cls.__module__}.{cls.__qualname__}",
        "model_format": "ubj",
        "code": None,
    }
    if isinstance(obj, xgboost.Booster):
        predict: Callable[[Any], Any] = lambda x: obj.predict(xgboost.DMatrix(x))  # noqa: E731
    else:
        predict = obj.predict
    flavors = {"python_function": _pyfunc("mlflow.xgboost", data="model.ubj"), "xgboost": native}
    return Written("xgboost", "model.ubj", flavors, False, predict)


def _write_lightgbm(obj: Any, dest: Path) -> Written:
    lightgbm = library("lightgbm")
    # a scikit-learn wrapper is stored as its booster (text, safe); a classifier's labels go
    # with it, so the served model answers labels as the wrapper did, not probabilities
    booster = obj if isinstance(obj, lightgbm.Booster) else obj.booster_
    booster.save_model(str(dest / "model.lgb"))
    native: dict[str, Any] = {
        "lgb_version": lightgbm.__version__,
        "data": "model.lgb",
        "model_class": "lightgbm.basic.Booster",
        "code": None,
    }
    predict = booster.predict
    classes = getattr(obj, "classes_", None)
    if classes is not None:
        native["classes"] = [c.item() if hasattr(c, "item") else c for c in classes]
        predict = obj.predict
    flavors = {"python_function": _pyfunc("mlflow.lightgbm", data="model.lgb"), "lightgbm": native}
    return Written("lightgbm", "model.lgb", flavors, False, predict)


# -- loading -----------------------------------------------------------------------------------


def read(flavor: str, file: Path, native: dict[str, Any], *, trusted: bool) -> Any:
    """The model object in `file`, read as `flavor`; pickle only when `trusted`."""
    if flavor == "pickle":
        if not trusted:
            raise ModelError(
                f"{file}: refusing to load a pickled model (it can run any code)",
                "if you trust where this model came from, load it with --trusted",
            )
        with open(file, "rb") as stream:
            return pickle.load(stream)  # the user said they trust it
    if flavor == "sklearn":
        return skopsfile.load(file, trusted=trusted)
    if flavor == "xgboost":
        return _read_xgboost(file, native)
    if flavor == "lightgbm":
        booster = library("lightgbm").Booster(model_file=str(file))
        classes = native.get("classes")
        return LabelledBooster(booster, list(classes)) if isinstance(classes, list) else booster
    raise ModelError(f"{file}: unknown model flavor {flavor!r}")


def _read_xgboost(file: Path, native: dict[str, Any]) -> Any:
    xgboost = library("xgboost")
    name = str(native.get("model_class") or "xgboost.core.Booster").rsplit(".", 1)[-1]
    cls = getattr(xgboost, name, None)  # only xgboost's own classes, never an arbitrary import
    if not isinstance(cls, type):
        raise ModelError(f"{file}: unknown xgboost model class {native.get('model_class')!r}")
    model = cls()
    model.load_model(str(file))
    return model


@dataclass(frozen=True)
class LabelledBooster:
    """A lightgbm classifier's booster with its labels: `predict` answers labels, as the
    scikit-learn wrapper it was saved from did (the booster alone gives probabilities)."""

    booster: Any
    classes: list[Any]

    def predict(self, data: Any) -> Any:
        np = library("numpy")
        scores = np.asarray(self.booster.predict(data))
        # binary: one column, the probability of the second class
        picked = (scores > 0.5).astype("int64") if scores.ndim == 1 else scores.argmax(axis=1)
        return np.asarray(self.classes, dtype=object)[picked].tolist()

    def predict_proba(self, data: Any) -> Any:
        return self.booster.predict(data)
