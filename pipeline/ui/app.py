"""The UI's web app (Starlette): one HTML page, its script, Vega, and a JSON API per page.

Pages are drawn in the browser from `/api/…` (see `views`); the page and its script are
served from the package and Vega-Lite from vl-convert's bundle, made once and cached, so
nothing is fetched from the network. Endpoints are sync functions: Starlette runs them on its
thread pool, so a slow query never stalls the others. A bad request (no such run, a
manifest that does not load) answers 4xx JSON `{"error", "hint"}`; anything else 500 with one
line, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from pipeline.core.listen import allowed_hosts
from pipeline.errors import PipelineError, UsageError
from pipeline.ui import views
from pipeline.ui.page import page
from pipeline.ui.script import SCRIPT
from pipeline.ui.source import Source

JS = "text/javascript; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store"}  # runs change under the page: always ask again


class Assets:
    """The page, its script, and Vega (made on first use, kept in memory and on disk)."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._vega: str | None = None
        self._lock = threading.Lock()

    def vega(self) -> str:
        with self._lock:
            if self._vega is None:
                from pipeline.plots.output import bundle  # noqa: PLC0415 - vl-convert: when drawn

                self._vega = bundle(self.cache_dir)
            return self._vega


def create_app(source: Source, host: str = "127.0.0.1") -> Starlette:
    """The app over one project, listening on `host` (which Host headers it answers)."""
    assets = Assets(source.state_dir / "plots")
    title = source.name()

    def index(request: Request) -> Response:
        return HTMLResponse(page(title))

    def script(request: Request) -> Response:
        return Response(SCRIPT, media_type=JS, headers=NO_STORE)

    def vega(request: Request) -> Response:
        return Response(assets.vega(), media_type=JS, headers={"Cache-Control": "max-age=86400"})

    routes = [
        Route("/", _guarded(index)),
        Route("/app.js", _guarded(script)),
        Route("/vega.js", _guarded(vega)),
        *_api(source),
    ]
    hosts = Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host), www_redirect=False)
    return Starlette(
        routes=routes, exception_handlers={HTTPException: _http_error}, middleware=[hosts]
    )


def _api(source: Source) -> list[Route]:
    def refs(request: Request) -> list[str]:
        text = request.query_params.get("runs", "")
        return [r for r in text.split(",") if r.strip()]

    def runs(request: Request) -> Response:
        return Response(runs_json(source), media_type="application/json", headers=NO_STORE)

    endpoints: dict[str, Callable[[Request], Any]] = {
        "/api/project": lambda r: views.project(source),
        "/api/compare": lambda r: views.compare_view(source, refs(r)),
        "/api/runs/{ref}": lambda r: views.run_page(source, r.path_params["ref"]),
        "/api/runs/{ref}/logs/{stage:path}": lambda r: views.run_log(
            source, r.path_params["ref"], r.path_params["stage"]
        ),
        "/api/dag": lambda r: views.dag(source),
        "/api/models": lambda r: views.models(source),
        "/api/models/{name}": lambda r: views.model(source, r.path_params["name"]),
    }
    routes = [Route(path, _guarded(_json(view))) for path, view in endpoints.items()]
    return [Route("/api/runs", _guarded(runs)), *routes]


def runs_json(source: Source) -> str:
    """The runs table as JSON text, kept until the store changes (see `Source.cached`)."""
    return source.cached("runs", lambda: _dumps(views.runs_table(source)))


def warm(source: Source) -> None:
    """Build the runs table ahead of the first request (on a thread, as the server starts);
    an error here is the first request's to report."""
    with contextlib.suppress(Exception):
        runs_json(source)


def _json(view: Callable[[Request], Any]) -> Callable[[Request], Response]:
    def endpoint(request: Request) -> Response:
        data = _dumps(view(request))
        return Response(data, media_type="application/json", headers=NO_STORE)

    return endpoint


def _guarded(endpoint: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """`endpoint`, answering JSON errors: ours as 4xx, anything else as 500 in one line."""

    def guarded(request: Request) -> Response:
        try:
            return endpoint(request)
        except PipelineError as exc:
            missing = isinstance(exc, UsageError) and exc.message.startswith("no ")
            return _error(404 if missing else 400, exc.message, exc.hint)
        except Exception as exc:  # a bug: the page says so, the server keeps serving
            sys.stderr.write(f"error: {request.url.path}: {exc.__class__.__name__}: {exc}\n")
            return _error(500, f"{exc.__class__.__name__}: {exc}", "this is a bug in pipeline")

    return guarded


def _dumps(data: Any) -> str:
    """Compact JSON; NaN and infinities (a logged metric may be one) become null."""
    try:
        return json.dumps(data, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:  # rare: only then walk the whole document
        return json.dumps(_finite(data), separators=(",", ":"), default=str)


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def _error(status: int, message: str, hint: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint}, status_code=status, headers=NO_STORE)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error(404, f"no page {request.url.path}", "see / for the runs")
    return _error(exc.status_code, str(exc.detail))
