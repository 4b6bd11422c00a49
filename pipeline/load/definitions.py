"""From a stage definition to a runnable `Stage`: context, templates, validation, paths, params.

Order matters and follows DVC: `wdir` is rendered with the global context; stage `vars` (files
relative to `wdir`) are merged next; then every other field is rendered, validated, and its
paths made project-relative through `wdir`. A manifest below the project root has its `wdir`
(and so its paths) relative to its own folder; they may leave that folder, not the project.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.core.paths import PathRuleError, normalize
from pipeline.core.stage import Out, Stage
from pipeline.core.yamlio import DocumentMemo, Loc, YamlDoc
from pipeline.load.context import INLINE, Context, ContextError
from pipeline.load.dvcparsing import CONFIG_FILES, read_parsing
from pipeline.load.environments import EnvDecl, stage_env
from pipeline.load.generators import Definition
from pipeline.load.manifest import OutSpec, PlotSpec, StageSpec, validate_stage
from pipeline.load.params import (
    DEFAULT_PARAMS_FILE,
    ParamsFile,
    flatten,
    flatten_all,
    load_params_file,
    lookup,
)
from pipeline.load.params import suggest as suggest_param
from pipeline.load.projectmemo import Stat, stat_of
from pipeline.load.template import Parsing, TemplateError, interpolate, rename_keys, render

DVC_MANIFEST = "dvc.yaml"  # its commands are rendered raw, as DVC renders them


class ParamsFiles:
    """Params files by project-relative path, each read once per load."""

    def __init__(self, root: Path, memo: DocumentMemo | None) -> None:
        self.root = root
        self.memo = memo
        self._files: dict[str, ParamsFile | None] = {}
        self._parsing: Parsing | None = None
        self.consulted: dict[str, Stat] = {}  # what the project memo must check next time

    def get(self, relpath: str) -> ParamsFile | None:
        if relpath not in self._files:
            self.consulted[relpath] = stat_of(self.root / relpath)
            self._files[relpath] = load_params_file(self.root, relpath, self.memo)
        return self._files[relpath]

    def parsing(self) -> Parsing:
        """`.dvc/config`'s `[parsing]` section, read once (and re-checked by the memo)."""
        if self._parsing is None:
            for relpath in CONFIG_FILES:
                self.consulted[relpath] = stat_of(self.root / relpath)
            self._parsing = read_parsing(self.root)
        return self._parsing


def base_context(
    doc: YamlDoc, files: ParamsFiles, top_vars: list[Any], *, base: str = "."
) -> Context:
    """params.yaml next to the manifest (if any), then the top-level `vars`; `base` is the
    manifest's folder, project-relative."""
    context = Context()
    relpath = _under(base, DEFAULT_PARAMS_FILE)
    params = files.get(relpath)
    if params is not None:
        context = context.merge(params.data, relpath, relpath)
    return merge_vars(doc, ("vars",), context, top_vars, base=base, files=files)


def merge_vars(
    doc: YamlDoc, loc: Loc, context: Context, items: list[Any], *, base: str, files: ParamsFiles
) -> Context:
    """Merge `vars` items: inline mappings, `file` or `file:key1,key2` (relative to `base`)."""
    for i, item in enumerate(items):
        where = (*loc, i)
        try:
            if isinstance(item, dict):
                context = context.merge(item, INLINE, f"vars[{i}]")
            else:
                relpath, keys, values = _vars_file(doc, where, str(item), base, files)
                context = context.merge(values, relpath, relpath, keys=keys, item=str(item))
        except ContextError as exc:
            raise doc.error(where, str(exc), "rename one of the two values") from None
    return context


def _vars_file(
    doc: YamlDoc, loc: Loc, item: str, base: str, files: ParamsFiles
) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
    """The file's path, the keys selected (None: all of it) and the values they hold."""
    name, _, keys = item.partition(":")
    relpath = _path(doc, loc, _under(base, name))
    params = files.get(relpath)
    if params is None:
        raise doc.error(loc, f"vars file {relpath} does not exist")
    wanted = [k.strip() for k in keys.split(",") if k.strip()]
    if not wanted:
        return relpath, None, params.data
    missing = [k for k in wanted if k not in params.data]
    if missing:
        raise doc.error(
            loc,
            f"could not find {missing[0]!r} in {relpath}",
            suggest_param(missing[0], params.data),
        )
    return relpath, tuple(wanted), {k: params.data[k] for k in wanted}


