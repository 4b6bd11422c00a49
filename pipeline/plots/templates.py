"""The templates, written as Vega-Lite for `pipeline`: each takes the points and the texts.

Points are uniform whatever the source: `x`, `y`, and `rev`/`file`/`field`, with `series`
naming the line they belong to (the parts that differ between lines). Names follow DVC's
templates so manifests written for DVC draw the same kind of chart; the specs are ours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Spec = dict[str, Any]
WIDTH, HEIGHT = 560, 300
_MARKERS_UP_TO = 150  # points per line drawn as dots; beyond that they only clutter the line


@dataclass(frozen=True)
class Texts:
    """What a chart says about itself, and how its axes are typed."""

    title: str
    x_title: str
    y_title: str
    x_type: str = "quantitative"
    y_type: str = "quantitative"
    lines: int = 1  # distinct series: colour by series only when there are several
    longest: int = 0  # the most points in one series


def _axes(texts: Texts) -> Spec:
    encoding: Spec = {
        "x": {"field": "x", "type": texts.x_type, "title": texts.x_title},
        "y": {"field": "y", "type": texts.y_type, "title": texts.y_title},
        "tooltip": [{"field": f} for f in ("series", "x", "y")],
    }
    if texts.y_type == "quantitative":  # a curve between 0.95 and 0.98 must not look flat
        encoding["y"]["scale"] = {"zero": False}
    if texts.lines > 1:
        encoding["color"] = {"field": "series", "type": "nominal", "title": None}
    return encoding


_ZOOM = [{"name": "zoom", "select": "interval", "bind": "scales"}]  # drag to pan, wheel to zoom


def linear(texts: Texts) -> Spec:
    points = texts.longest <= _MARKERS_UP_TO
    return {"mark": {"type": "line", "point": points}, "encoding": _axes(texts), "params": _ZOOM}


def simple(texts: Texts) -> Spec:
    return {"mark": {"type": "line"}, "encoding": _axes(texts)}


def scatter(texts: Texts) -> Spec:
    mark = {"type": "point", "filled": True, "opacity": 0.8}
    return {"mark": mark, "encoding": _axes(texts), "params": _ZOOM}


def smooth(texts: Texts) -> Spec:
    """Each series' LOESS fit, with its raw line faint over it (the fit comes first, so the
    legend shows solid lines)."""
    fit = {"loess": "y", "on": "x", "groupby": ["series"], "bandwidth": 0.3}
    raw = {"mark": {"type": "line", "opacity": 0.3}, "encoding": _axes(texts), "params": _ZOOM}
    return {"layer": [{"transform": [fit], "mark": "line", "encoding": _axes(texts)}, raw]}


def confusion(texts: Texts, *, normalized: bool = False) -> Spec:
    """Counts of (actual = x, predicted = y) pairs; one matrix per series, side by side."""
    value = "share" if normalized else "count"
    transform: list[Spec] = [
        {"aggregate": [{"op": "count", "as": "count"}], "groupby": ["x", "y", "series"]}
    ]
    if normalized:  # each actual class sums to 1
        transform += [
            {
                "joinaggregate": [{"op": "sum", "field": "count", "as": "total"}],
                "groupby": ["x", "series"],
            },
            {"calculate": "datum.count / datum.total", "as": "share"},
        ]
    # the largest value per matrix, so labels turn white on the darkest cells
    transform.append(
        {"joinaggregate": [{"op": "max", "field": value, "as": "top"}], "groupby": ["series"]}
    )
    axes = {
        "x": {"field": "x", "type": "nominal", "title": texts.x_title},
        "y": {"field": "y", "type": "nominal", "title": texts.y_title},
    }
    cell = {
        "mark": "rect",
        "encoding": {
            **axes,
            "color": {
                "field": value,
                "type": "quantitative",
                "scale": {"scheme": "blues"},
                "title": value,
            },
        },
    }
    label = {
        "mark": {"type": "text", "fontSize": 12},
        "encoding": {
            **axes,
            "text": {
                "field": value,
                "type": "quantitative",
                "format": ".0%" if normalized else "d",
            },
            "color": {
                "condition": {"test": f"datum.{value} > 0.6 * datum.top", "value": "white"},
                "value": "black",
            },
        },
    }
    inner = {"layer": [cell, label], "width": {"step": 44}, "height": {"step": 44}}
    if texts.lines == 1:
        return {"transform": transform, **inner}
    facet = {"field": "series", "type": "nominal", "title": None}
    return {"transform": transform, "facet": facet, "columns": 3, "spec": inner}


def confusion_normalized(texts: Texts) -> Spec:
    return confusion(texts, normalized=True)


def bar_horizontal(texts: Texts, *, ordered: bool = False) -> Spec:
    """A bar per `y` category, `x` long (DVC: x is the value, y the category)."""
    y: Spec = {"field": "y", "type": "nominal", "title": texts.y_title}
    if ordered:
        y["sort"] = "-x"
    encoding: Spec = {
        "x": {"field": "x", "type": "quantitative", "title": texts.x_title},
        "y": y,
        "tooltip": [{"field": f} for f in ("series", "y", "x")],
    }
    if texts.lines > 1:
        encoding |= {
            "color": {"field": "series", "type": "nominal", "title": None},
            "yOffset": {"field": "series"},
        }
    return {"mark": "bar", "encoding": encoding, "height": {"step": 18}}


def bar_horizontal_sorted(texts: Texts) -> Spec:
    return bar_horizontal(texts, ordered=True)


BUILDERS: dict[str, Callable[[Texts], Spec]] = {
    "linear": linear,
    "simple": simple,
    "scatter": scatter,
    "smooth": smooth,
    "confusion": confusion,
    "confusion_normalized": confusion_normalized,
    "bar_horizontal": bar_horizontal,
    "bar_horizontal_sorted": bar_horizontal_sorted,
}
STYLE: Spec = {
    "background": "white",
    "padding": 8,
    "config": {
        "font": "system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif",
        "title": {"fontSize": 15, "anchor": "start", "offset": 10},
        "axis": {"labelFontSize": 11, "titleFontSize": 12, "gridColor": "#eceff3"},
        "legend": {"labelFontSize": 11, "orient": "bottom", "labelLimit": 360, "symbolOpacity": 1},
        "view": {"stroke": None},
        "range": {"category": {"scheme": "tableau10"}},
    },
}


def spec(template: str, values: list[dict[str, Any]], texts: Texts) -> Spec:
    """A complete Vega-Lite spec: the template's marks over `values`, titled and styled."""
    body = BUILDERS[template](texts)
    sized = {"width": WIDTH, "height": HEIGHT} if "width" not in body and "spec" not in body else {}
    return {**STYLE, "title": texts.title, "data": {"values": values}, **sized, **body}
