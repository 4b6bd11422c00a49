"""`pipeline model build`: a container build context that serves one model package.

The context holds everything `docker build` needs and nothing else:

    Dockerfile        python:<the package's X.Y>-slim, a non-root user, EXPOSE 8080,
                      a HEALTHCHECK on /ping with python's urllib (slim images have no curl)
    requirements.txt  the package's exact pins, plus the server's (starlette, uvicorn and what
                      they need) at the versions this tool runs with
    pipeline/         the serving code only: the modules the server imports, not the tool
    serve.py          the image's entry point: the server (pipeline.serve.app) on uvicorn
    model/            the package, copied last so a new model rebuilds only the last layer
    serve.json        the parsed MLmodel and the serving settings, copied with the model
    .dockerignore, README.txt

The model runs in the image's one interpreter: the image *is* the model's env, so the server
starts its worker with `sys.executable`, as `pipeline serve --env-manager local` does.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import EnvironmentSetupError, ModelError, UsageError

PORT = 8080
#: Where things live in the image.
APP_DIR = "/app"
MODEL_DIR = "/app/model"
#: Distributions the server needs besides the model's own; pinned with their dependencies.
SERVER_DISTS = ("starlette", "uvicorn")
#: The tool's own modules the server imports (a directory means all of its `.py` files). The
#: build test runs the image's command with only these on the path, so a new import shows up.
SERVING_CODE = (
    "pipeline/__init__.py",
    "pipeline/_version.py",
    "pipeline/errors.py",
    "pipeline/core/__init__.py",
    "pipeline/core/listen.py",
    "pipeline/models",
    "pipeline/serve/__init__.py",
    "pipeline/serve/app.py",
    "pipeline/serve/payload.py",
    "pipeline/serve/openapi.py",
)
#: Distributions never installed from an index: this tool (its serving code is copied in).
NOT_INSTALLED = frozenset({"pipeline"})
MARKER = ".pipeline-build-context"  # names a directory this command wrote, safe to replace
BUILDERS = ("docker", "podman")


@dataclass(frozen=True)
class BuildContext:
    """A written build context: where it is, the image it makes, and how to build it."""

    directory: Path
    base_image: str
    requirements: tuple[str, ...]
    files: tuple[str, ...]  # relative paths, sorted

    def build_argv(self, builder: str, tag: str) -> list[str]:
        return [builder, "build", "-t", tag, str(self.directory)]


def write_context(
    model_dir: Path,
    out: Path,
    *,
    mlmodel: dict[str, Any],
    python_version: str,
    requirements: Iterable[str],
    base_image: str | None = None,
    source: str = "",
    trusted: bool = False,
) -> BuildContext:
    """Write the build context for the package at `model_dir` into `out`, atomically.

    `out` must not exist, be empty, or be a context this function wrote before (then it is
    replaced). The context is assembled in a sibling temp directory and renamed into place.
    """
    _check_target(out)
    image = base_image or f"python:{_major_minor(python_version)}-slim"
    pins = _requirements(requirements)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        settings = {"mlmodel": mlmodel, "source": source, "trusted": trusted}
        _fill(tmp, model_dir, image, pins, settings)
        files = tuple(sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()))
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildContext(out, image, tuple(pins), files)


def build(context: BuildContext, tag: str) -> list[str]:
    """Run `docker build` (or `podman build`) on the context; the command it ran."""
    builder = next((b for b in BUILDERS if shutil.which(b)), None)
    if builder is None:
        argv = context.build_argv("docker", tag)
        raise EnvironmentSetupError(
            "cannot build the image: neither docker nor podman is on PATH",
            hint=f"the context is written; build it where one is installed: {' '.join(argv)}",
        )
    argv = context.build_argv(builder, tag)
    done = subprocess.run(argv, check=False)  # its progress goes straight to the terminal
    if done.returncode != 0:
        raise EnvironmentSetupError(
            f"{builder} build failed with exit code {done.returncode}",
            hint=f"its output is above; the command was: {' '.join(argv)}",
        )
    return argv


def default_tag(name: str) -> str:
    """An image name from a model's name: lowercase, only what image references allow."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return f"{cleaned or 'model'}:latest"


