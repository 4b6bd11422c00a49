"""The scoring server: MLflow's protocol over starlette, the model in a worker child process.

Endpoints: `GET /ping` and `/health` (200 once the worker is ready and alive, else 503),
`/version`, `POST /invocations` (→ `{"predictions": …}`), `GET /openapi.json` (the signature as an
OpenAPI 3 schema) and `/interface.json` (Ebonite's view: method, signature, versions).

Each uvicorn worker process owns one model worker (`pipeline.models.worker`) and talks to it over
its pipes, one request at a time (an asyncio lock). The front checks every body against the
signature before the model sees it (`payload.py`), and passes the worker's prediction bytes on
unparsed. Importable with only the standard library, starlette and `pipeline.serve.payload`/
`openapi`: a container image needs nothing else of the tool's dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pipeline._version import __version__
from pipeline.core.listen import allowed_hosts
from pipeline.serve.openapi import interface, openapi
from pipeline.serve.payload import InputSchema, PayloadError, parse

CONFIG_VARIABLE = "PIPELINE_SERVE_CONFIG"  # the config as JSON, for `--workers N` processes
HEADER = struct.Struct(">I")
PREDICTIONS = b'{"predictions":'
MB = 1024 * 1024
DEFAULT_MAX_BODY = 50 * MB
_STOP_SECONDS = 5.0


@dataclass(frozen=True)
class ServeConfig:
    """Everything a server process needs: the package, how to start its worker, the limits."""

    model_dir: str
    mlmodel: dict[str, Any] = field(hash=False)  # the parsed MLmodel
    python: str = sys.executable  # the model env's interpreter
    child_env: dict[str, str] | None = field(default=None, hash=False)  # None: this process's
    trusted: bool = False
    max_body: int = DEFAULT_MAX_BODY
    source: str = ""  # what the user asked to serve, for /version and /interface.json
    example: Any = field(default=None, hash=False)  # serving_input_example.json, if any
    host: str = "127.0.0.1"  # the address it listens on: which Host headers it answers

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))


class WorkerDied(Exception):
    """The model worker is gone: answered with 503."""


class LoadFailed(Exception):
    """The worker could not load the model; `hint` says what to do."""

    def __init__(self, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# `python -m` (and `-c`) put the current directory first on sys.path, so a `skops/` or
# `numpy.py` lying there would run untrusted. `-P` fixes that only from Python 3.11, and a model
# env may be 3.10: the bootstrap drops that '' entry before importing anything, and appends its
# arguments: the caller's directory for a --trusted pickle, whose classes may live in the
# project's modules (last, so it still cannot shadow a library). PYTHONPATH (the stagepath) keeps
# working: `_worker_env` makes its entries absolute and drops empty ones, which would mean the
# current directory too (`PYTHONPATH=$PYTHONPATH:/x` with none set before).
WORKER_BOOT = (
    "import sys; sys.path[:] = [p for p in sys.path if p != ''] + sys.argv[1:]; "
    "from pipeline.models.worker import main; sys.exit(main())"
)


def spawn(config: ServeConfig) -> subprocess.Popen[bytes]:
    """Start the worker and send it the package to load; it dies with this process."""
    model_dir = os.path.abspath(config.model_dir)
    child = subprocess.Popen(
        [config.python, "-c", WORKER_BOOT, *([os.getcwd()] if config.trusted else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=_worker_env(config.child_env),
        cwd=model_dir,  # not the caller's directory, whatever a library opens relative to it
        preexec_fn=_die_with_parent(),  # noqa: PLW1509 - one prctl call, no locks taken
    )
    first = {"path": model_dir, "info": config.mlmodel, "trusted": config.trusted}
    assert child.stdin is not None
    body = json.dumps(first).encode()
    child.stdin.write(HEADER.pack(len(body)) + body)
    child.stdin.flush()
    return child


def _worker_env(base: dict[str, str] | None) -> dict[str, str]:
    """The worker's environment (`base`, else this process's) with an absolute PYTHONPATH: the
    worker runs in the model's directory, where relative entries would mean something else."""
    env = dict(os.environ if base is None else base)
    if entries := env.get("PYTHONPATH"):
        parts = (os.path.abspath(p) for p in entries.split(os.pathsep) if p)
        env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to SIGKILL the worker when its server dies (PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        zero = ctypes.c_ulong(0)
        prctl(1, ctypes.c_ulong(signal.SIGKILL), zero, zero, zero)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the server died before the request took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def wait_ready(child: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Block until the worker has loaded the model: its ready frame (versions)."""
    assert child.stdout is not None
    return _ready(_read_blocking(child.stdout), child)


def _read_blocking(stream: IO[bytes]) -> bytes | None:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    return body if len(body) == size else None


def _ready(frame: bytes | None, child: subprocess.Popen[bytes]) -> dict[str, Any]:
    if frame is None:
        code = child.wait()
        raise LoadFailed(
            f"the model worker exited (code {code}) before loading the model",
            "its error is above; check that the model's env has pipeline's dependencies",
        )
    answer = json.loads(frame)
    if "error" in answer:
        raise LoadFailed(str(answer["error"]), answer.get("hint"))
    return dict(answer.get("versions") or {})


class ModelWorker:
    """The async side of one worker child: one request on its pipes at a time."""

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        self.versions: dict[str, Any] = {}
        self.ready = False
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def attach(self) -> None:
        """Wrap the child's pipes in asyncio streams (on the server's event loop)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**31)
        protocol = asyncio.StreamReaderProtocol(reader)
        await loop.connect_read_pipe(lambda: protocol, self.child.stdout)
        transport, writing = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, self.child.stdin
        )
        self._reader = reader
        self._writer = asyncio.StreamWriter(transport, writing, reader, loop)

    async def wait_ready(self) -> None:
        frame = await self._read()
        self.versions = _ready(frame, self.child)
        self.ready = True

    @property
    def alive(self) -> bool:
        return self.ready and self.child.poll() is None

    async def ask(self, body: bytes) -> bytes:
        """The worker's answer frame to one request frame."""
        async with self._lock:
            if not self.alive or self._writer is None:
                raise WorkerDied(self._death())
            try:
                self._writer.write(HEADER.pack(len(body)) + body)
                await self._writer.drain()
            except (ConnectionError, RuntimeError):
                raise await self._died() from None
            frame = await self._read()
            if frame is None:
                raise await self._died()
            return frame

    async def _died(self) -> WorkerDied:
        """Its pipes closed, so it is exiting: its exit code (once it has one) says how."""
        self.ready = False
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.child.wait, _STOP_SECONDS)
        return WorkerDied(self._death())

    async def _read(self) -> bytes | None:
        assert self._reader is not None
        try:
            header = await self._reader.readexactly(HEADER.size)
            return await self._reader.readexactly(HEADER.unpack(header)[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    def _death(self) -> str:
        code = self.child.poll()
        how = f"exited with code {code}" if code is not None else "stopped answering"
        return f"the model worker {how}; restart the server (its log has the cause)"

    async def close(self) -> None:
        """End the worker: close its input (it exits at end of input), then kill if it lingers."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        elif self.child.stdin is not None:
            self.child.stdin.close()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.child.wait), _STOP_SECONDS)
        except asyncio.TimeoutError:
            self.child.kill()


def create_app(
    config: ServeConfig,
    child: subprocess.Popen[bytes] | None = None,
    versions: dict[str, Any] | None = None,
) -> Starlette:
    """The app for `config`; `child` is a worker the launcher started (and found ready)."""
    schema = InputSchema.from_mlmodel(config.mlmodel)
    state: dict[str, ModelWorker] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        worker = ModelWorker(child or spawn(config))
        await worker.attach()
        if versions is None:
            await worker.wait_ready()
        else:
            worker.versions, worker.ready = versions, True
        state["worker"] = worker
        try:
            yield
        finally:
            await worker.close()

    handlers = _Handlers(config, schema, state)
    hosts = Middleware(
        TrustedHostMiddleware, allowed_hosts=allowed_hosts(config.host), www_redirect=False
    )
    return Starlette(routes=handlers.routes(), lifespan=lifespan, middleware=[hosts])


def from_environ() -> Starlette:
    """The app factory of each `--workers N` process: the config comes in `CONFIG_VARIABLE`."""
    return create_app(ServeConfig.from_json(os.environ[CONFIG_VARIABLE]))


def error(status: int, message: str, code: str = "BAD_REQUEST") -> Response:
    """MLflow's error body: `{"error_code", "message"}`."""
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


class _Handlers:
    """The endpoints, over one config, schema and (once started) worker."""

    def __init__(
        self, config: ServeConfig, schema: InputSchema, state: dict[str, ModelWorker]
    ) -> None:
        self.config = config
        self.schema = schema
        self.state = state
        self._openapi = json.dumps(openapi(config.mlmodel, config.example)).encode()

    def routes(self) -> list[Route]:
        return [
            Route("/ping", self.ping, methods=["GET"]),
            Route("/health", self.ping, methods=["GET"]),
            Route("/version", self.version, methods=["GET"]),
            Route("/invocations", self.invocations, methods=["POST"]),
            Route("/openapi.json", self.openapi_json, methods=["GET"]),
            Route("/interface.json", self.interface_json, methods=["GET"]),
        ]

    @property
    def worker(self) -> ModelWorker | None:
        return self.state.get("worker")

    async def ping(self, _: Request) -> Response:
        worker = self.worker
        if worker is None or not worker.alive:
            why = worker._death() if worker is not None else "the model is loading"
            return error(503, why, "SERVICE_UNAVAILABLE")
        return Response("\n", media_type="application/json")

    async def version(self, _: Request) -> Response:
        return PlainTextResponse(__version__)

    async def openapi_json(self, _: Request) -> Response:
        return Response(self._openapi, media_type="application/json")

    async def interface_json(self, _: Request) -> Response:
        worker = self.worker
        found = worker.versions if worker is not None else {}
        return JSONResponse(interface(self.config.mlmodel, self.config.source, found))

    async def invocations(self, request: Request) -> Response:
        try:
            body = await _body(request, self.config.max_body)
            parsed = parse(body, request.headers.get("content-type"), self.schema)
        except PayloadError as exc:
            return Response(exc.body(), exc.status, media_type="application/json")
        worker = self.worker
        if worker is None:
            return error(503, "the model is loading", "SERVICE_UNAVAILABLE")
        try:
            answer = await worker.ask(parsed.frame())
        except WorkerDied as exc:
            return error(503, str(exc), "SERVICE_UNAVAILABLE")
        if answer.startswith(PREDICTIONS):
            return Response(answer, media_type="application/json")
        return _failure(answer)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed `limit` bytes."""
    too_big = PayloadError(f"the body is larger than the server's limit of {_size(limit)}", 413)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _size(limit: int) -> str:
    if limit >= MB:
        return f"{limit / MB:g} MB"
    return f"{limit / 1024:g} KB" if limit >= 1024 else f"{limit} bytes"


def _failure(answer: bytes) -> Response:
    """A worker's error frame: the input's fault (400) or the model's (500), one line each."""
    try:
        found = json.loads(answer)
        message, kind = str(found["error"]), found.get("kind")
    except (ValueError, KeyError, TypeError):
        return error(500, "the model worker answered something unreadable", "INTERNAL_ERROR")
    if kind == "input":
        return error(400, f"the model refused the input: {message}")
    return error(500, f"the model failed: {message}", "INTERNAL_ERROR")
