"""The seam: rows of records plus a plot definition → one chart (a Vega-Lite spec).

Every source of rows goes through `chart`: data files read from a revision (`collect`), and any
other (metric histories logged from code: one `Series` per run and metric, `x="step"`). A
`Series` is one file's records at one revision; `chart` melts each requested field of each
series into uniform points (`x`, `y`, `rev`, `file`, `field`, `series`) for the templates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import DataError
from pipeline.plots.definitions import IMAGE, PlotDef
from pipeline.plots.templates import Spec, Texts, spec

INDEX = "step"  # the x of a file without one: the row's position, as DVC names it


@dataclass(frozen=True)
class Series:
    """One file's records at one revision (or any other rows: a logged metric's history)."""

    rev: str
    file: str
    rows: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Image:
    """An image file at one revision, as bytes with its media type."""

    rev: str
    file: str
    mime: str
    data: bytes


@dataclass(frozen=True)
class Chart:
    """A drawn plot: its definition, its Vega-Lite spec (None for images), and what was
    shown or missing (`rev: file` of files a revision does not have)."""

    plot: PlotDef
    spec: Spec | None
    images: tuple[Image, ...] = ()
    missing: tuple[str, ...] = ()
    revs: tuple[str, ...] = field(default=())

    @property
    def title(self) -> str:
        return self.plot.title or self.plot.id


def chart(plot: PlotDef, series: Sequence[Series], missing: Sequence[str] = ()) -> Chart:
    """The chart of `plot` over `series`; a field the plot names but no row has is a
    `DataError` naming the file."""
    if plot.template == IMAGE:
        raise ValueError("images are not charted")  # collect shows them; a caller's bug
    revs = tuple(dict.fromkeys(s.rev for s in series))
    points = [p for s in series for p in _points(plot, s)]
    _label(points)
    texts = _texts(plot, series, points)
    return Chart(plot, spec(plot.template, points, texts), (), tuple(missing), revs)


def _points(plot: PlotDef, series: Series) -> list[dict[str, Any]]:
    rows = series.rows
    x = plot.x_of(series.file) or _default_x(plot, rows)
    fields = dict(plot.y).get(series.file) or _default_y(rows, x)
    for name in (x, *fields):
        if rows and name != INDEX and not any(name in r for r in rows):
            columns = ", ".join(dict.fromkeys(k for r in rows for k in r))
            raise DataError(
                f"{series.file} ({series.rev}): no field {name!r} for plot {plot.id!r}",
                f"its fields are {columns}; fix `x`/`y` of the plot in {plot.source}",
            )
    return [
        {
            "x": i if x == INDEX else r.get(x),
            "y": r.get(f),
            "rev": series.rev,
            "file": series.file,
            "field": f,
        }
        for f in fields
        for i, r in enumerate(rows)
    ]


def _default_x(plot: PlotDef, rows: Sequence[Mapping[str, Any]]) -> str:
    if plot.template.startswith("confusion") and rows:  # actual vs predicted: first column
        return next(iter(rows[0]))
    return INDEX


def _default_y(rows: Sequence[Mapping[str, Any]], x: str) -> tuple[str, ...]:
    """DVC's guess: the last field of the records (that is not x)."""
    names = [k for k in (rows[0] if rows else {}) if k != x]
    return (names[-1],) if names else ()


def _label(points: list[dict[str, Any]]) -> None:
    """`series`: the parts that tell lines apart (revision, file, field), else the field."""
    parts = [key for key in ("rev", "file", "field") if len({p[key] for p in points}) > 1]
    for p in points:
        p["series"] = " · ".join(str(p[k]) for k in parts) if parts else str(p["field"])


def _texts(plot: PlotDef, series: Sequence[Series], points: list[dict[str, Any]]) -> Texts:
    xs = dict.fromkeys(plot.x_of(s.file) or _default_x(plot, s.rows) for s in series)
    ys = dict.fromkeys(str(p["field"]) for p in points)
    counts: dict[str, int] = {}
    for p in points:
        counts[p["series"]] = counts.get(p["series"], 0) + 1
    return Texts(
        title=plot.title or plot.id,
        x_title=plot.x_label or ", ".join(xs),
        y_title=plot.y_label or ", ".join(ys),
        x_type=_type([p["x"] for p in points]),
        y_type=_type([p["y"] for p in points]),
        lines=len(counts),
        longest=max(counts.values(), default=0),
    )


def _type(values: list[Any]) -> str:
    numbers = [v for v in values if v is not None]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        return "quantitative"
    return "ordinal"
