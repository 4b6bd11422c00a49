"""pipeline: reproducible ML pipelines from an MLproject (or dvc.yaml) manifest.

The public API is loaded lazily so that `import pipeline` (and `pipeline --version`) stay fast:

    import pipeline
    result = pipeline.repro(pipeline.ReproOptions(root="examples/quickstart"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline._version import __version__

if TYPE_CHECKING:
    from pipeline.api import plan, repro, status
    from pipeline.errors import PipelineError
    from pipeline.execute.options import ReproOptions
    from pipeline.load.project import load_project

__all__ = [
    "PipelineError",
    "ReproOptions",
    "__version__",
    "load_project",
    "plan",
    "repro",
    "status",
]

_LAZY = {
    "ReproOptions": "pipeline.execute.options",
    "plan": "pipeline.api",
    "repro": "pipeline.api",
    "status": "pipeline.api",
    "PipelineError": "pipeline.errors",
    "load_project": "pipeline.load.project",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
