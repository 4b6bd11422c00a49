"""Each template gives a Vega-Lite spec that Vega-Lite compiles and renders; diff across git."""

from __future__ import annotations

import json

import pytest

from pipeline import plots
from pipeline.load.project import load_project
from pipeline.plots import PlotDef, Series
from tests.conftest import Project
from tests.plots.conftest import write_data

vlc = pytest.importorskip("vl_convert", reason="needs vl-convert-python (plots extra)")

ROWS = [
    {"epoch": e, "loss": 1 / (e + 1), "acc": e / 10, "actual": "ab"[e % 2], "pred": "ab"[e % 3 % 2]}
    for e in range(10)
]


@pytest.mark.parametrize("template", plots.TEMPLATES)
def test_every_template_compiles_and_draws(template: str) -> None:
    confusion = template.startswith("confusion")
    plot = PlotDef(
        id="t", y=(("m.csv", ("pred",) if confusion else ("loss", "acc")),),
        x=(("m.csv", "actual" if confusion else "epoch"),), template=template, title="T",
    )  # fmt: skip
    for revs in (["HEAD"], ["HEAD", "workspace"]):
        chart = plots.chart(plot, [Series(r, "m.csv", ROWS) for r in revs])
        assert chart.spec is not None
        vega = vlc.vegalite_to_vega(chart.spec)
        assert vega["marks"] or vega.get("layout")
        svg = vlc.vegalite_to_svg(chart.spec)
        assert svg.startswith("<svg") and "<path" in svg and ">T<" in svg


def test_the_seam_takes_any_rows() -> None:
    """Logged metric histories are rows too: one series per run, x = step."""
    plot = PlotDef(id="loss", y=(("loss", ("value",)),), x=(("loss", "step"),))
    runs = [
        Series(f"run {n}", "loss", [{"step": s, "value": s * n} for s in range(5)]) for n in (1, 2)
    ]
    chart = plots.chart(plot, runs)
    assert chart.spec is not None
    values = chart.spec["data"]["values"]
    assert {v["series"] for v in values} == {"run 1", "run 2"}
    assert chart.spec["encoding"]["color"]["field"] == "series"


def test_no_x_is_the_row_index_called_step() -> None:
    chart = plots.chart(PlotDef(id="a.csv", y=(("a.csv", ()),)), [Series("w", "a.csv", ROWS[:3])])
    assert chart.spec is not None
    assert [v["x"] for v in chart.spec["data"]["values"]] == [0, 1, 2]
    assert chart.spec["encoding"]["x"]["title"] == "step"
    assert chart.spec["encoding"]["y"]["title"] == "pred"  # DVC's guess: the last field


def test_diff_across_two_commits(plotted: Project) -> None:
    first = plotted.git("rev-parse", "HEAD").strip()
    write_data(plotted, shift=0.5, seed=2)
    plotted.commit()
    project = load_project(plotted.root)
    revisions = [plots.git_revision(plotted.root, first), plots.git_revision(plotted.root, "HEAD")]
    charts = {c.plot.id: c for c in plots.collect(project, revisions, ["plots/loss.tsv"])}
    values = charts["plots/loss.tsv"].spec["data"]["values"]  # type: ignore[index]
    assert {v["rev"] for v in values} == {first, "HEAD"}
    at = {(v["rev"], v["field"], v["x"]): v["y"] for v in values}
    assert at["HEAD", "train_loss", 0] == pytest.approx(at[first, "train_loss", 0] + 0.5)
    assert {v["series"] for v in values} == {
        f"{r} · {f}" for r in (first, "HEAD") for f in ("train_loss", "val_loss")
    }


def test_diff_of_a_file_only_one_side_has(plotted: Project) -> None:
    plotted.write("plots/new.csv", "v\n1\n")
    plotted.write("dvc.yaml", plotted.read("dvc.yaml") + "  - plots/new.csv\n")
    revisions = [plots.git_revision(plotted.root, "HEAD"), plots.workspace_revision(plotted.root)]
    (chart,) = plots.collect(load_project(plotted.root), revisions, ["plots/new.csv"])
    assert chart.missing == ("HEAD: plots/new.csv",)
    assert chart.revs == ("workspace",)


def test_a_run_reads_its_outputs_from_the_cache(tmp_path: Project) -> None:
    cache = tmp_path / "objects"  # type: ignore[operator]
    cache.mkdir()
    (cache / "f1").write_bytes(b"v\n3\n")
    (cache / "d1").write_text(json.dumps([{"path": "a.csv", "hash": "f1"}]))
    revision = plots.cached_revision("run r", {"out": "d1", "b.csv": "f1"}, lambda d: cache / d)
    assert revision.read("out/a.csv") == revision.read("b.csv") == b"v\n3\n"
    assert revision.read("out/zz.csv") is None
    assert revision.read("c.csv") is None
