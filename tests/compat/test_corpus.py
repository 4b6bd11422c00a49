"""Run the DVC compatibility corpus (`cases.py`): each case is a real project on disk."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from pipeline.core.stage import Stage
from pipeline.errors import PipelineError
from pipeline.load.project import load_project
from tests.compat.cases import CASES, Case
from tests.conftest import Project


def _text(path: str, data: Any) -> str:
    if isinstance(data, str):
        return data
    if path.endswith(".json"):
        return json.dumps(data)
    return yaml.safe_dump(data, sort_keys=False)


def _write(project: Project, files: dict[str, Any]) -> None:
    for path, data in files.items():
        project.write(path, _text(path, data))


def _fields(stage: Stage) -> dict[str, Any]:
    """The stage as a case states it."""
    return {
        "cmd": " && ".join(stage.cmd),
        "deps": list(stage.deps),
        "outs": [o.path for o in stage.outs],
        "persist": [o.persist for o in stage.outs],
        "params": stage.params,
        "wdir": stage.wdir,
        "frozen": stage.frozen,
        "missing": list(stage.missing_params),
    }


def _check_stages(project: Project, case: Case) -> None:
    stages = load_project(project.root).stages
    assert list(stages) == list(case.stages), "stage names or their order differ"
    for name, expected in case.stages.items():
        actual = _fields(stages[name])
        assert {k: actual[k] for k in expected} == expected, name


def _check_status(project: Project, case: Case) -> None:
    project.commit()
    result = project.repro()
    assert result.failed is None or case.status, result
    _write(project, case.change)
    plan = project.plan()
    said = {name: [str(r) for r in d.reasons] for name, d in plan.decisions.items()}
    assert {name: said[name] for name in case.status} == case.status


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_dvc_templating_case(case: Case, make_project: Callable[..., Project]) -> None:
    project = make_project("compat")
    _write(project, case.files)
    if case.error is not None:
        with pytest.raises(PipelineError) as caught:
            load_project(project.root)
        assert case.error in caught.value.message
        assert "\n" not in caught.value.message  # one clear line, never a traceback
        return
    _check_stages(project, case)
    if case.status:
        _check_status(project, case)


def test_the_corpus_is_big_enough_and_names_its_sources() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.mirrors for c in CASES)
