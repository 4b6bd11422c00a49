"""What a project declares to plot: DVC's top-level `plots:` and stage `plots:` outputs.

A top-level entry is a data file (or a folder of them), or an id with `y: {file: [fields]}`
naming the files; `x`, `x_label`, `y_label`, `title` and `template` say how to draw it. A stage
`plots:` output is drawn with the defaults. Everything is validated here, so a bad definition
fails before any file is read, naming the manifest that declares it. That includes the project's
path rule (`core/paths.py`): a plot file is never absolute, never `..` out of the project, and
never a symlink (or below one) leading outside it, since its contents end up in a page that is
shared.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.paths import Bounds, PathRuleError, normalize
from pipeline.core.suggest import suggest_name
from pipeline.errors import ManifestError, OutsideProject, UsageError
from pipeline.load.project import Project

TEMPLATES = (
    "linear",
    "simple",
    "scatter",
    "smooth",
    "confusion",
    "confusion_normalized",
    "bar_horizontal",
    "bar_horizontal_sorted",
)
IMAGE = "image"  # not a template: an image file is shown as it is
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}
DATA_TYPES = (".tsv", ".csv", ".json", ".yaml", ".yml")


@dataclass(frozen=True)
class PlotDef:
    """One plot: the fields it draws from each file, and how (a template name or `image`).

    `y` pairs each file with its fields (none: the file's last column); `x` pairs a file with
    its x field (a file not listed gets `step`, the row index, as in DVC).
    """

    id: str
    y: tuple[tuple[str, tuple[str, ...]], ...]
    x: tuple[tuple[str, str], ...] = ()
    template: str = "linear"
    title: str | None = None
    x_label: str | None = None
    y_label: str | None = None
    source: str = ""  # the manifest (or stage) that declares it, for messages and the page

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(file for file, _ in self.y)

    def x_of(self, file: str) -> str | None:
        return dict(self.x).get(file)


def logged_plot(key: str) -> PlotDef:
    """How a metric logged from code (`pipeline.track`) is drawn: its value by step."""
    return PlotDef(
        id=key,
        y=((key, (key,)),),
        x=((key, "step"),),
        title=key,
        x_label="step",
        y_label=key,
        source="logged from code",
    )


def definitions(project: Project, targets: Sequence[str] = ()) -> list[PlotDef]:
    """Every plot the project declares (top-level first, then stage outputs not already
    declared), or those whose id or a file matches one of `targets`."""
    manifest = _display(project)
    found = [p for d in project.declared.plots for p in _top(project.root, d.id, d.props, manifest)]
    seen = {f for p in found for f in p.files}
    for name, stage in project.stages.items():
        for out in stage.outs:
            if out.kind == "plots" and out.path not in seen:
                found.extend(_stage_plot(project.root, out.path, dict(out.plot), name))
    return _select(found, targets)


def _display(project: Project) -> str:
    try:
        return project.manifest.relative_to(project.root).as_posix()
    except ValueError:
        return str(project.manifest)


def _top(root: Path, key: str, props: Mapping[str, Any], manifest: str) -> list[PlotDef]:
    template = props.get("template") or "linear"
    if template not in TEMPLATES:
        raise ManifestError(
            f"{manifest}: plot {key!r}: unknown template {template!r}",
            suggest_name(str(template), list(TEMPLATES), f"use one of {', '.join(TEMPLATES)}"),
        )
    if isinstance(props.get("y"), dict):  # an id: `y` names the files
        y = tuple((_inside(root, str(f), manifest), _fields(v)) for f, v in props["y"].items())
        return [_made(key, y, props, manifest)]
    return _expand(root, _inside(root, key, manifest), props, manifest)


def _stage_plot(root: Path, path: str, props: Mapping[str, Any], stage: str) -> list[PlotDef]:
    """A stage's `plots:` out, drawn as its entry says (`x`, `y`, `template`, titles)."""
    template = props.get("template") or "linear"
    if template not in TEMPLATES:
        raise ManifestError(
            f"stage {stage}: plot {path!r}: unknown template {template!r}",
            suggest_name(str(template), list(TEMPLATES), f"use one of {', '.join(TEMPLATES)}"),
        )
    source = f"stage {stage}"
    return _expand(root, _inside(root, path, source), props, source)


def _expand(root: Path, path: str, props: Mapping[str, Any], source: str) -> list[PlotDef]:
    """A data file, an image, or a folder of them (each file its own plot, as in DVC)."""
    folder = root / path
    files = (
        sorted(
            _inside(root, p.relative_to(root).as_posix(), source)
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in (*DATA_TYPES, *IMAGE_TYPES)
        )
        if folder.is_dir()
        else [path]
    )
    fields = _fields(props.get("y"))
    return [_made(f, ((f, fields),), props, source) for f in files]


def _inside(root: Path, path: str, source: str) -> str:
    """`path` normalised, once it and what it links to lie inside the project."""
    try:
        norm = normalize(path)
    except PathRuleError as exc:
        raise ManifestError(
            f"{source}: plot {path!r}: {exc}",
            "plot files are paths relative to the project root, inside it",
        ) from None
    try:
        Bounds(root).path(norm)
    except OutsideProject as exc:
        raise OutsideProject(f"{source}: plot {exc.message}", exc.hint) from None
    return norm


def _made(
    key: str, y: tuple[tuple[str, tuple[str, ...]], ...], props: Mapping[str, Any], source: str
) -> PlotDef:
    image = len(y) == 1 and posixpath.splitext(y[0][0])[1].lower() in IMAGE_TYPES
    return PlotDef(
        id=key,
        y=y,
        x=_x(props.get("x"), [f for f, _ in y]),
        template=IMAGE if image else props.get("template") or "linear",
        title=props.get("title"),
        x_label=props.get("x_label"),
        y_label=props.get("y_label"),
        source=source,
    )


def _fields(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)


def _x(value: Any, files: Iterable[str]) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        return tuple((str(f), str(v)) for f, v in value.items())
    return tuple((f, str(value)) for f in files)


def _select(plots: list[PlotDef], targets: Sequence[str]) -> list[PlotDef]:
    if not targets:
        return plots
    wanted = {posixpath.normpath(t) for t in targets}
    chosen = [p for p in plots if p.id in wanted or wanted & set(p.files)]
    unknown = wanted - {p.id for p in chosen} - {f for p in chosen for f in p.files}
    if unknown:
        known = sorted({p.id for p in plots} | {f for p in plots for f in p.files})
        name = sorted(unknown)[0]
        fallback = (
            f"declared: {', '.join(known)}"
            if known
            else "declare plots in the manifest's top-level `plots:` or a stage's `plots:`"
        )
        raise UsageError(f"no plot {name!r} is declared", suggest_name(name, known, fallback))
    return chosen
