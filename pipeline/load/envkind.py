"""The kinds of environment a manifest declares, each also its key under `environments:`."""

from __future__ import annotations

from pipeline.core.textenum import TextEnum


class EnvKind(TextEnum):
    """How an environment's spec is read and built; each is also its key in `environments:`."""

    PYTHON_ENV = "python_env"  # MLflow's python_env.yaml: a venv
    REQUIREMENTS = "requirements"  # a requirements.txt: a venv
    CONDA_ENV = "conda_env"  # an environment.yml: a conda env
    CONDA_LOCK = "conda_lock"  # a conda-lock file: a conda env, exactly as locked
    SYSTEM = "system"  # no isolation: whatever runs pipeline

    @property
    def is_venv(self) -> bool:
        return self in (EnvKind.PYTHON_ENV, EnvKind.REQUIREMENTS)

    @property
    def is_conda(self) -> bool:
        return self in (EnvKind.CONDA_ENV, EnvKind.CONDA_LOCK)
