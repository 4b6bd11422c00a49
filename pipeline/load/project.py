"""Load step ①: manifest + params → a `Project` of fully resolved, validated stages.

The manifest is an `MLproject` or, failing that, a `dvc.yaml` (read unchanged, no `.dvc/`
needed). Everything that can be wrong with the input is found here, before anything runs:
unknown params, bad paths, two stages writing one path, cycles. Each error points at its line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.paths import PathRuleError, normalize
from pipeline.core.stage import Out, Stage
from pipeline.core.yamlio import DocumentMemo, YamlDoc
from pipeline.errors import UsageError
from pipeline.load.declared import ArtifactDecl, Declared, PlotDecl
from pipeline.load.environments import EnvDecl
from pipeline.load.graph import OutputIndex, StageGraph, build_graph
from pipeline.load.projectmemo import (
    Stat,
    recall,
    remember,
    stages_from_json,
    stages_to_json,
    stat_of,
)
from pipeline.load.template import TemplateError, interpolate

if TYPE_CHECKING:
    from pipeline.load.manifest import ManifestSpec

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
    params_files: tuple[str, ...] = ()
    declared: Declared = field(default_factory=Declared, repr=False)
    environments: dict[str, EnvDecl] = field(default_factory=dict, repr=False)
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    entry_points: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def metrics_files(self) -> tuple[str, ...]:
        """The top-level `metrics:` files (stage metrics are outs of kind `metrics`)."""
        return self.declared.metrics


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
    """Find, parse and validate the project at `start` (a directory or a manifest file).

    With a `memo`, an unchanged project is rebuilt from its stored resolution (projectmemo.py).
    """
    manifest = find_manifest(Path(start))
    cached = recall(memo, manifest) if memo is not None else None
    if cached is not None:
        stages = stages_from_json(cached)
        dag, outputs = build_graph(stages, YamlDoc(manifest, None))
        return _project(manifest, cached, stages, dag, outputs)
    started = time.time_ns()
    data, inputs = _read_project(manifest, memo)
    stages = stages_from_json(data)
    dag, outputs = build_graph(stages, YamlDoc(manifest, None))
    if memo is not None:
        remember(memo, manifest, inputs, started, data)
    return _project(manifest, data, stages, dag, outputs)


def _project(
    manifest: Path,
    data: dict[str, Any],
    stages: dict[str, Stage],
    dag: StageGraph,
    outputs: OutputIndex,
) -> Project:
    return Project(
        manifest.parent,
        manifest,
        data["name"],
        stages,
        dag,
        outputs,
        params_files=tuple(data["params_files"]),
        declared=Declared.from_json(data["declared"]),
        environments={n: EnvDecl.from_json(row) for n, row in data["environments"].items()},
        parameters=data["parameters"],
        entry_points=data["entry_points"],
    )


def _read_project(
    manifest: Path, memo: DocumentMemo | None
) -> tuple[dict[str, Any], dict[str, Stat]]:
    """Parse, validate and render the manifest: the slow path, with pydantic and PyYAML.

    Returns the project as JSON-ready data, and the stat of every file that was read.
    """
    # Imported here: an unchanged project never needs pydantic (see projectmemo.py).
    from pipeline.load.definitions import ParamsFiles, base_context, build_stage  # noqa: PLC0415
    from pipeline.load.environments import declare_envs  # noqa: PLC0415
    from pipeline.load.generators import expand  # noqa: PLC0415
    from pipeline.load.manifest import read_manifest  # noqa: PLC0415

    inputs: dict[str, Stat] = {manifest.name: stat_of(manifest)}
    spec, doc = read_manifest(manifest, memo)
    if spec.docker_env is not None:
        raise doc.error(
            ("docker_env",),
            "docker_env is not supported",
            "use python_env or conda_env; stages run in local envs",
            at_key=True,
        )
    envs = declare_envs(doc, spec)
    _check_entry_envs(doc, spec.entry_points, envs)
    files = ParamsFiles(manifest.parent, memo)
    context = base_context(doc, files, spec.vars)
    stages: dict[str, Stage] = {}
    for name, entry in spec.stages.items():
        for definition in expand(doc, name, entry, context):
            if definition.name in stages:
                raise doc.error(
                    definition.loc,
                    f"two stages are named {definition.name!r}",
                    "make foreach keys or matrix values distinct",
                )
            stages[definition.name] = build_stage(doc, definition, files, envs)
    build_graph(stages, doc)  # conflicts and cycles are reported with their manifest line
    top = _render_top(doc, _top_sections(spec), context.data)
    data = {
        "name": spec.name,
        "params_files": top["params"],
        "declared": _declared(doc, top).to_json(),
        "environments": {name: decl.to_json() for name, decl in envs.items()},
        "parameters": {k: v.model_dump(exclude_none=True) for k, v in spec.parameters.items()},
        "entry_points": {k: v.model_dump() for k, v in spec.entry_points.items()},
        **stages_to_json(stages),
    }
    return data, {**inputs, **files.consulted}


def _top_sections(spec: ManifestSpec) -> dict[str, Any]:
    """The top-level sections DVC templates, as plain data (unset plot keys left out)."""
    return {
        "params": spec.params,
        "metrics": spec.metrics,
        "plots": [
            {key: props.model_dump(exclude_none=True) if props else {}}
            for entry in spec.plots
            for key, props in entry.items()
        ],
        "artifacts": {name: a.model_dump() for name, a in spec.artifacts.items()},
    }


def _declared(doc: YamlDoc, top: dict[str, Any]) -> Declared:
    """Rendered top-level sections as values, their paths normalised like stage paths."""
    metrics = [_top_path(doc, ("metrics", i), p) for i, p in enumerate(top["metrics"])]
    artifacts = [
        ArtifactDecl(
            name,
            **{
                **a,
                "path": _top_path(doc, ("artifacts", name, "path"), a["path"]),
                "labels": tuple(a["labels"]),
            },
        )
        for name, a in top["artifacts"].items()
    ]
    return Declared(
        metrics=tuple(dict.fromkeys(metrics)),
        plots=tuple(PlotDecl(k, v) for entry in top["plots"] for k, v in entry.items()),
        artifacts=tuple(artifacts),
    )


def _top_path(doc: YamlDoc, loc: tuple[str | int, ...], raw: Any) -> str:
    if not isinstance(raw, str):  # a template rendered to a number or a mapping
        raise doc.error(loc, f"expected a path, got {raw!r}")
    try:
        return normalize(raw)
    except PathRuleError as exc:
        raise doc.error(loc, str(exc), "paths are relative to the manifest's folder") from None


def _render_top(doc: YamlDoc, sections: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Top-level `params`, `metrics`, `plots` and `artifacts` are templated eagerly, as DVC does."""
    try:
        return dict(interpolate(sections, data).value)
    except TemplateError as exc:
        raise doc.error((), exc.reason) from None


def _check_entry_envs(doc: YamlDoc, entries: dict[str, Any], envs: dict[str, Any]) -> None:
    for name, entry in entries.items():
        if entry.env is not None and entry.env not in envs:
            raise doc.error(("entry_points", name, "env"), f"unknown environment {entry.env!r}")
