"""`pipeline ui`: the web app on a loopback port, served by uvicorn until Ctrl-C.

The socket is bound before anything heavy is imported, so a taken port is one clear error
at once; the address is printed only once the server accepts connections (a test or a
script can wait on that line), and `--open` opens it in the browser then.
"""

from __future__ import annotations

import signal
import socket
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.listen import bind, url_host
from pipeline.ui.source import Source

Log = Callable[[str], None]


@dataclass(frozen=True)
class UiOptions:
    """What `pipeline ui` was asked to do."""

    root: str | Path = "."  # the project (any folder inside it)
    host: str = "127.0.0.1"  # loopback unless asked: the runs of a project are not for the world
    port: int = 8765  # 0: any free port (the printed address says which)
    open_browser: bool = False


def serve(options: UiOptions | None = None, log: Log | None = None) -> None:
    """Serve the UI of the project at `options.root` until Ctrl-C (or SIGTERM)."""
    options = options or UiOptions()
    say = log or _quiet
    source = Source.at(options.root)
    sock = bind(options.host, options.port)
    try:
        import uvicorn  # noqa: PLC0415 - after the port is ours (a clash fails at once)

        from pipeline.ui.app import create_app, warm  # noqa: PLC0415 - starlette, with uvicorn

        threading.Thread(target=warm, args=(source,), daemon=True).start()

        app = create_app(source, options.host)
        config = uvicorn.Config(app, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=3)  # fmt: skip
        url = f"http://{url_host(options.host)}:{sock.getsockname()[1]}/"
        server = _announcing(uvicorn)(config, lambda: _announce(url, options, say))
        _run(server, sock)
    finally:
        sock.close()
        source.close()


def _announcing(uvicorn: Any) -> Any:
    """uvicorn's server, calling `started()` once it accepts connections."""

    class Announcing(uvicorn.Server):  # type: ignore[misc]
        def __init__(self, config: Any, started: Callable[[], None]) -> None:
            super().__init__(config)
            self.on_started = started

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                self.on_started()

    return Announcing


def _announce(url: str, options: UiOptions, say: Log) -> None:
    say(f"pipeline ui: {url} (Ctrl-C stops)\n")
    if options.open_browser:
        webbrowser.open(url)


def _run(server: Any, sock: socket.socket) -> None:
    """Run uvicorn on `sock` until a signal; SIGTERM ends it as cleanly as Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():  # no signals there
        server.run(sockets=[sock])
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then passed the signal on
        return
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _quiet(_: str) -> None:
    pass
