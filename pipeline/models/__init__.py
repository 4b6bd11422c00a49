"""Model packages in MLflow's Models format: `save` from stage code, `parse_mlmodel`, `load`.

This package runs inside stage and model envs (found through `env/stagepath.py`), so it imports
only the standard library and `pipeline.errors`; numpy, pandas, scikit-learn, skops, xgboost and
lightgbm are imported inside functions, when a model needs them.

    import pipeline.models
    pipeline.models.save(model, "model", sample=X_train[:20])
"""

from __future__ import annotations

from pipeline.models.mlmodel import ModelInfo, parse_mlmodel, read_package
from pipeline.models.package import save
from pipeline.models.predictor import Predictor, load
from pipeline.models.signature import ColSpec, Signature, TensorSpec, infer

__all__ = [
    "ColSpec",
    "ModelInfo",
    "Predictor",
    "Signature",
    "TensorSpec",
    "infer",
    "load",
    "parse_mlmodel",
    "read_package",
    "save",
]
