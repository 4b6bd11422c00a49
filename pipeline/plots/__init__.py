"""Plots: DVC's plot definitions drawn as Vega-Lite, for the workspace, git revisions and runs.

`definitions` reads what a project declares (top-level and stage `plots:`), `data` reads the
files behind them from a `Revision` (the workspace, a commit, a run's cached outputs), `charts`
turns rows plus a definition into a Vega-Lite spec (the seam other sources of rows use), and
`output` writes one self-contained HTML page or PNG/SVG files. `collect` ties the first three.
"""

from __future__ import annotations

from pipeline.plots.charts import Chart, Series, chart
from pipeline.plots.collect import collect
from pipeline.plots.data import Revision, cached_revision, git_revision, workspace_revision
from pipeline.plots.definitions import TEMPLATES, PlotDef, definitions, logged_plot
from pipeline.plots.output import DEFAULT_DIR, write_html, write_images

__all__ = [
    "DEFAULT_DIR",
    "TEMPLATES",
    "Chart",
    "PlotDef",
    "Revision",
    "Series",
    "cached_revision",
    "chart",
    "collect",
    "definitions",
    "git_revision",
    "logged_plot",
    "workspace_revision",
    "write_html",
    "write_images",
]
