"""PyYAML specifics: params are read with YAML 1.2 scalars, as DVC reads them."""

from __future__ import annotations

from pipeline.api import ReproOptions, repro
from tests.conftest import Project


def test_yaml_12_scalars_render_like_dvc(p: Project) -> None:
    p.params("country: no\nanswer: yes\n")
    p.manifest("stages:\n  a:\n    cmd: echo ${country} ${answer} > out.txt\n    outs: [out.txt]\n")
    repro(ReproOptions(root=p.root, jobs=1))
    assert p.read("out.txt") == "no yes\n"  # DVC: the strings 'no' and 'yes'
