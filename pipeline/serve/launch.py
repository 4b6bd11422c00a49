"""`pipeline serve`: find the model package, its env, start its worker, then run uvicorn.

Cold start is the budget here (≤ 1.5 s to the first answer with the env built): the worker is
started first, so the model loads while this process imports uvicorn and starlette; nothing
heavier than the env store is imported on the way (the registry only for a `models:/` or
`runs:/` reference). With `--workers N` each uvicorn process starts its own worker from the
config passed in `PIPELINE_SERVE_CONFIG`; the model is loaded once here first, so a model that
cannot load is one clear error rather than N crashing processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.listen import bind, url_host
from pipeline.errors import ModelError, UsageError
from pipeline.serve.modelenv import MANAGERS, PackageEnv, model_env

Log = Callable[[str], None]
MLMODEL = "MLmodel"
SERVING_EXAMPLE = "serving_input_example.json"
_MB = 1024 * 1024
_UNITS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KB": 1024,
    "M": _MB,
    "MB": _MB,
    "G": _MB << 10,
    "GB": _MB << 10,
}


@dataclass(frozen=True)
class ServeOptions:
    """What `pipeline serve` was asked to do."""

    model: str  # a package directory, `runs:/…`, `models:/…` or a declared artifact name
    host: str = "127.0.0.1"  # loopback unless asked: a model server is not for the world
    port: int = 5000  # MLflow's default
    workers: int = 1
    trusted: bool = False  # the user's trust in a pickle model (the package's own flag is not)
    env_manager: str = "virtualenv"
    max_body: int = 50 * _MB
    root: str = "."  # the project, for references that need its run store or manifest


@dataclass(frozen=True)
class Located:
    """The package to serve, and how to name it to the user."""

    path: Path
    source: str


def parse_size(text: str) -> int:
    """`50MB`, `512KB`, `1G` or a number of bytes."""
    cleaned = text.strip().upper().replace(" ", "")
    number = cleaned.rstrip("KMGB")
    unit = cleaned[len(number) :]
    if unit not in _UNITS or not number.replace(".", "", 1).isdigit():
        raise UsageError(f"--max-body {text!r} is not a size", "write it like 50MB, 512KB or 1000")
    return int(float(number) * _UNITS[unit])


def locate(options: ServeOptions) -> Located:
    """The package directory of `options.model`: a path, or a reference the registry resolves."""
    path = Path(options.model)
    if (path / MLMODEL).is_file():
        return Located(path.resolve(), str(path))
    if path.is_dir():
        raise ModelError(
            f"{options.model}: no model package here (no {MLMODEL} file)",
            "give the directory pipeline.models.save wrote",
        )
    from pipeline.serve.refs import resolve_model  # noqa: PLC0415 - the run store: references only

    ref = resolve_model(Path(options.root), options.model)
    return Located(Path(ref.dir), ref.source)


def read_mlmodel(package: Path) -> dict[str, Any]:
    """The MLmodel as a dict: JSON as pipeline writes it, else YAML as MLflow does."""
    path = package / MLMODEL
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", "is it a model package?") from None
    try:
        data = json.loads(text)
    except ValueError:
        from pipeline.core.yamlio import parse_yaml  # noqa: PLC0415 - PyYAML for MLflow's own

        data = parse_yaml(text, path).data
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a mapping", "is it a model package?")
    return data


def _example(package: Path) -> Any:
    try:
        return json.loads((package / SERVING_EXAMPLE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def serve(options: ServeOptions, log: Log) -> None:
    """Serve the model until Ctrl-C (or SIGTERM); returns after a clean shutdown."""
    if options.env_manager not in MANAGERS:
        known = ", ".join(MANAGERS)
        raise UsageError(f"--env-manager {options.env_manager!r}: use one of {known}")
    from pipeline.models.mlmodel import parse_mlmodel  # noqa: PLC0415 - after the usage checks

    found = locate(options)
    mlmodel = read_mlmodel(found.path)
    info = parse_mlmodel(mlmodel, found.path)
    own = mlmodel.get("pipeline") or {}
    spec = PackageEnv(found.path, info.lock, info.python_version, own.get("env_kind"))
    with model_env(spec, options.env_manager, log) as env:
        from pipeline.serve.app import ServeConfig  # noqa: PLC0415 - starlette: after the env

        config = ServeConfig(
            str(found.path),
            mlmodel,
            env.python,
            env.environ,
            options.trusted,
            options.max_body,
            found.source,
            _example(found.path),
            options.host,
        )
        _run(options, config, log, env.description)


def _run(options: ServeOptions, config: Any, log: Log, where: str) -> None:
    from pipeline.serve import app as server  # noqa: PLC0415 - see the module's docstring

    sock = bind(options.host, options.port)  # a taken port fails before the model loads
    child = server.spawn(config)  # the model loads while uvicorn is imported
    try:
        import uvicorn  # noqa: PLC0415 - imported while the model loads (cold start)

        versions = server.wait_ready(child)
    except server.LoadFailed as exc:
        child.wait()
        sock.close()
        raise ModelError(exc.message, exc.hint) from None
    except BaseException:
        child.kill()
        sock.close()
        raise
    port = sock.getsockname()[1]
    log(f"serving {config.source} in {where}\n")
    log(f"listening on http://{url_host(options.host)}:{port}/invocations (Ctrl-C stops)\n")
    if options.workers == 1:
        app: Any = server.create_app(config, child, versions)
    else:
        if child.stdin is not None:
            child.stdin.close()  # each uvicorn process starts its own worker
        child.wait()
        os.environ[server.CONFIG_VARIABLE] = config.to_json()
        app = "pipeline.serve.app:from_environ"
    _uvicorn(uvicorn, app, options, sock)


def _uvicorn(uvicorn: Any, app: Any, options: ServeOptions, sock: socket.socket) -> None:
    """Run uvicorn on `sock` until a signal; SIGTERM ends it as cleanly as Ctrl-C."""
    config = uvicorn.Config(
        app,
        factory=isinstance(app, str),
        workers=options.workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if options.workers == 1:
            uvicorn.Server(config).run(sockets=[sock])
        else:
            from uvicorn.supervisors import Multiprocess  # noqa: PLC0415 - with uvicorn

            Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then passed the signal on
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM, once uvicorn has shut down and raises it again: a clean stop like Ctrl-C."""
    raise KeyboardInterrupt
