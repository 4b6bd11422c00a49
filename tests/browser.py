"""A real headless Chromium for tests: Debian's `chromium` driven by its `chromium-driver`.

Use it from any test package by importing the fixture into the test module or a conftest:

    from tests.browser import browser, screenshot  # noqa: F401 (browser is a fixture)

`browser` is one Chrome WebDriver per test session (per xdist worker): headless, no sandbox
(tests run as root in CI), 1400 by 1000, and cut off from the network: every request goes to a
proxy at 127.0.0.1:9, where nothing listens, except loopback (never proxied), so pages served
by a test on 127.0.0.1 load and anything else fails (tests/plots/test_browser.py proves it).
Without `/usr/bin/chromium` and `/usr/bin/chromedriver` (`.ci/run` installs them) or selenium,
tests using it skip.
`screenshot(driver, name)` keeps a PNG under `tests-artifacts/` (or `$PIPELINE_TEST_ARTIFACTS`).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parent.parent
# Every request goes to a proxy where nothing listens; Chromium never proxies loopback (its
# implicit bypass rules; `<-loopback>` would remove them and cut loopback off too).
OFFLINE_FLAGS = ("--proxy-server=http://127.0.0.1:9",)


def artifacts_dir() -> Path:
    """Where tests keep what a person should look at (gitignored `tests-artifacts/`)."""
    folder = Path(os.environ.get("PIPELINE_TEST_ARTIFACTS") or REPO / "tests-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(driver: Any, name: str) -> Path:
    """Save the whole page (beyond the window, through Chromium's DevTools) as
    `<artifacts>/<name>.png`."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 12000)}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": {**clip, "scale": 1}},
    )
    path = artifacts_dir() / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium WebDriver, offline but for loopback; skips when not installed."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("needs Debian's chromium and chromium-driver (installed by .ci/run)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (test extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--window-size=1400,1000", "--hide-scrollbars",
                 "--disable-extensions", "--no-first-run", *OFFLINE_FLAGS):  # fmt: skip
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, script: str, timeout: float = 60) -> Any:
    """Poll `script` (a JS expression) until it is truthy; its value, or a TimeoutException."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: d.execute_script(f"return {script}")
    )
