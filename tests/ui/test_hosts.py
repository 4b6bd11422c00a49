"""`pipeline ui` answers only requests that name it: a DNS-rebinding page (its own domain pointed
at 127.0.0.1) gets 400, not the project's runs and logs."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

from pipeline.ui.app import allowed_hosts
from tests.ui.conftest import UiServer


def status(ui: UiServer, path: str, host: str | None) -> int:
    """The status of a GET of `path` with this Host header (None: the address itself)."""
    where = urlsplit(ui.url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host or where.netloc)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_foreign_host_header_is_refused(ui: UiServer) -> None:
    port = urlsplit(ui.url).port
    for path in ("/api/runs", "/api/project", "/"):
        assert status(ui, path, None) == 200, path
        assert status(ui, path, f"attacker.example:{port}") == 400, path
    assert status(ui, "/api/project", f"localhost:{port}") == 200
    assert status(ui, "/api/project", f"[::1]:{port}") == 200


def test_the_hosts_follow_the_address_it_listens_on() -> None:
    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "[::1]", "localhost"]
    assert "192.168.1.5" in allowed_hosts("192.168.1.5")
    assert "[fe80::1]" in allowed_hosts("fe80::1")
    assert allowed_hosts("0.0.0.0") == ["*"]  # exposing it was the user's choice
