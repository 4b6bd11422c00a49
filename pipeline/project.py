"""Load step ①: manifest + params → a `Project` of fully resolved, validated stages.

The manifest is an `MLproject` or, failing that, a `dvc.yaml` (read unchanged, no `.dvc/`
needed). Everything that can be wrong with the input is found here, before anything runs:
unknown params, bad paths, two stages writing one path, cycles. Each error points at its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.generators import expand
from pipeline.graph import OutputIndex, StageGraph, build_graph
from pipeline.manifest import read_manifest
from pipeline.resolve import ParamsFiles, base_context, build_stage
from pipeline.stage import Out, Stage
from pipeline.template import TemplateError, interpolate
from pipeline.yamlio import DocumentMemo, YamlDoc

__all__ = [
    "MANIFEST_NAMES",
    "STATE_DIR",
    "Out",
    "Project",
    "Stage",
    "find_manifest",
    "load_project",
]

MANIFEST_NAMES = ("MLproject", "dvc.yaml")
STATE_DIR = ".pipeline"


@dataclass(frozen=True)
class Project:
    """A loaded project: where it lives, its stages in manifest order, and their DAG."""

    root: Path
    manifest: Path
    name: str | None
    stages: dict[str, Stage]
    graph: StageGraph
    outputs: OutputIndex
    doc: YamlDoc
    params_files: tuple[str, ...] = ()
    metrics_files: tuple[str, ...] = ()
    plots: tuple[Any, ...] = field(default=(), repr=False)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR


def find_manifest(start: Path) -> Path:
    """The manifest in `start` or its nearest parent that has one (MLproject before dvc.yaml)."""
    start = start.resolve()
    if start.is_file():
        return start
    for directory in (start, *start.parents):
        for name in MANIFEST_NAMES:
            if (directory / name).is_file():
                return directory / name
    raise UsageError(
        f"no MLproject or dvc.yaml found in {start} or any parent directory",
        "create one (see MLproject.example), or point at a project with `pipeline -C DIR`",
    )


def load_project(start: Path | str = ".", memo: DocumentMemo | None = None) -> Project:
    """Find, parse and validate the project at `start` (a directory or a manifest file)."""
    manifest = find_manifest(Path(start))
    spec, doc = read_manifest(manifest, memo)
    root = manifest.parent
    files = ParamsFiles(root, memo)
    context = base_context(doc, files, spec.vars)
    stages: dict[str, Stage] = {}
    for name, entry in spec.stages.items():
        for definition in expand(doc, name, entry, context):
            stages[definition.name] = build_stage(doc, definition, files)
    dag, outputs = build_graph(stages, doc)
    top = _render_top(
        doc, {"params": spec.params, "metrics": spec.metrics, "plots": spec.plots}, context.data
    )
    return Project(
        root,
        manifest,
        spec.name,
        stages,
        dag,
        outputs,
        doc,
        params_files=tuple(top["params"]),
        metrics_files=tuple(top["metrics"]),
        plots=tuple(top["plots"]),
    )


def _render_top(doc: YamlDoc, sections: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Top-level `params`, `metrics` and `plots` are templated eagerly, as DVC does."""
    try:
        return dict(interpolate(sections, data).value)
    except TemplateError as exc:
        raise doc.error((), exc.reason) from None
