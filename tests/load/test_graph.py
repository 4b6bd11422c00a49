"""The stage DAG: which outputs feed which deps, execution order, and rejected graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.errors import ManifestError
from pipeline.load.graph import OutputIndex
from pipeline.load.project import Out, Project, Stage, load_project


def _load(tmp_path: Path, stages: dict[str, Any]) -> Project:
    (tmp_path / "MLproject").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    return load_project(tmp_path)


def _stage(cmd: str = "true", deps: list[str] | None = None, outs: list[str] | None = None) -> dict:
    return {"cmd": cmd, "deps": deps or [], "outs": outs or []}


def _edges(project: Project) -> set[tuple[str, str]]:
    return set(project.graph.edges)


def test_an_out_used_as_a_dep_makes_an_edge(tmp_path: Path) -> None:
    project = _load(
        tmp_path,
        {"a": _stage(outs=["a.txt"]), "b": _stage(deps=["a.txt"], outs=["b.txt"])},
    )
    assert _edges(project) == {("a", "b")}
    assert project.graph.upstream == {"a": (), "b": ("a",)}


def test_a_dep_inside_an_output_directory_makes_an_edge(tmp_path: Path) -> None:
    project = _load(
        tmp_path, {"gen": _stage(outs=["data"]), "use": _stage(deps=["data/train/x.csv"])}
    )
    assert _edges(project) == {("gen", "use")}


def test_a_dep_directory_containing_outputs_makes_edges(tmp_path: Path) -> None:
    project = _load(
        tmp_path,
        {
            "one": _stage(outs=["data/one.csv"]),
            "two": _stage(outs=["data/sub/two.csv"]),
            "unrelated": _stage(outs=["database.csv"]),  # shares a prefix, not a directory
            "all": _stage(deps=["data"]),
        },
    )
    assert _edges(project) == {("one", "all"), ("two", "all")}


def test_paths_are_compared_after_normalisation(tmp_path: Path) -> None:
    project = _load(
        tmp_path, {"a": _stage(outs=["./out//a.txt"]), "b": _stage(deps=["out/./a.txt"])}
    )
    assert project.stages["a"].out_paths == ("out/a.txt",)
    assert project.stages["b"].deps == ("out/a.txt",)
    assert _edges(project) == {("a", "b")}


def test_order_is_upstream_first_with_manifest_order_between_ready_stages(
    tmp_path: Path,
) -> None:
    project = _load(
        tmp_path,
        {
            "report": _stage(deps=["m.txt", "s.txt"]),
            "zeta": _stage(outs=["z.txt"]),
            "model": _stage(deps=["z.txt"], outs=["m.txt"]),
            "alpha": _stage(outs=["a.txt"]),
            "stats": _stage(deps=["a.txt"], outs=["s.txt"]),
        },
    )
    order = list(project.graph.order)
    assert sorted(order) == sorted(project.stages)
    for producer, consumer in project.graph.edges:
        assert order.index(producer) < order.index(consumer)
    assert order == ["zeta", "alpha", "model", "stats", "report"]


def test_ancestors(tmp_path: Path) -> None:
    project = _load(
        tmp_path,
        {
            "a": _stage(outs=["a"]),
            "b": _stage(deps=["a"], outs=["b"]),
            "c": _stage(deps=["b"], outs=["c"]),
            "d": _stage(outs=["d"]),
        },
    )
    assert project.graph.ancestors(["c"]) == {"a", "b"}
    assert project.graph.ancestors(["a", "d"]) == set()


def test_to_networkx_has_the_same_edges(tmp_path: Path) -> None:
    project = _load(tmp_path, {"a": _stage(outs=["a"]), "b": _stage(deps=["a"])})
    dag = project.graph.to_networkx()
    assert set(dag.nodes) == {"a", "b"}
    assert set(dag.edges) == {("a", "b")}


def test_output_index() -> None:
    def stage(name: str, *outs: str) -> Stage:
        return Stage(name, ("true",), (), tuple(Out(p) for p in outs), {})

    index = OutputIndex([stage("a", "data/a.csv", "data/b"), stage("m", "model.pkl")])
    assert index.owner["model.pkl"][0] == "m"
    assert index.producers("model.pkl") == {"m"}
    assert index.producers("data/b/inner.txt") == {"a"}
    assert index.producers("data") == {"a"}
    assert index.producers("dat") == set()
    assert index.producers("elsewhere") == set()
    assert index.inside("data") == ["data/a.csv", "data/b"]
    assert index.inside("data/a.csv") == []


# -- rejected graphs -------------------------------------------------------------------------


def _error(tmp_path: Path, stages: dict[str, Any]) -> str:
    with pytest.raises(ManifestError) as exc:
        _load(tmp_path, stages)
    return exc.value.message.split(": ", 1)[1]


def test_cycle_of_three_is_named_in_flow_order(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        {
            "a": _stage(deps=["b.txt"], outs=["a.txt"]),
            "b": _stage(deps=["c.txt"], outs=["b.txt"]),
            "c": _stage(deps=["a.txt"], outs=["c.txt"]),
        },
    )
    # a writes a.txt which c reads; c writes c.txt which b reads; b writes b.txt which a reads
    assert message == "stages.a: dependency cycle: a → c → b → a"


def test_cycle_behind_a_valid_stage(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        {
            "start": _stage(outs=["s.txt"]),
            "x": _stage(deps=["s.txt", "y.txt"], outs=["x.txt"]),
            "y": _stage(deps=["x.txt"], outs=["y.txt"]),
        },
    )
    assert message.endswith(("dependency cycle: x → y → x", "dependency cycle: y → x → y"))


def test_stage_reading_its_own_output_directory(tmp_path: Path) -> None:
    message = _error(tmp_path, {"a": _stage(deps=["data"], outs=["data/out.csv"])})
    assert message == "stages.a.deps: stage 'a' depends on its own output data"


@pytest.mark.parametrize(
    "stages",
    [
        {"a": _stage(outs=["x"]), "b": _stage(outs=["x"])},
        {"a": _stage(outs=["x"]), "b": {"cmd": "true", "metrics": ["x"]}},
    ],
    ids=["outs", "metrics"],
)
def test_two_stages_writing_one_path(tmp_path: Path, stages: dict[str, Any]) -> None:
    assert _error(tmp_path, stages).endswith("x is already an output of stage 'a'")


@pytest.mark.parametrize("inner_first", [False, True])
def test_output_inside_another_output(tmp_path: Path, inner_first: bool) -> None:
    outer = ("outer", _stage(outs=["data"]))
    inner = ("inner", _stage(outs=["data/part/x.csv"]))
    stages = dict([inner, outer] if inner_first else [outer, inner])
    message = _error(tmp_path, stages)
    assert message.endswith("output data/part/x.csv is inside output data of stage 'outer'")
