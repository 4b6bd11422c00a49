"""From a dvc.yaml stage definition to a `Stage`: `wdir`, whole-string placeholders that keep
their type, and field and generator errors that name the line.
"""

from __future__ import annotations

import pytest

from pipeline.api import ReproOptions, repro
from pipeline.load.project import load_project
from tests.conftest import Project, dvc_yaml


def test_wdir_is_where_the_command_runs_and_what_paths_are_relative_to(dvc: Project) -> None:
    dvc.write("sub/input.txt", "in\n")
    dvc.write("sub/local.yaml", "word: here\n")
    dvc_yaml(
        dvc,
        """\
stages:
  s:
    wdir: sub
    vars: [local.yaml]
    cmd: cat input.txt > output.txt && echo ${word} >> output.txt
    deps: [input.txt]
    outs: [output.txt]
""",
    )
    stage = load_project(dvc.root).stages["s"]
    assert (stage.deps, stage.out_paths) == (("sub/input.txt",), ("sub/output.txt",))
    repro(ReproOptions(root=dvc.root))
    assert dvc.read("sub/output.txt") == "in\nhere\n"


def test_a_whole_string_placeholder_keeps_the_value_type(dvc: Project) -> None:
    dvc.params({"flags": {"frozen": True, "retries": 2}})
    dvc_yaml(
        dvc,
        """\
stages:
  s:
    cmd: echo
    frozen: ${flags.frozen}
    retries: ${flags.retries}
""",
    )
    stage = load_project(dvc.root).stages["s"]
    assert (stage.frozen, stage.retries) == (True, 2)


def test_resources_beyond_cpus_are_what_a_worker_must_declare(dvc: Project) -> None:
    dvc_yaml(
        dvc,
        "stages:\n  s:\n    cmd: echo\n"
        "    resources: {cpus: 2, gpus: 1, memory: 8GB, licence: 1}\n",
    )
    stage = load_project(dvc.root).stages["s"]
    assert stage.cpus == 2
    assert stage.resources == {"gpus": 1.0, "memory": 8e9, "licence": 1.0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    foreach: 5\n    do: {cmd: echo}\n", "expected a list or a mapping, got int"),
        ("    foreach: [a]\n", "foreach without `do`"),
        ("    matrix: {m: x}\n    cmd: echo\n", "expected a list, got str"),
        ("    cmd: echo ${nope}\n", "unknown parameter 'nope'"),
        ("    cmd: echo\n    timeout: soon\n", "expected a positive duration"),
        ("    cmd: echo\n    retries: -1\n", "greater than or equal to 0"),
        ("    cmd: echo\n    resources: {gpu: 1}\n", "unknown resource 'gpu': did you mean 'gpus'"),
        ("    cmd: echo\n    resources: {memory: lots}\n", "not an amount of memory"),
        ("    cmd: echo\n    resources: {licence: many}\n", "must be a non-negative number"),
        ("    cmd: echo\n    plots: [{p.csv: {xx: 1}}]\n", "unknown key 'xx'"),
        ("    cmd: echo\n    params: [{conf.json: 5}]\n", "expected a params key"),
    ],
)
def test_generator_and_field_errors_name_the_line(dvc: Project, body: str, message: str) -> None:
    dvc_yaml(dvc, "stages:\n  s:\n" + body)
    done = dvc.cli("status")
    assert done.returncode == 2
    assert done.stderr.startswith("error: dvc.yaml:"), done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
