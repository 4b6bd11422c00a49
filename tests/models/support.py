"""Models the package tests save: small scikit-learn pipelines fitted on fixed data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def frame() -> pd.DataFrame:
    """20 rows: a float, an int and a bool column."""
    a = np.arange(20, dtype="float64")
    return pd.DataFrame({"a": a, "b": np.arange(20, dtype="int64") % 3, "c": a > 4})


def labels() -> np.ndarray[Any, Any]:
    return (np.arange(20) > 10).astype("int64")


def fitted_pipeline() -> Any:
    """StandardScaler → LogisticRegression on `frame()`: every type skops trusts."""
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(frame(), labels())


def fitted_on_array() -> Any:
    return LogisticRegression().fit(frame().to_numpy(dtype="float64"), labels())
