"""Plots of a project at some revisions: definitions, their files read and charted."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from pipeline.errors import DataError
from pipeline.load.project import Project
from pipeline.plots.charts import Chart, Image, Series, chart
from pipeline.plots.data import Revision, parse_rows
from pipeline.plots.definitions import IMAGE, IMAGE_TYPES, PlotDef, definitions


def collect(
    project: Project, revisions: Sequence[Revision], targets: Sequence[str] = ()
) -> list[Chart]:
    """A chart per declared plot (or per plot of `targets`), its points from each revision.

    A file one revision lacks is listed in the chart's `missing`; a plot none of whose files
    exists at any revision is a `DataError` naming them.
    """
    return [_one(plot, revisions) for plot in definitions(project, targets)]


def _one(plot: PlotDef, revisions: Sequence[Revision]) -> Chart:
    found: dict[tuple[str, str], bytes] = {}
    missing: list[str] = []
    for rev in revisions:
        for file in plot.files:
            raw = rev.read(file)
            if raw is None:
                missing.append(f"{rev.label}: {file}")
            else:
                found[rev.label, file] = raw
    if not found:
        raise DataError(
            f"plot {plot.id!r}: {', '.join(plot.files)} not found in {_labels(revisions)}",
            f"produce it (`pipeline repro`), or fix the plot in {plot.source}",
        )
    if plot.template == IMAGE:
        return Chart(
            plot,
            None,
            tuple(_image(r, f, b) for (r, f), b in found.items()),
            tuple(missing),
            tuple(dict.fromkeys(r for r, _ in found)),
        )
    series = [Series(r, f, parse_rows(f, raw)) for (r, f), raw in found.items()]
    return chart(plot, series, missing)


def _image(rev: str, file: str, data: bytes) -> Image:
    return Image(rev, file, IMAGE_TYPES[posixpath.splitext(file)[1].lower()], data)


def _labels(revisions: Sequence[Revision]) -> str:
    return ", ".join(r.label for r in revisions) or "no revision"
