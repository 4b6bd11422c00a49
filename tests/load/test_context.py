"""The templating context of a dvc.yaml: `vars` from files (selected keys, tracked as params)
and inline, and no silent redefinition of a value.
"""

from __future__ import annotations

import pytest

from pipeline.errors import ManifestError
from pipeline.load.context import Context, ContextError
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


# -- issue 14: a vars file imported partially and wholly is rejected, with DVC's message ---


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (None, ("a",), "cannot partially load 'f.yaml:a' as it's already loaded."),
        (("a",), None, "cannot load 'f.yaml' as it's partially loaded already"),
        (("a",), ("a", "b"), "cannot load 'f.yaml:a,b' as it's partially loaded already"),
    ],
)
def test_partial_and_whole_imports_of_one_file_conflict(
    first: tuple[str, ...] | None, second: tuple[str, ...] | None, message: str
) -> None:
    def item(keys: tuple[str, ...] | None) -> str:
        return "f.yaml" + (":" + ",".join(keys) if keys else "")

    context = Context().merge({"a": 1}, "f.yaml", "f.yaml", keys=first, item=item(first))
    with pytest.raises(ContextError) as caught:
        context.merge({"b": 2}, "f.yaml", "f.yaml", keys=second, item=item(second))
    assert str(caught.value) == message


def test_disjoint_partial_imports_and_a_whole_file_twice_are_fine() -> None:
    context = Context().merge({"a": 1}, "f.yaml", "f.yaml", keys=("a",))
    context = context.merge({"b": 2}, "f.yaml", "f.yaml", keys=("b",))
    assert context.data == {"a": 1, "b": 2}
    whole = Context().merge({"a": 1}, "g.yaml", "g.yaml")
    assert whole.merge({"a": 1}, "g.yaml", "g.yaml") is whole


def test_an_item_from_a_file_is_tracked_under_its_own_name() -> None:
    context = Context().merge({"models": {"m1": {"t": 1}}}, "params.yaml", "params.yaml")
    member = context.with_items({"item": {"t": 1}, "key": "m1"}, {"item": "models.m1"})
    assert member.tracked(["item.t", "key"]) == {"params.yaml": {"models.m1.t": 1}}
    assert member.unalias("item") == "models.m1"
    assert member.unalias("items") == "items"
