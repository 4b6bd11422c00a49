"""Writing charts: one self-contained HTML page, or PNG/SVG files rendered by vl-convert.

The page inlines Vega, Vega-Lite and vega-embed from vl-convert's JavaScript bundle, so it
draws with no network at all (DVC's page loads them from a CDN and is blank offline). Making
the bundle takes a couple of seconds, so it is kept in a cache folder, one file per version.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.core.atomic import atomic_write_bytes, atomic_write_text
from pipeline.errors import UsageError
from pipeline.plots.charts import Chart, Image
from pipeline.plots.page import PAGE

DEFAULT_DIR = "pipeline_plots"  # like DVC's `dvc_plots/`
Step = Callable[[str], None]


def vl_convert() -> Any:
    """The vl-convert module, or a usage error telling how to install it."""
    try:
        import vl_convert  # noqa: PLC0415 - an optional extra, loaded only to write plots
    except ImportError:
        raise UsageError(
            "writing plots needs vl-convert-python, which is not installed",
            "pip install 'pipeline[plots]'",
        ) from None
    return vl_convert


def bundle(cache_dir: Path | None) -> str:
    """vl-convert's JavaScript bundle (Vega, Vega-Lite, vega-embed on `window`), cached."""
    vlc = vl_convert()
    cached = None if cache_dir is None else cache_dir / f"vega-bundle-{_version(vlc)}.js"
    if cached is not None and cached.is_file():
        return cached.read_text(encoding="utf-8")
    text: str = vlc.javascript_bundle()
    if cached is not None:
        atomic_write_text(cached, text, durable=False)  # a cache: lost, it is made again
    return text


def _version(vlc: Any) -> str:
    return f"{getattr(vlc, '__version__', '0')}-vl{vlc.get_vegalite_versions()[-1]}"


def write_html(
    charts: Sequence[Chart],
    out_dir: Path,
    *,
    heading: str = "Plots",
    cache_dir: Path | None = None,
    step: Step | None = None,
) -> Path:
    """`out_dir/index.html`: every chart with its title and source files, drawn offline."""
    (step or _quiet)("bundling Vega-Lite")
    script = bundle(cache_dir)
    # the card's heading shows the title: the chart itself does not repeat it
    specs = [
        [f"vis-{i}", {k: v for k, v in c.spec.items() if k != "title"}]
        for i, c in enumerate(charts)
        if c.spec is not None
    ]
    values = {
        "title": html.escape(heading),
        "header": _header(heading, charts),
        "sections": "\n".join(_section(i, c) for i, c in enumerate(charts)),
        "specs": _json_safe(json.dumps(specs)),
        "bundle": _script_safe(script),
    }
    # one pass, so a placeholder-like text inside a value (a title) is never filled in
    filled = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m[1]], PAGE)
    path = out_dir / "index.html"
    (step or _quiet)(f"writing {path}")
    atomic_write_text(path, filled)
    return path


def _quiet(_: str) -> None:
    pass


def _json_safe(text: str) -> str:
    """JSON that cannot end the <script> element it sits in (`\\u003c` is `<` to JSON)."""
    return text.replace("<", "\\u003c")


def _script_safe(code: str) -> str:
    """JavaScript that cannot end its <script> element; only a literal `</script` could, and
    there it sits in a string (`<\\/` is the same string), so other code is left as it is."""
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)


def _header(heading: str, charts: Sequence[Chart]) -> str:
    revs = list(dict.fromkeys(r for c in charts for r in c.revs))
    links = "".join(
        f'<li><a href="#plot-{i}">{html.escape(c.title)}</a></li>' for i, c in enumerate(charts)
    )
    return (
        f"<h1>{html.escape(heading)}</h1>"
        f'<p class="meta">{len(charts)} plot{"s" if len(charts) != 1 else ""} · '
        f"{'revisions' if len(revs) > 1 else 'revision'}: "
        f"{', '.join(f'<b>{html.escape(r)}</b>' for r in revs) or 'none'}</p>"
        f"<nav><ol>{links}</ol></nav>"
    )


def _section(index: int, chart: Chart) -> str:
    plot = chart.plot
    files = ", ".join(f"<code>{html.escape(f)}</code>" for f in plot.files)
    template = "image" if chart.spec is None else f"template <code>{plot.template}</code>"
    notes = "".join(f"<li>{html.escape(m)}: not there</li>" for m in chart.missing)
    body = (
        f'<div class="vis" id="vis-{index}"></div>'
        if chart.spec is not None
        else "".join(_figure(img, len(chart.images) > 1) for img in chart.images)
    )
    return (
        f'<section class="plot" id="plot-{index}"><h2>{html.escape(chart.title)}</h2>'
        f'<p class="src">{files} · {template} · from {html.escape(plot.source)}</p>'
        f"{f'<ul class=missing>{notes}</ul>' if notes else ''}{body}</section>"
    )


def _figure(image: Image, captioned: bool) -> str:
    data = base64.b64encode(image.data).decode("ascii")
    caption = f"<figcaption>{html.escape(image.rev)}</figcaption>" if captioned else ""
    return (
        f'<figure><img alt="{html.escape(image.file)}" '
        f'src="data:{image.mime};base64,{data}">{caption}</figure>'
    )


def write_images(
    charts: Sequence[Chart], out_dir: Path, fmt: str, *, step: Step | None = None
) -> list[Path]:
    """A `.png` or `.svg` per chart (image plots: their files as they are), named by plot."""
    vlc = vl_convert() if any(c.spec is not None for c in charts) else None
    written: list[Path] = []
    names: set[str] = set()
    for chart in charts:
        (step or _quiet)(f"rendering {chart.title}")
        for name, data in _renderings(vlc, chart, fmt):
            path = out_dir / _unique(name, names)
            atomic_write_bytes(path, data)
            written.append(path)
    return written


def _renderings(vlc: Any, chart: Chart, fmt: str) -> list[tuple[str, bytes]]:
    slug = _slug(chart.plot.id)
    if chart.spec is None:
        several = len(chart.images) > 1
        return [
            (
                f"{slug}-{_slug(i.rev)}{Path(i.file).suffix}"
                if several
                else f"{slug}{Path(i.file).suffix}",
                i.data,
            )
            for i in chart.images
        ]
    if fmt == "svg":
        return [(f"{slug}.svg", vlc.vegalite_to_svg(chart.spec).encode("utf-8"))]
    return [(f"{slug}.png", bytes(vlc.vegalite_to_png(chart.spec, scale=2)))]


def _slug(name: str) -> str:
    base = re.sub(r"\.(tsv|csv|json|ya?ml|png|jpe?g|gif|svg)$", "", name, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9.-]+", "_", base).strip("_") or "plot"


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    taken.add(candidate)
    return candidate