# -- the files ---------------------------------------------------------------------------------


def _fill(tmp: Path, model_dir: Path, image: str, pins: list[str], settings: Any) -> None:
    (tmp / "Dockerfile").write_text(dockerfile(image), encoding="utf-8")
    (tmp / "requirements.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    (tmp / ".dockerignore").write_text(DOCKERIGNORE, encoding="utf-8")
    (tmp / "README.txt").write_text(readme(image, settings["source"]), encoding="utf-8")
    (tmp / "serve.py").write_text(ENTRY_POINT, encoding="utf-8")
    (tmp / "serve.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    (tmp / MARKER).write_text("written by `pipeline model build`\n", encoding="utf-8")
    _copy_serving_code(tmp)
    _check_links(model_dir)
    shutil.copytree(model_dir, tmp / "model", symlinks=False)
    for path in (tmp / "model").rglob("*"):  # cached packages are read-only; the copy is ours
        path.chmod(0o755 if path.is_dir() else 0o644)


def _check_links(model_dir: Path) -> None:
    """Refuse a link that would copy what is not the package's into the context (and image).

    The copy follows links, so `notes.txt -> ~/.ssh/id_rsa` in a pulled package would ship the
    key; a link to a directory inside could loop, a dangling one fails the copy. A link to a
    file inside the package is copied as that file.
    """
    root = model_dir.resolve()
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if not path.is_symlink():
                continue
            target = path.resolve()
            if not (target.is_file() and target.is_relative_to(root)):
                raise ModelError(
                    f"{path}: a link to {target}, which is not a file of the model package",
                    "build from a copy of the package without links (check what they point to)",
                )


def command() -> list[str]:
    """The image's CMD, run from /app (the test runs it from the context directory)."""
    return ["python", "serve.py"]


#: The entry point: the server on every interface of the container (the port is published by
#: `docker run -p`), the model worker in this same interpreter. Reads serve.json, not MLmodel,
#: so a block-YAML MLmodel written by MLflow needs no YAML parser in the image.
ENTRY_POINT = f'''\
"""The image's entry point, written by `pipeline model build`: serve ./model on port {PORT}."""

import json
import os
import sys
from pathlib import Path

import uvicorn

from pipeline.serve.app import ServeConfig, create_app

HERE = Path(__file__).resolve().parent
settings = json.loads((HERE / "serve.json").read_text(encoding="utf-8"))
example_file = HERE / "model" / "serving_input_example.json"
host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104 - inside a container, by design
config = ServeConfig(
    model_dir=str(HERE / "model"),
    mlmodel=settings["mlmodel"],
    python=sys.executable,
    trusted=settings["trusted"],
    source=settings["source"],
    example=json.loads(example_file.read_text()) if example_file.exists() else None,
    host=host,
)
port = int(os.environ.get("PORT", "{PORT}"))
uvicorn.run(create_app(config), host=host, port=port, log_level="info")
'''


def dockerfile(image: str) -> str:
    """The Dockerfile: least-changing layers first, the model last."""
    cmd = ", ".join(f'"{part}"' for part in command())
    probe = (
        "import sys, urllib.request; "
        f"sys.exit(urllib.request.urlopen('http://127.0.0.1:{PORT}/ping', timeout=3).status != 200)"
    )
    return f"""\
# Written by `pipeline model build`: serves the model in model/ on port {PORT}.
FROM {image}

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The server never runs as root.
RUN useradd --create-home --uid 10001 --user-group model
WORKDIR {APP_DIR}

# The model's exact requirements and the server's: this layer is rebuilt only when they change.
COPY requirements.txt {APP_DIR}/requirements.txt
RUN pip install --no-cache-dir -r {APP_DIR}/requirements.txt

# The serving code, then the model itself: a new model version rebuilds only the last layers.
ENV PYTHONPATH={APP_DIR}
COPY pipeline/ {APP_DIR}/pipeline/
COPY serve.py {APP_DIR}/serve.py
COPY model/ {MODEL_DIR}/
COPY serve.json {APP_DIR}/serve.json

USER model
EXPOSE {PORT}
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \\
    CMD ["python", "-c", "{probe}"]
CMD [{cmd}]
"""


DOCKERIGNORE = """\
# Only what the Dockerfile copies is needed; keep editor and build litter out of the image.
**/__pycache__
**/*.pyc
.git
README.txt
.pipeline-build-context
"""


def readme(image: str, source: str) -> str:
    return f"""\
A container build context written by `pipeline model build`{f" for {source}" if source else ""}.

    docker build -t NAME .            # or: podman build -t NAME .
    docker run --rm -p {PORT}:{PORT} NAME
    curl http://127.0.0.1:{PORT}/ping

Base image {image}; the server runs as the non-root user `model` and speaks MLflow's
scoring protocol on port {PORT}: GET /ping, /health, /version; POST /invocations.

  Dockerfile        the image: requirements first, the serving code, the model last
  requirements.txt  the model's exact requirements and the server's pinned dependencies
  pipeline/         the serving code (only the modules the server imports)
  serve.py          the entry point (HOST and PORT variables override 0.0.0.0:{PORT})
  model/            the model package (MLflow's Models format)
  serve.json        the model's parsed MLmodel and serving settings
"""


# -- helpers -----------------------------------------------------------------------------------


def _check_target(out: Path) -> None:
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists()):
        raise UsageError(
            f"{out} exists and is not a build context written by `pipeline model build`",
            hint="choose a new directory with -o, or remove this one",
        )


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished context to `out`, replacing an earlier context or an empty dir."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    out.chmod(0o755)  # mkdtemp made it 0700


def _major_minor(version: str) -> str:
    parts = version.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ModelError(
            f"the package's python_version {version!r} is not a Python version",
            hint="its MLmodel's flavors.python_function.python_version should read like 3.11.7",
        )
    return ".".join(parts[:2])


def _requirements(model: Iterable[str]) -> list[str]:
    """The model's pins (minus this tool), then the server's that the model does not pin."""
    pins: dict[str, str] = {}
    for line in model:
        name = _dist_name(line)
        if name and name not in NOT_INSTALLED:
            pins.setdefault(name, line.strip())
    for name, version in _server_pins().items():
        pins.setdefault(name, f"{name}=={version}")
    return list(pins.values())


def _dist_name(requirement: str) -> str:
    """The normalised distribution name of a requirement line; "" for comments and options."""
    line = requirement.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return ""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return re.sub(r"[-_.]+", "-", match.group(0)).lower() if match else ""


def _server_pins() -> dict[str, str]:
    """starlette, uvicorn and everything they require here, at this env's versions.

    A requirement behind an `extra` marker is left out; other markers (a Python version) are
    not evaluated: a dependency installed here is pinned, one that is not is not needed here.
    """
    found: dict[str, str] = {}
    todo = list(SERVER_DISTS)
    while todo:
        name = _dist_name(todo.pop())
        if name in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional dependency not installed here: the image does without
        found[name] = dist.version
        todo += [spec for spec in dist.requires or () if "extra" not in spec.partition(";")[2]]
    return found


def _copy_serving_code(tmp: Path) -> None:
    package = Path(__file__).resolve().parents[1]  # this tool's `pipeline/` directory
    for rel in SERVING_CODE:
        source = package.parent / rel
        if source.is_dir():
            for file in sorted(source.rglob("*.py")):
                _copy(file, tmp / file.relative_to(package.parent))
        elif source.is_file():
            _copy(source, tmp / rel)


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
