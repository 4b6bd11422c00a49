"""Load step ①: manifest + params → a `Project` of fully resolved, validated stages.

Every `MLproject` or `dvc.yaml` under the project root (discover.py) is read, unchanged, no
`.dvc/` needed, into one DAG; paths in each are relative to its own folder.
Everything that can be wrong with the input is found here, before anything runs:
unknown params, bad paths, two stages writing one path, cycles. Each error points at its line.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.paths import PathRuleError, normalize
from pipeline.core.stage import Out, Stage
from pipeline.core.yamlio import DocumentMemo, YamlDoc
from pipeline.errors import UsageError
from pipeline.load.declared import ArtifactDecl, Declared, PlotDecl
from pipeline.load.discover import (
    MANIFEST_NAMES,
    find_root,
    list_manifests,
    nearest_manifest,
)
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
    from pipeline.load.definitions import ParamsFiles
    from pipeline.load.manifest import ManifestSpec

__all__ = [
    "MANIFEST_NAMES",
    "STATE_DIR",
    "Out",
    "Project",
    "Stage",
    "load_project",
    "project_root",
]

STATE_DIR = ".pipeline"


@dataclass(frozen=True)
class Project:
    """A loaded project: where it lives, its stages in manifest order, and their DAG.

    `root` is the repository (discover.py); `manifest` is the one the command started at, whose
    name, parameters and entry points these are. `manifests` lists every manifest loaded,
    `origins` the manifest of each stage (a stage of a manifest below the root is named
    `path/to/dvc.yaml:stage`, as in DVC), and `scope` the folder whose stages a command without
    targets acts on ("." for all).
    """

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
    manifests: tuple[str, ...] = ()
    origins: dict[str, str] = field(default_factory=dict, repr=False)
    scope: str = "."

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def metrics_files(self) -> tuple[str, ...]:
        """The top-level `metrics:` files (stage metrics are outs of kind `metrics`)."""
        return self.declared.metrics


def project_root(start: Path | str = ".") -> Path:
    """The root of the project a command started at `start` works in (its `.pipeline` is there)."""
    return find_root(Path(start))


def load_project(start: Path | str = ".", memo: DocumentMemo | None = None) -> Project:
    """Find, parse and validate the project at `start` (a directory or a manifest file).

    Every manifest under the project root is loaded into one DAG (`Project.manifest` is the one
    at or above `start`); a named file that is not one of them (another name) is loaded alone.
    Without targets, a command acts on the stages of the nearest manifest's folder (`scope`).
    With a `memo`, an unchanged project is rebuilt from its stored resolution (projectmemo.py).
    """
    begin = Path(start).resolve()
    root = find_root(begin)
    manifests = _manifests(begin, root, memo)
    data = recall(memo, root, manifests) if memo is not None else None
    if data is None:
        started = time.time_ns()
        data, inputs = _read_project(root, manifests, memo)
        if memo is not None:
            remember(memo, root, manifests, inputs, started, data)
    stages = stages_from_json(data)
    here = begin.parent if begin.is_file() else begin
    nearest = nearest_manifest(here, root, manifests)
    primary = nearest or manifests[0]
    dag, outputs = build_graph(stages, YamlDoc(root / primary, None))
    return _project(root, primary, data, stages, (dag, outputs), _scope(begin, root, nearest))


def _scope(begin: Path, root: Path, nearest: str | None) -> str:
    """The folder whose stages a command without targets acts on. A named file narrows
    nothing: an isolated run reopens its workspace by the project's manifest, which without a
    manifest at the root is just the first one."""
    if begin.is_file():
        return "."
    if nearest is not None:
        return posixpath.dirname(nearest) or "."
    return _relative(begin, root)


def _manifests(begin: Path, root: Path, memo: DocumentMemo | None) -> tuple[str, ...]:
    """Every manifest of the project; a named file that is not one of them is loaded alone."""
    found = list_manifests(root, memo)
    if begin.is_file() and begin.relative_to(root).as_posix() not in found:
        return (begin.relative_to(root).as_posix(),)
    if not found:
        raise UsageError(
            f"no MLproject or dvc.yaml found under {root}", "create one (see MLproject.example)"
        )
    return found


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return "."


def _project(  # noqa: PLR0917 (the parts load_project gathered, each once)
    root: Path,
    primary: str,
    data: dict[str, Any],
    stages: dict[str, Stage],
    graph: tuple[StageGraph, OutputIndex],
    scope: str,
) -> Project:
    own = data["manifests"][primary]
    every = list(data["manifests"].values())
    return Project(
        root,
        root / primary,
        own["name"],
        stages,
        *graph,
        params_files=tuple(dict.fromkeys(p for m in every for p in m["params_files"])),
        declared=Declared.merged(Declared.from_json(m["declared"]) for m in every),
        environments={n: EnvDecl.from_json(row) for n, row in data["environments"].items()},
        parameters=own["parameters"],
        entry_points=own["entry_points"],
        manifests=tuple(data["manifests"]),
        origins=data["origins"],
        scope=scope,
    )


def _read_project(
    root: Path, manifests: tuple[str, ...], memo: DocumentMemo | None
) -> tuple[dict[str, Any], dict[str, Stat]]:
    """Parse, validate and render every manifest: the slow path, with pydantic and PyYAML.

    Returns the project as JSON-ready data, and the stat of every file that was read.
    """
    # Imported here: an unchanged project never needs pydantic (see projectmemo.py).
    from pipeline.load.definitions import ParamsFiles  # noqa: PLC0415

    files = ParamsFiles(root, memo)
    inputs: dict[str, Stat] = {}
    stages: dict[str, Stage] = {}
    data: dict[str, Any] = {"manifests": {}, "environments": {}, "origins": {}}
    for relpath in manifests:
        inputs[relpath] = stat_of(root / relpath)
        own, envs, built = _read_manifest(root, relpath, files, memo)
        data["manifests"][relpath] = own
        data["environments"].update({n: d.to_json() for n, d in envs.items()})
        data["origins"].update(dict.fromkeys(built, relpath))
        stages.update(built)
    if len(manifests) > 1:  # paths shared across files, without a line to point at
        build_graph(stages, YamlDoc(root / manifests[0], None))
    data.update(stages_to_json(stages))
    return data, {**inputs, **files.consulted}


def _read_manifest(
    root: Path, relpath: str, files: ParamsFiles, memo: DocumentMemo | None
) -> tuple[dict[str, Any], dict[str, EnvDecl], dict[str, Stage]]:
    """One manifest: its own sections, its environments and its stages (names prefixed below
    the root, paths relative to its folder made project-relative)."""
    from pipeline.load.definitions import base_context, build_stage  # noqa: PLC0415
    from pipeline.load.environments import declare_envs  # noqa: PLC0415
    from pipeline.load.generators import expand  # noqa: PLC0415
    from pipeline.load.manifest import read_manifest  # noqa: PLC0415

    base = posixpath.dirname(relpath) or "."
    spec, doc = read_manifest(root / relpath, memo)
    if spec.docker_env is not None:
        raise doc.error(
            ("docker_env",),
            "docker_env is not supported",
            "use python_env or conda_env; stages run in local envs",
            at_key=True,
        )
    envs = declare_envs(doc, spec)
    _check_entry_envs(doc, spec.entry_points, envs)
    context = base_context(doc, files, spec.vars, base=base)
    stages: dict[str, Stage] = {}
    for name, entry in spec.stages.items():
        for definition in expand(doc, name, entry, context):
            if definition.name in stages:
                raise doc.error(
                    definition.loc,
                    f"two stages are named {definition.name!r}",
                    "make foreach keys or matrix values distinct",
                )
            stages[definition.name] = build_stage(doc, definition, files, envs, base=base)
    build_graph(stages, doc)  # conflicts and cycles are reported with their manifest line
    top = _render_top(doc, _top_sections(spec), context.data)
    own = {
        "name": spec.name,
        "params_files": [
            _top_path(doc, ("params", i), p, base) for i, p in enumerate(top["params"])
        ],
        "declared": _declared(doc, top, base).to_json(),
        "parameters": {k: v.model_dump(exclude_none=True) for k, v in spec.parameters.items()},
        "entry_points": {k: v.model_dump() for k, v in spec.entry_points.items()},
    }
    if base == ".":
        return own, envs, stages
    return own, *prefixed(relpath, envs, stages)


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


def _declared(doc: YamlDoc, top: dict[str, Any], base: str) -> Declared:
    """Rendered top-level sections as values, their paths made project-relative like stage
    paths (relative to the manifest's folder)."""
    metrics = [_top_path(doc, ("metrics", i), p, base) for i, p in enumerate(top["metrics"])]
    artifacts = [
        ArtifactDecl(
            name,
            **{
                **a,
                "path": _top_path(doc, ("artifacts", name, "path"), a["path"], base),
                "labels": tuple(a["labels"]),
            },
        )
        for name, a in top["artifacts"].items()
    ]
    plots = [PlotDecl(_plot_id(k, base), v) for entry in top["plots"] for k, v in entry.items()]
    return Declared(
        metrics=tuple(dict.fromkeys(metrics)), plots=tuple(plots), artifacts=tuple(artifacts)
    )


def _plot_id(key: str, base: str) -> str:
    """A plot names a data file (made project-relative) or is an id (kept; DVC's rule: an id
    has no file behind it, and this guess is only about where the file would be)."""
    if base == "." or ("/" not in key and "." not in key):
        return key
    return posixpath.normpath(posixpath.join(base, key))


def _top_path(doc: YamlDoc, loc: tuple[str | int, ...], raw: Any, base: str = ".") -> str:
    if not isinstance(raw, str):  # a template rendered to a number or a mapping
        raise doc.error(loc, f"expected a path, got {raw!r}")
    try:
        return normalize(raw if base == "." else posixpath.join(base, raw))
    except PathRuleError as exc:
        raise doc.error(loc, str(exc), "paths are relative to the manifest's folder") from None


def prefixed(
    relpath: str, envs: dict[str, EnvDecl], stages: dict[str, Stage]
) -> tuple[dict[str, EnvDecl], dict[str, Stage]]:
    """A manifest below the root: its stages (and groups, environments) named `relpath:name`,
    as DVC addresses them, so two files may both have a `train`; env files under its folder."""
    base = posixpath.dirname(relpath)
    renamed = {
        f"{relpath}:{n}": replace(
            e, name=f"{relpath}:{n}", file=e.file and posixpath.normpath(f"{base}/{e.file}")
        )
        for n, e in envs.items()
    }
    return renamed, {
        f"{relpath}:{name}": replace(
            stage,
            name=f"{relpath}:{name}",
            group=stage.group and f"{relpath}:{stage.group}",
            env=stage.env and f"{relpath}:{stage.env}",
        )
        for name, stage in stages.items()
    }


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
