"""The page from `plots show` in a real headless Chromium, offline: every chart draws."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import plots
from pipeline.load.project import load_project
from tests.browser import browser, screenshot, wait_for  # noqa: F401 (a fixture)
from tests.conftest import Project
from tests.plots.conftest import write_data

pytestmark = pytest.mark.slow

_DRAWN = """
return [...document.querySelectorAll('.vis')].map(v => {
  const svg = v.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const marks = svg ? svg.querySelectorAll('g.mark-line path, g.mark-symbol path,'
    + ' g.mark-rect path, g.mark-text text').length : 0;
  return {id: v.id, width: box.width, height: box.height, marks: marks};
});
"""


@pytest.fixture
def http_server() -> Iterator[int]:
    """A plain HTTP server on every interface (loopback and the machine's own address)."""
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _own_address() -> str | None:
    """This machine's non-loopback address (a UDP connect sends nothing), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else str(address)


def _reaches(driver: Any, url: str) -> bool:
    """Whether the browser loads `url` (the test server lists a directory; an error page
    from Chromium does not)."""
    from selenium.common.exceptions import WebDriverException

    try:
        driver.get(url)
    except WebDriverException as exc:  # chromedriver reports a failed navigation
        assert "net::ERR_" in str(exc.msg)
        return False
    return "Directory listing for" in driver.page_source


def test_only_loopback_is_reachable(browser: Any, http_server: int) -> None:  # noqa: F811
    """The same server answers on 127.0.0.1 but not on the machine's own address: the
    browser really is cut off from everything but loopback (not just lacking a route)."""
    assert _reaches(browser, f"http://127.0.0.1:{http_server}/")
    assert not _reaches(browser, "http://example.com/")
    own = _own_address()
    if own is not None:
        with socket.create_connection((own, http_server), timeout=10):
            pass  # reachable from here, outside the browser
        assert not _reaches(browser, f"http://{own}:{http_server}/")


def test_every_chart_draws_offline(plotted: Project, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    first = plotted.git("rev-parse", "--short", "HEAD").strip()
    write_data(plotted, shift=0.3, seed=2)
    revisions = [plots.git_revision(plotted.root, first), plots.workspace_revision(plotted.root)]
    for name, revs in (("plots-show", revisions[1:]), ("plots-diff", revisions)):
        charts = plots.collect(load_project(plotted.root), revs)
        page = plots.write_html(charts, tmp_path / name, heading=f"Plots: {name}")
        started = time.monotonic()
        browser.get(page.as_uri())
        wait_for(browser, "document.body.dataset.done === 'true'")
        drawn = browser.execute_script(_DRAWN)
        print(f"{name}: {len(drawn)} charts drawn in {time.monotonic() - started:.2f}s")
        assert len(drawn) == len([c for c in charts if c.spec is not None]) == 5
        assert all(d["width"] > 150 and d["height"] > 150 and d["marks"] > 2 for d in drawn), drawn
        assert browser.execute_script("return document.body.dataset.drawn") == "5"
        assert browser.execute_script(
            "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        )
        shot = screenshot(browser, name)
        assert shot.stat().st_size > 10_000
