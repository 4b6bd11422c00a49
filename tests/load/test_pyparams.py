"""Params from a Python file are read with `ast`, never executed (DVC's `.py` params)."""

from __future__ import annotations

from pipeline.load.project import load_project
from tests.conftest import Project, dvc_yaml


def test_python_params_file_is_never_executed(dvc: Project) -> None:
    marker = dvc.root.parent / "executed"
    dvc.write("conf.py", f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nX = 1\n")
    dvc_yaml(dvc, "stages:\n  s:\n    cmd: echo\n    params:\n      - conf.py: [X]\n")
    assert load_project(dvc.root).stages["s"].params == {"conf.py": {"X": 1}}
    assert not marker.exists()
