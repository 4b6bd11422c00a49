"""`pipeline ui` in headless Chromium: the runs page over 10,000 runs, and compare of 100 runs.

The project is `tests/ui/seed.py`'s (imported by path): 10,000 runs bulk-inserted into the run
store, each with 3 params and 3 metrics, 1 in 50 with logged histories (2 metrics, 40 steps).
`pipeline ui --port 0` runs as a subprocess; Debian's Chromium (`/usr/bin/chromium` with its
`chromedriver`, headless, 1400 by 1000) loads the pages. Each measurement starts from
`about:blank`, so it is a new navigation, and reads the page's own marks: the script marks
`ready-runs` once the first screenful of rows is drawn and wired (sortable, filterable,
selectable), and `ready-compare` once every curve is drawn. Times are from navigation start.

- `runs_first_ms`: the first load after the server printed its address (the runs table is
  being built from the store on a thread as the server starts; the page waits for it);
- `runs_page_ms`: later loads (the table is kept until the store changes);
- `filter_ms`, `sort_ms`: typing a param filter, and sorting by a metric, over all 10,000 runs
  (in-page `performance.now()` around the input event / click, which redraw synchronously);
- `compare_100_ms`: `#/compare/ID,…` of 100 runs with histories: the table and 2 charts of 100
  lines each (`/api/compare` alone: `compare_api_ms`; when its answer reached the page:
  `compare_data_ms`; when Vega, parsed meanwhile, was ready: `vega_ms`).

Each round starts a new server. Medians over the rounds are printed as a markdown table:

    python bench/ui.py [--rounds 5] [--runs 10000] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
BUDGETS = {"runs_first_ms": 1000.0, "runs_page_ms": 1000.0, "compare_100_ms": 1000.0}
COMPARED = 100


def seed_module() -> ModuleType:
    path = REPO / "tests" / "ui" / "seed.py"
    spec = importlib.util.spec_from_file_location("ui_seed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start(root: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ui", "--port", "0"],
        cwd=root,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()  # printed once the server accepts connections
    found = re.search(r"(http://\S+/)", line)
    if not found:
        raise SystemExit(f"pipeline ui did not start: {line}{process.stderr.read()}")
    return process, found[1]


def stop(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    if process.stderr is not None:
        process.stderr.close()


def chromium() -> Any:
    from selenium import webdriver  # noqa: PLC0415 - only when there is a Chromium to drive

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000", "--proxy-server=http://127.0.0.1:9"):  # fmt: skip
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    return webdriver.Chrome(options=options, service=service)


def load(driver: Any, url: str, ready: str) -> float:
    """Milliseconds from navigation start to the page's `ready-<ready>` mark."""
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415 - as above

    driver.get("about:blank")
    driver.get(url)
    WebDriverWait(driver, 120, poll_frequency=0.01).until(
        lambda d: d.execute_script(f"return document.body.dataset.ready === {ready!r}")
    )
    mark = f"return performance.getEntriesByName('ready-{ready}')[0].startTime"
    return float(driver.execute_script(mark))


FILTER = """
const box = document.querySelector('input[type=search]'), t0 = performance.now();
box.value = 'lr>=0.03 model=forest'; box.dispatchEvent(new Event('input'));
const t1 = performance.now();
box.value = ''; box.dispatchEvent(new Event('input'));
return t1 - t0;
"""
SORT = """
const th = [...document.querySelectorAll('thead tr.names th')].find(t => t.title === 'accuracy');
const t0 = performance.now(); th.click(); return performance.now() - t0;
"""


def one_round(driver: Any, root: Path, compared: list[str]) -> dict[str, float]:
    process, url = start(root)
    try:
        sample = {"runs_first_ms": load(driver, url, "runs")}
        sample["runs_page_ms"] = statistics.median(load(driver, url, "runs") for _ in range(3))
        sample["filter_ms"] = float(driver.execute_script(FILTER))
        sample["sort_ms"] = float(driver.execute_script(SORT))
        ids = ",".join(compared)
        sample["compare_100_ms"] = load(driver, f"{url}#/compare/{ids}", "compare")
        for mark, key in (("compare-data", "compare_data_ms"), ("vega-loaded", "vega_ms")):
            found = f"return performance.getEntriesByName({mark!r})[0].startTime"
            sample[key] = float(driver.execute_script(found))  # where the time went
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"{url}api/compare?runs={ids}", timeout=60) as response:
            response.read()
        sample["compare_api_ms"] = (time.perf_counter() - t0) * 1000
    finally:
        stop(process)
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        raise SystemExit("needs /usr/bin/chromium and /usr/bin/chromedriver")
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-ui-") as tmp:
        root = Path(tmp) / "churn"
        info = seed_module().make_project(root, args.runs)
        compared = info["with_history"][:COMPARED]
        driver = chromium()
        try:
            samples = [one_round(driver, root, compared) for _ in range(args.rounds)]
        finally:
            driver.quit()
    report(samples, args)


def report(samples: list[dict[str, float]], args: argparse.Namespace) -> None:
    medians = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    print(f"| `pipeline ui`, {args.runs:,} runs, {args.rounds} rounds | median | budget | result |")
    print("|---|---|---|---|")
    for key, value in medians.items():
        budget = BUDGETS.get(key)
        verdict = "" if budget is None else ("PASS" if value <= budget else "FAIL")
        limit = "" if budget is None else f"≤ {budget:.0f} ms"
        print(f"| {key} | {value:.0f} ms | {limit} | {verdict} |")
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "medians": medians}, indent=2))


if __name__ == "__main__":
    main()
