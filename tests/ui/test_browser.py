"""`pipeline ui` in a real headless Chromium (offline but for loopback), over 10,000 runs.

The issue's acceptance path: load the runs page, filter, select three runs, open compare and
see their curves drawn; then the run page, the DAG and the registry. Screenshots are kept in
tests-artifacts/ (`ui-*.png`).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import browser, screenshot, wait_for  # noqa: F401 (a fixture)
from tests.ui.conftest import RUNS, Seeded, UiServer

pytestmark = pytest.mark.slow

_MARKS = """
return [...document.querySelectorAll('#curves .vis')].map(v => {
  const svg = v.querySelector('svg'), canvas = v.querySelector('canvas');
  const marks = svg ? svg.querySelectorAll('g.mark-line path').length : 0;
  return {key: v.dataset.key, marks: marks, canvas: !!canvas,
          width: (svg || canvas || v).getBoundingClientRect().width};
});
"""


def _type(driver: Any, text: str) -> None:
    box = driver.find_element("css selector", "input[type=search]")
    box.clear()
    if text:
        box.send_keys(text)


def _count(driver: Any) -> str:
    return str(driver.find_element("css selector", ".toolbar .count").text)


def _rows(driver: Any) -> list[str]:
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll('tbody tr[data-id]')].map(r => r.dataset.id)"
        )
    )


def test_runs_filter_select_compare(browser: Any, ui: UiServer, seeded: Seeded) -> None:  # noqa: F811
    browser.get(ui.url)
    wait_for(browser, "document.body.dataset.ready === 'runs'")
    assert _count(browser) == f"{RUNS + 1:,} runs"
    assert 20 < len(_rows(browser)) < 120  # only a screenful is in the DOM
    screenshot(browser, "ui-runs")

    _type(browser, "lr>=0.03 model=forest")
    wait_for(browser, "document.querySelector('.toolbar .count').textContent.includes(' of ')")
    shown = int(_count(browser).split(" of ")[0].replace(",", ""))
    assert 0 < shown < RUNS // 2
    cells = browser.execute_script(
        "return [...document.querySelectorAll('tbody tr[data-id]')].slice(0, 20)"
        ".map(r => [...r.children].map(c => c.textContent))"
    )
    heads = browser.execute_script(
        "return [...document.querySelectorAll('thead tr.names th')].map(t => t.title)"
    )
    lr, model = heads.index("train.lr"), heads.index("model")
    assert all(float(row[lr]) >= 0.03 and row[model] == "forest" for row in cells)
    screenshot(browser, "ui-runs-filtered")

    chosen = seeded.with_history[1:4]
    for run_id in chosen:
        _type(browser, run_id)
        wait_for(browser, f"document.querySelector('input[data-id=\"{run_id}\"]') !== null")
        browser.find_element("css selector", f'input[data-id="{run_id}"]').click()
    _type(browser, "")
    button = browser.find_element("id", "compare-selected")
    assert button.text == "Compare 3 runs"
    button.click()
    wait_for(browser, "document.body.dataset.ready === 'compare'")
    drawn = browser.execute_script(_MARKS)
    assert {d["key"] for d in drawn} == {"train_loss", "val_loss"}
    assert all(d["marks"] >= 3 or d["canvas"] for d in drawn), drawn  # a line per run
    assert all(d["width"] > 200 for d in drawn), drawn
    rows = browser.find_elements("css selector", ".card table tbody tr")
    assert len(rows) == 3
    screenshot(browser, "ui-compare")


def test_run_page(browser: Any, ui: UiServer, seeded: Seeded) -> None:  # noqa: F811
    browser.get(ui.url + "#/run/showcase")
    wait_for(browser, "document.body.dataset.ready === 'run'")
    stages = browser.find_elements("css selector", ".card table tbody tr")
    text = browser.find_element("tag name", "main").text
    for expected in ("showcase", "prepare", "train", "param train.lr 0.1 → 0.03", "Lineage"):
        assert expected in text
    bars = browser.execute_script("return document.querySelectorAll('svg.timeline rect').length")
    assert bars == 3  # the stages that ran (prepare was up to date)
    nodes = browser.execute_script("return document.querySelectorAll('.graph g.node').length")
    assert nodes >= 8  # 5 files and 4 stage runs, back to data/raw.csv
    assert stages
    browser.find_element("xpath", "//tr[td/b[text()='train']]//button").click()
    wait_for(browser, "document.querySelector('pre.log') !== null")
    assert "fitting 100 trees" in browser.find_element("css selector", "pre.log").text
    wait_for(browser, "document.querySelectorAll('#curves .vis svg').length === 2")
    screenshot(browser, "ui-run")


def test_dag_and_registry(browser: Any, ui: UiServer) -> None:  # noqa: F811
    browser.get(ui.url + "#/dag")
    wait_for(browser, "document.body.dataset.ready === 'dag'")
    labels = browser.execute_script(
        "return [...document.querySelectorAll('#dag g.node text:first-of-type')]"
        ".map(t => t.textContent)"
    )
    assert labels == ["prepare", "featurize", "train", "evaluate"]
    edges = browser.execute_script("return document.querySelectorAll('#dag svg > path').length")
    assert edges == 4
    screenshot(browser, "ui-dag")

    browser.get(ui.url + "#/models")
    wait_for(browser, "document.body.dataset.ready === 'models'")
    assert "champion → v2" in browser.find_element("id", "models").text
    browser.find_element("link text", "churn-classifier").click()
    wait_for(browser, "document.body.dataset.ready === 'model'")
    versions = browser.find_elements("css selector", "#versions tbody tr")
    history = browser.find_element("id", "history").text
    assert len(versions) == 2
    assert "@champion: - → v2" in history and "beats v1 on accuracy" in history
    screenshot(browser, "ui-model")


def test_bad_route_shows_a_message(browser: Any, ui: UiServer) -> None:  # noqa: F811
    browser.get(ui.url + "#/run/no-such-run")
    wait_for(browser, "document.body.dataset.ready === 'error'")
    card = browser.find_element("css selector", ".card.error").text
    assert "no run 'no-such-run'" in card and "pipeline runs" in card
