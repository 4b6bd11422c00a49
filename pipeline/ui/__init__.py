"""`pipeline ui`: a local web app over the run store: runs, compare, a run, the DAG, models.

`source` opens the project's run store and cache as the CLI does, `views` builds each page's
JSON from the CLI's own queries (`runs.compare`, `runs.lineage`, `runs.logs`, the registry,
the project's graph), `curves` draws logged metric histories with the plots package, `app` is
the Starlette app (page, script, Vega bundle, `/api/…`), `page` and `script` the page itself,
and `server` binds a loopback port and runs uvicorn. Start it with `pipeline ui` or
`pipeline.ui.serve(UiOptions(...))`.
"""

from __future__ import annotations

from pipeline.ui.server import UiOptions, serve

__all__ = ["UiOptions", "serve"]