def build_stage(
    doc: YamlDoc,
    definition: Definition,
    files: ParamsFiles,
    envs: dict[str, EnvDecl],
    *,
    base: str = ".",
) -> Stage:
    """Render and validate one definition into a `Stage`; `envs` are the declared environments,
    `base` the manifest's folder (its `wdir` and paths are relative to it)."""
    body, loc = definition.body, definition.loc
    keys: list[str] = []
    wdir = _wdir(doc, loc, body, definition.context, keys, base)
    items = _vars_list(doc, loc, body)
    context = merge_vars(doc, (*loc, "vars"), definition.context, items, base=wdir, files=files)
    dvc = doc.path.name == DVC_MANIFEST
    raw = files.parsing() if dvc else None
    rendered = _render_body(doc, loc, body, context, keys, raw=raw)
    spec = validate_stage(doc, loc, rendered)
    declared, missing = _declared_params(doc, loc, spec, wdir, files, lenient=dvc)
    params = _merge_params(context.tracked(keys), declared)
    return Stage(
        name=definition.name,
        cmd=spec.cmd,
        deps=tuple(
            dict.fromkeys(
                _path(doc, (*loc, "deps", i), _under(wdir, d)) for i, d in enumerate(spec.deps)
            )
        ),
        outs=_outs(doc, loc, spec, wdir),
        params=params,
        desc=spec.desc,
        # with items named by their origin, so a plan can render the cmd with old param values
        cmd_template=tuple(rename_keys(t, context.unalias) for t in _as_tuple(body.get("cmd"))),
        context=context.data,
        cmd_style=raw.style if raw is not None else "",
        wdir=wdir,
        cpus=spec.resources.cpus,
        resources=spec.resources.requests(),
        timeout=spec.timeout,
        retries=spec.retries,
        frozen=spec.frozen,
        always_changed=spec.always_changed,
        group=definition.group,
        env=stage_env(doc, loc, spec.env, envs),
        missing_params=missing,
    )


def _vars_list(doc: YamlDoc, loc: Loc, body: dict[str, Any]) -> list[Any]:
    items = body.get("vars") or []
    if not isinstance(items, list):
        raise doc.error((*loc, "vars"), "expected a list of files or mappings")
    return items


def _wdir(  # noqa: PLR0917 (like _render, plus the manifest's folder)
    doc: YamlDoc, loc: Loc, body: dict[str, Any], context: Context, keys: list[str], base: str
) -> str:
    """The stage's working directory, project-relative ("." is the root): `wdir: ../..` in
    `pipelines/train/dvc.yaml` is the root, one more `..` would leave the repository."""
    raw = body.get("wdir", ".")
    if not isinstance(raw, str):
        raise doc.error((*loc, "wdir"), "expected a directory path")
    text = str(_render(doc, (*loc, "wdir"), raw, context, keys, quote=False)) or "."
    joined = _under(base, text)
    if posixpath.normpath(joined) == ".":
        return "."
    return _path(doc, (*loc, "wdir"), joined)


def _render_body(
    doc: YamlDoc,
    loc: Loc,
    body: dict[str, Any],
    context: Context,
    keys: list[str],
    *,
    raw: Parsing | None,
) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    for field, value in body.items():
        where = (*loc, field)
        if field in ("vars", "wdir"):
            rendered[field] = value
        elif field == "cmd" and isinstance(value, (str, list)):
            rendered[field] = _render_cmd(doc, where, value, context, keys, raw=raw)
        else:
            try:
                result = interpolate(value, context.data)
            except TemplateError as exc:
                raise _template_error(doc, where, exc, context) from None
            keys.extend(result.keys)
            rendered[field] = result.value
    return rendered


def _render_cmd(
    doc: YamlDoc, loc: Loc, value: Any, context: Context, keys: list[str], *, raw: Parsing | None
) -> Any:
    if isinstance(value, str):
        return _render(doc, loc, value, context, keys, quote=True, raw=raw)
    return [
        _render(doc, (*loc, i), v, context, keys, quote=True, raw=raw) if isinstance(v, str) else v
        for i, v in enumerate(value)
    ]


def _render(
    doc: YamlDoc,
    loc: Loc,
    text: str,
    context: Context,
    keys: list[str],
    *,
    quote: bool,
    raw: Parsing | None = None,
) -> Any:
    try:
        result = render(text, context.data, quote=quote, raw=raw)
    except TemplateError as exc:
        raise _template_error(doc, loc, exc, context) from None
    keys.extend(result.keys)
    return result.value


