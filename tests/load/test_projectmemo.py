"""The resolved-project memo: reused only while every file the load read is unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.core.statmemo import StatMemo
from pipeline.load.project import load_project
from tests.conftest import Project
from tests.core.support import HOUR_NS, _age, _age_tree


@pytest.fixture
def p(make_project: Callable[..., Project]) -> Project:
    return make_project("memo")


def age(project: Project, *paths: str) -> None:
    """Date files back a minute, so the memo may trust them (racy-file rule)."""
    past = time.time() - 60
    for rel in paths:
        os.utime(project.root / rel, (past, past))


def load(project: Project) -> dict[str, tuple[str, ...]]:
    state = StatMemo(project.root / ".pipeline" / "state.db")
    try:
        return {n: s.cmd for n, s in load_project(project.root, memo=state).stages.items()}
    finally:
        state.close()


def memoised(project: Project) -> bool:
    state = StatMemo(project.root / ".pipeline" / "state.db")
    try:
        from pipeline.load.projectmemo import recall

        return recall(state, project.root, ("MLproject",)) is not None
    finally:
        state.close()


def setup(p: Project) -> None:
    p.params({"lr": 0.1})
    p.write("conf.json", json.dumps({"k": 1}))
    p.manifest("vars: [conf.json]\nstages:\n  s:\n    cmd: echo ${lr} ${k}\n", commit=False)
    age(p, "MLproject", "params.yaml", "conf.json")


def test_an_unchanged_project_is_recalled(p: Project) -> None:
    setup(p)
    assert load(p) == {"s": ("echo 0.1 1",)}
    assert memoised(p)
    assert load(p) == {"s": ("echo 0.1 1",)}


@pytest.mark.parametrize("edit", ["MLproject", "params.yaml", "conf.json"])
def test_editing_any_input_invalidates_it(p: Project, edit: str) -> None:
    setup(p)
    load(p)
    new = {
        "MLproject": "vars: [conf.json]\nstages:\n  s:\n    cmd: echo new ${lr} ${k}\n",
        "params.yaml": "lr: 0.2\n",
        "conf.json": '{"k": 2}',
    }[edit]
    p.write(edit, new)
    age(p, edit)
    assert not memoised(p)
    assert load(p)["s"] != ("echo 0.1 1",)


def test_a_params_file_appearing_invalidates_it(p: Project) -> None:
    p.manifest("stages:\n  s:\n    cmd: echo ${lr}\n", commit=False)
    p.write("vars.yaml", "lr: 5\n")
    p.manifest("vars: [vars.yaml]\nstages:\n  s:\n    cmd: echo ${lr}\n", commit=False)
    age(p, "MLproject", "vars.yaml")
    assert load(p) == {"s": ("echo 5",)}
    p.params({"other": 1})  # params.yaml did not exist when the project was resolved
    age(p, "params.yaml")
    assert not memoised(p)


def test_a_recently_written_input_is_not_trusted(p: Project) -> None:
    from pipeline.load.projectmemo import memo_key, stat_of

    setup(p)
    params = p.write("params.yaml", "lr: 0.3\n")
    # An mtime 10 s ahead is "written within the tick" for any load that starts before it,
    # however late the load runs: racy whatever the timing.
    future = time.time_ns() + 10 * 10**9
    os.utime(params, ns=(future, future))
    assert load(p) == {"s": ("echo 0.3 1",)}
    assert not memoised(p)
    # the resolution was stored with params.yaml's current stat: only the racy rule refuses it
    state = StatMemo(p.root / ".pipeline" / "state.db")
    try:
        manifest = p.root / "MLproject"
        stored = state.get_document(memo_key(("MLproject",)), os.stat(manifest))
    finally:
        state.close()
    assert stored is not None
    assert tuple(json.loads(stored)["inputs"]["params.yaml"]) == stat_of(params)


def test_a_recalled_project_never_imports_pydantic(p: Project) -> None:
    setup(p)
    assert p.cli("status").returncode == 0
    code = (
        "import sys; from pipeline import api; "
        f"api.plan(api.ReproOptions(root={str(p.root)!r})); "
        "print('pydantic' in sys.modules, 'yaml' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_manifest_errors_still_carry_positions_after_a_recall(p: Project) -> None:
    setup(p)
    load(p)
    p.manifest("stages:\n  s:\n    cmd: echo\n    depz: [x]\n", commit=False)
    done = p.cli("status")
    assert done.returncode == 2
    assert "MLproject:4:5: stages.s.depz: unknown key 'depz'" in done.stderr


# -- through plan: used while unchanged, dropped when an input changes -------------------------


@pytest.mark.parametrize("edited", ["params.yaml", "config.yaml"])
def test_project_memo_is_used_when_unchanged_and_dropped_when_an_input_changes(
    project: Project, monkeypatch: pytest.MonkeyPatch, edited: str
) -> None:
    import pipeline.load.project

    project.params({"lr": 0.1})
    project.write("config.yaml", "size: 3\n")
    project.manifest(
        "vars: [config.yaml]\n"
        "stages:\n"
        "  s:\n"
        "    cmd: echo ${lr} ${size} > s.txt\n"
        "    outs: [s.txt]\n"
    )
    project.repro()
    _age_tree(project.root)
    project.plan()  # stores the resolution: every input is now old enough to trust

    resolved: list[Path] = []
    real = pipeline.load.project._read_project

    def counting(root: Path, manifests: tuple[str, ...], memo: object) -> object:
        resolved.append(root / manifests[0])
        return real(root, manifests, memo)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline.load.project, "_read_project", counting)
    assert project.plan().stale == []
    assert resolved == []  # served from the memo

    old = project.read(edited)
    project.write(edited, old.replace("0.1", "0.2").replace("3", "4"))
    _age(project.root / edited, HOUR_NS // 2)  # old again, but not the stat that was stored
    plan = project.plan()
    assert resolved == [project.root / "MLproject"]
    change = "param lr 0.1→0.2" if edited == "params.yaml" else "param config.yaml:size 3→4"
    assert [str(r) for r in plan.decisions["s"].reasons] == [change]
