"""The model libraries, imported when a model needs them and typed as `Any`.

numpy, pandas, skops, xgboost and lightgbm are the model env's business: they may be absent
(a model env holds only what its model needs) and most ship no type information. Importing
them through here keeps `import pipeline.models` free of them and their stubs.
"""

from __future__ import annotations

import importlib
from typing import Any


def library(name: str) -> Any:
    """The module `name` (e.g. "skops.io"), imported now; ImportError if the env lacks it."""
    return importlib.import_module(name)
