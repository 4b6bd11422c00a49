"""Plot definitions from a manifest: top-level and stage plots, targets, malformed ones."""

from __future__ import annotations

import pytest

from pipeline import plots
from pipeline.errors import DataError, ManifestError, UsageError
from pipeline.load.project import load_project
from tests.conftest import Project


def test_every_declared_plot_with_its_props(plotted: Project) -> None:
    found = {p.id: p for p in plots.definitions(load_project(plotted.root))}
    assert list(found) == [
        "plots/loss.tsv", "confusion", "plots/prc.yaml", "plots/features.csv",
        "plots/chart.png", "plots/accuracy.csv",
    ]  # fmt: skip
    loss = found["plots/loss.tsv"]
    assert loss.y == (("plots/loss.tsv", ("train_loss", "val_loss")),)
    assert loss.x_of("plots/loss.tsv") == "epoch"
    assert (loss.title, loss.x_label, loss.y_label) == ("Loss by epoch", "epoch", "loss")
    assert found["confusion"].files == ("plots/preds.json",)
    assert found["confusion"].template == "confusion"
    assert found["plots/chart.png"].template == "image"
    assert found["plots/accuracy.csv"].source == "stage train"


def test_targets_select_by_id_or_file(plotted: Project) -> None:
    project = load_project(plotted.root)
    chosen = plots.definitions(project, ["confusion", "plots/loss.tsv"])
    assert [p.id for p in chosen] == ["plots/loss.tsv", "confusion"]
    assert [p.id for p in plots.definitions(project, ["plots/preds.json"])] == ["confusion"]
    with pytest.raises(UsageError, match=r"no plot 'plots/los\.tsv'") as caught:
        plots.definitions(project, ["plots/los.tsv"])
    assert "did you mean 'plots/loss.tsv'" in (caught.value.hint or "")


def test_an_unknown_template_names_the_manifest(project: Project) -> None:
    project.write("dvc.yaml", "plots:\n  - a.csv:\n      template: lineer\n")
    with pytest.raises(ManifestError, match=r"dvc\.yaml: plot 'a\.csv': unknown template") as e:
        plots.definitions(load_project(project.root))
    assert "did you mean 'linear'" in (e.value.hint or "")


def test_a_malformed_plot_entry_names_the_manifest(project: Project) -> None:
    project.write("dvc.yaml", "plots:\n  - a.csv:\n      y: 3\n")
    with pytest.raises(ManifestError, match=r"dvc\.yaml"):
        load_project(project.root)


def test_a_folder_is_a_plot_per_file(project: Project) -> None:
    project.write("dvc.yaml", "plots:\n  - curves\n")
    project.write("curves/a.csv", "v\n1\n2\n")
    project.write("curves/b.json", '[{"v": 1}]')
    found = plots.definitions(load_project(project.root))
    assert [p.id for p in found] == ["curves/a.csv", "curves/b.json"]


def test_a_missing_data_file_is_named(project: Project) -> None:
    project.write("dvc.yaml", "plots:\n  - out/loss.csv\n")
    revision = plots.workspace_revision(project.root)
    with pytest.raises(DataError, match=r"out/loss\.csv not found in workspace") as caught:
        plots.collect(load_project(project.root), [revision])
    assert "dvc.yaml" in (caught.value.hint or "")


def test_a_field_no_row_has_is_named(project: Project) -> None:
    project.write("dvc.yaml", "plots:\n  - a.csv:\n      y: acc\n")
    project.write("a.csv", "loss\n1\n")
    revision = plots.workspace_revision(project.root)
    with pytest.raises(DataError, match=r"a\.csv \(workspace\): no field 'acc'") as caught:
        plots.collect(load_project(project.root), [revision])
    assert "its fields are loss" in (caught.value.hint or "")


def test_a_stage_plot_is_drawn_as_its_entry_says(project: Project) -> None:
    project.write(
        "dvc.yaml",
        "stages:\n  train:\n    cmd: echo\n    plots:\n"
        "      - roc.csv: {x: fpr, y: tpr, template: scatter, title: ROC, cache: false}\n",
    )
    loaded = load_project(project.root)
    (found,) = plots.definitions(loaded)
    assert (found.template, found.title, found.x_of("roc.csv")) == ("scatter", "ROC", "fpr")
    assert found.y == (("roc.csv", ("tpr",)),)
    again = load_project(project.root)  # from the project memo: the settings survive it
    assert plots.definitions(again) == [found]
    assert loaded.stages["train"] == again.stages["train"]


def test_drawing_settings_change_no_fingerprint(project: Project) -> None:
    from pipeline.core.stage import Out

    plain = Out("roc.csv", kind="plots")
    drawn = Out("roc.csv", kind="plots", plot=(("template", "scatter"),))
    assert plain == drawn and hash(plain) == hash(drawn)
