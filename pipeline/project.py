"""Load step ①: manifest + params → a `Project` of fully resolved, validated stages.

Everything that can be wrong with the input is found here, before anything runs: unknown
params, bad paths, two stages writing one path, cycles. Each error points at the manifest line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.graph import OutputIndex, StageGraph, build_graph
from pipeline.manifest import OutSpec, StageSpec, read_manifest
from pipeline.params import DEFAULT_PARAMS_FILE, ParamsFile, flatten, load_params_file, lookup
from pipeline.params import suggest as suggest_param
from pipeline.paths import PathRuleError, normalize
from pipeline.template import TemplateError, render
from pipeline.yamlio import DocumentMemo, Loc, YamlDoc

MANIFEST_NAMES = ("MLproject",)
STATE_DIR = ".pipeline"


@dataclass(frozen=True)
class Out:
    """A resolved output: normalised path plus flags; `metric` marks `metrics:` entries."""

    path: str
    cache: bool = True
    persist: bool = False
    metric: bool = False
    loc: Loc = field(default=(), compare=False)


@dataclass(frozen=True)
class Stage:
    """A stage ready to plan: rendered commands, normalised paths, the param values it uses."""

    name: str
    cmd: tuple[str, ...]
    deps: tuple[str, ...]
    outs: tuple[Out, ...]
    params: dict[str, dict[str, Any]]
    desc: str | None = None

    @property
    def out_paths(self) -> tuple[str, ...]:
        return tuple(o.path for o in self.outs)


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

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR


def find_manifest(start: Path) -> Path:
    """The manifest in `start` or its nearest parent that has one."""
    start = start.resolve()
    for directory in (start, *start.parents):
        for name in MANIFEST_NAMES:
            if (directory / name).is_file():
                return directory / name
    raise UsageError(
        f"no MLproject found in {start} or any parent directory",
        "create one (see MLproject.example), or point at a project with `pipeline -C DIR`",
    )


def load_project(start: Path | str = ".", memo: DocumentMemo | None = None) -> Project:
    """Find, parse and validate the project containing `start` (a directory or manifest)."""
    start = Path(start)
    manifest = start if start.is_file() else find_manifest(start)
    spec, doc = read_manifest(manifest, memo)
    root = manifest.parent
    params = load_params_file(root, memo=memo)
    stages = {name: _resolve_stage(name, stage, params, doc) for name, stage in spec.stages.items()}
    dag, outputs = build_graph(stages, doc)
    return Project(root, manifest, spec.name, stages, dag, outputs, doc)


def _resolve_stage(name: str, spec: StageSpec, params: ParamsFile | None, doc: YamlDoc) -> Stage:
    loc: Loc = ("stages", name)
    context = params.data if params else {}
    used: dict[str, Any] = {}
    cmd = tuple(_render(doc, (*loc, "cmd"), c, context, used, quote=True) for c in spec.cmd)
    deps = tuple(
        dict.fromkeys(
            _path(doc, (*loc, "deps", i), _render(doc, (*loc, "deps", i), d, context, used))
            for i, d in enumerate(spec.deps)
        )
    )
    outs = _outs(doc, loc, spec, context, used)
    for i, key in enumerate(spec.params):
        used.update(_param(doc, (*loc, "params", i), key, params))
    tracked = {DEFAULT_PARAMS_FILE: dict(sorted(used.items()))} if used else {}
    return Stage(name, cmd, deps, outs, tracked, spec.desc)


def _outs(
    doc: YamlDoc, loc: Loc, spec: StageSpec, context: dict[str, Any], used: dict[str, Any]
) -> tuple[Out, ...]:
    outs: list[Out] = []
    for kind, entries in (("outs", spec.outs), ("metrics", spec.metrics)):
        for i, entry in enumerate(entries):
            where = (*loc, kind, i)
            path = _path(doc, where, _render(doc, where, entry.path, context, used))
            outs.append(_out(path, entry, kind == "metrics", where))
    return tuple(outs)


def _out(path: str, entry: OutSpec, metric: bool, loc: Loc) -> Out:
    return Out(path, cache=entry.cache, persist=entry.persist, metric=metric, loc=loc)


def _render(
    doc: YamlDoc,
    loc: Loc,
    text: str,
    context: dict[str, Any],
    used: dict[str, Any],
    *,
    quote: bool = False,
) -> str:
    try:
        rendered = render(text, context, quote=quote)
    except TemplateError as exc:
        hint = suggest_param(exc.key, context) if context else None
        raise doc.error(loc, exc.reason, hint or _no_params_hint(context)) from None
    for key in rendered.keys:
        used.update(flatten(key, lookup(context, key)))
    return rendered.text


def _no_params_hint(context: dict[str, Any]) -> str | None:
    return None if context else f"define it in {DEFAULT_PARAMS_FILE} next to the manifest"


def _path(doc: YamlDoc, loc: Loc, raw: str) -> str:
    try:
        return normalize(raw)
    except PathRuleError as exc:
        raise doc.error(loc, str(exc), "paths are relative to the project root") from None


def _param(doc: YamlDoc, loc: Loc, key: str, params: ParamsFile | None) -> dict[str, Any]:
    if params is None:
        raise doc.error(
            loc,
            f"stage uses param {key!r} but {DEFAULT_PARAMS_FILE} does not exist",
            f"create {DEFAULT_PARAMS_FILE} next to the manifest",
        )
    try:
        return flatten(key, lookup(params.data, key))
    except KeyError:
        raise doc.error(
            loc, f"param {key!r} not found in {params.name}", suggest_param(key, params.data)
        ) from None
