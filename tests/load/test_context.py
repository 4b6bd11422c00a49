"""The templating context of a dvc.yaml: `vars` from files (selected keys, tracked as params)
and inline, and no silent redefinition of a value.
"""

from __future__ import annotations

import pytest

from pipeline.errors import ManifestError
from pipeline.load.project import load_project
from tests.conftest import Project, dvc_yaml


def test_vars_from_a_file_with_selected_keys_and_their_tracking(dvc: Project) -> None:
    dvc.write("conf.yaml", "thresh: 0.5\nunused: 1\n")
    dvc_yaml(
        dvc,
        """\
vars:
  - conf.yaml:thresh
  - {label: inline}
stages:
  s:
    cmd: echo ${thresh} ${label} > o.txt
    outs: [o.txt]
""",
    )
    stage = load_project(dvc.root).stages["s"]
    assert stage.cmd == ("echo 0.5 inline > o.txt",)
    assert stage.params == {"conf.yaml": {"thresh": 0.5}}  # inline vars are definition


def test_redefining_a_value_from_two_sources_is_an_error(dvc: Project) -> None:
    dvc.params({"lr": 0.1})
    dvc_yaml(dvc, "vars:\n  - {lr: 0.2}\nstages:\n  s:\n    cmd: echo ${lr}\n")
    with pytest.raises(ManifestError, match=r"dvc.yaml:2:5: vars.0: cannot redefine 'lr'"):
        load_project(dvc.root)