def _template_error(doc: YamlDoc, loc: Loc, exc: TemplateError, context: Context) -> Exception:
    hint = exc.hint
    if hint is None and context.data and exc.key and not _defined(context, exc.key):
        hint = suggest_param(exc.key, context.data)
    if hint is None and not context.data:
        hint = f"define it in {DEFAULT_PARAMS_FILE} next to the manifest, or under `vars`"
    return doc.error(loc, exc.reason, hint)


def _defined(context: Context, key: str) -> bool:
    try:
        lookup(context.data, key)
    except KeyError:
        return False
    return True


def _declared_params(
    doc: YamlDoc, loc: Loc, spec: StageSpec, wdir: str, files: ParamsFiles, *, lenient: bool
) -> tuple[dict[str, dict[str, Any]], tuple[str, ...]]:
    """The stage's `params:` entries, as {file: {leaf key: value}}, and the missing `file:key`s.

    In a dvc.yaml (`lenient`) a key missing from its file fails only this stage, when it runs,
    as in DVC; in an MLproject it is a manifest error, with its line and a "did you mean".
    """
    tracked: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for i, entry in enumerate(spec.params):
        where = (*loc, "params", i)
        file, keys = (
            (DEFAULT_PARAMS_FILE, [entry]) if isinstance(entry, str) else next(iter(entry.items()))
        )
        relpath = _path(doc, where, _under(wdir, file))
        values = _param_values(doc, where, relpath, keys, files, lenient=lenient)
        missing += [f"{relpath}:{k}" for k in keys or () if not _has(values, k)]
        tracked.setdefault(relpath, {}).update(values)
    return tracked, tuple(missing)


def _has(values: dict[str, Any], key: str) -> bool:
    """True if `values` holds `key` or a leaf under it."""
    return key in values or any(k.startswith((key + ".", key + "[")) for k in values)


def _param_values(
    doc: YamlDoc,
    loc: Loc,
    relpath: str,
    keys: list[str] | None,
    files: ParamsFiles,
    *,
    lenient: bool,
) -> dict[str, Any]:
    params = files.get(relpath)
    if params is None:
        raise doc.error(
            loc,
            f"params file {relpath} does not exist",
            f"create {relpath}, or list the params another file holds",
        )
    if not keys:  # `file.yaml:` with no keys tracks the whole file
        return flatten_all(params.data)
    values: dict[str, Any] = {}
    for key in keys:
        try:
            values.update(flatten(key, lookup(params.data, key)))
        except KeyError:
            if lenient:
                continue  # the plan reports it, and the stage fails when it runs
            raise doc.error(
                loc, f"param {key!r} not found in {relpath}", suggest_param(key, params.data)
            ) from None
    return values


def _merge_params(*groups: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for group in groups:
        for file, values in group.items():
            merged.setdefault(file, {}).update(values)
    return {file: dict(sorted(merged[file].items())) for file in sorted(merged)}


def _outs(doc: YamlDoc, loc: Loc, spec: StageSpec, wdir: str) -> tuple[Out, ...]:
    outs: list[Out] = []
    kinds: Iterable[tuple[str, list[OutSpec]]] = (
        ("outs", spec.outs),
        ("metrics", spec.metrics),
        ("plots", list(spec.plots)),
    )
    for kind, entries in kinds:
        for i, entry in enumerate(entries):
            where = (*loc, kind, i)
            path = _path(doc, where, _under(wdir, entry.path))
            outs.append(
                Out(
                    path,
                    cache=entry.cache,
                    persist=entry.persist,
                    push=entry.push,
                    remote=entry.remote,
                    kind=kind,
                    loc=where,
                    plot=_plot_props(entry),
                )
            )
    return tuple(outs)


def _plot_props(entry: OutSpec) -> tuple[tuple[str, Any], ...]:
    """The drawing settings of a stage's `plots:` entry (none for other outs)."""
    if not isinstance(entry, PlotSpec):
        return ()
    names = ("template", "x", "y", "x_label", "y_label", "title")
    return tuple((k, v) for k in names if (v := getattr(entry, k)) is not None)


def _under(wdir: str, path: str) -> str:
    """`path` as written, seen from the project root (errors then quote it as written)."""
    return path if wdir == "." else posixpath.join(wdir, path)


def _path(doc: YamlDoc, loc: Loc, raw: str) -> str:
    try:
        return normalize(raw)
    except PathRuleError as exc:
        raise doc.error(loc, str(exc), "paths are relative to the project root") from None


def _as_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()
