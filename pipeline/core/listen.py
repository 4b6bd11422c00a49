"""What a local server (`pipeline serve`, `pipeline ui`) listens on and answers: its socket,
bound before the slow part of starting so a taken port fails at once with one line, and the
Host headers it accepts.

Standard library and `pipeline.errors` only: a model's container image copies this module.
"""

from __future__ import annotations

import socket

from pipeline.errors import UsageError


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (port 0: any free one), inheritable by workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on TCP-proto sockets, and without it
    # Nagle holds each response's body behind its headers for a delayed ACK (40 ms a request)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {url_host(host)}:{port}: {exc.strerror or exc}",
            "is another server using the port? choose one with --port (0: any free port)",
        ) from None
    sock.set_inheritable(True)
    return sock


def url_host(host: str) -> str:
    """`host` as it is written in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def allowed_hosts(host: str) -> list[str]:
    """The Host headers a server listening on `host` answers (others get 400).

    A web page can point its own domain at 127.0.0.1 (DNS rebinding) and read a loopback server
    as same-origin; its requests still carry that domain as Host, so only the loopback names and
    the address given are served. Listening on every interface is the user's choice to expose it.
    """
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return sorted({"127.0.0.1", "localhost", "[::1]", url_host(host).lower()})
