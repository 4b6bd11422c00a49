"""What `plots show` writes: one self-contained page; PNG and SVG files that are images."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from pipeline import plots
from pipeline.load.project import load_project
from tests.conftest import Project, cli_env

pytest.importorskip("vl_convert", reason="needs vl-convert-python (plots extra)")


def _charts(project: Project) -> list[plots.Chart]:
    revision = plots.workspace_revision(project.root)
    return plots.collect(load_project(project.root), [revision])


def test_the_page_needs_no_network(plotted: Project, tmp_path: Path) -> None:
    page = plots.write_html(_charts(plotted), tmp_path / "out", cache_dir=tmp_path / "cache")
    text = page.read_text(encoding="utf-8")
    assert re.search(r"<(script|link|img)[^>]+(src|href)=\"https?:", text) is None
    assert "window.vegaEmbed=" in text
    for title in ("Loss by epoch", "Confusion matrix", "plots/accuracy.csv"):
        assert title in text
    assert "data:image/png;base64," in text
    assert list((tmp_path / "cache").glob("vega-bundle-*.js"))  # kept for the next page


def test_png_and_svg_files_are_images(plotted: Project, tmp_path: Path) -> None:
    charts = _charts(plotted)
    pngs = plots.write_images(charts, tmp_path / "png", "png")
    assert len(pngs) == len(charts)
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    svgs = [p for p in plots.write_images(charts, tmp_path / "svg", "svg") if p.suffix == ".svg"]
    assert len(svgs) == len(charts) - 1  # the image plot is copied as it is
    for svg in svgs:
        assert ElementTree.parse(svg).getroot().tag.endswith("svg")


@pytest.mark.slow
def test_the_cli_writes_the_page_and_json(plotted: Project) -> None:
    done = plotted.cli("plots", "show")
    assert done.returncode == 0, done.stderr
    assert (plotted.root / "pipeline_plots" / "index.html").is_file()
    listed = plotted.cli("plots", "diff", "HEAD", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"revs": [\n      "HEAD",\n      "workspace"\n    ]' in listed.stdout


def test_without_vl_convert_the_error_says_what_to_install(plotted: Project) -> None:
    blocker = (
        "import sys; sys.modules['vl_convert'] = None; from pipeline.cli.main import run; run()"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker, "-C", str(plotted.root), "plots", "show"],
        capture_output=True, text=True, env=cli_env(), check=False, cwd=plotted.root,
    )  # fmt: skip
    assert done.returncode == 2
    assert "pip install 'pipeline[plots]'" in done.stderr


@pytest.mark.slow
def test_diff_of_two_recorded_runs_reads_the_cache(project: Project) -> None:
    cmd = "mkdir -p out && python3 -c \"n = int(open('n.txt').read()); "
    cmd += (
        "open('out/acc.csv', 'w').write('acc\\\\n' + ''.join(f'{i * n}\\\\n' for i in range(3)))\""
    )
    project.write("dvc.yaml", f"stages:\n  train:\n    cmd: {json.dumps(cmd)}\n"
                  "    deps: [n.txt]\n    plots: [out/acc.csv]\n")  # fmt: skip
    runs = []
    for n in (1, 2):
        project.write("n.txt", f"{n}\n")
        project.repro()
        runs.append(json.loads(project.cli("runs", "--json").stdout)[0]["id"])
    done = project.cli("plots", "diff", *runs, "--json")
    assert done.returncode == 0, done.stderr
    (chart,) = json.loads(done.stdout)
    values = [(v["rev"], v["y"]) for v in chart["spec"]["data"]["values"]]
    assert values == [
        (runs[0], 0),
        (runs[0], 1),
        (runs[0], 2),
        (runs[1], 0),
        (runs[1], 2),
        (runs[1], 4),
    ]
