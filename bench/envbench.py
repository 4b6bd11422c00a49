"""Projects, settings and raw-tool baselines for the stage-environment benchmarks (issue 5).

The artefacts (wheels, a local conda channel, the test-only `python` conda package) come from
`tests/env/envkit.py`, imported from there rather than copied. Everything works offline:

- `offline_environ`: the process environment for one `pipeline` run, with its own
  `XDG_CACHE_HOME` (where built envs and rattler's package cache go), its own `UV_CACHE_DIR`,
  and pip's index settings pointing at a local wheel dir only;
- `write_wheels`, `venv_project`: two small wheels and a project whose default env is a
  `python_env.yaml` installing them;
- `make_conda_channel`, `conda_project`: the envkit channel (`hello`, `greet`, `python`) and a
  project whose default env is an `environment.yml` using it.

Run as a script it is the floor the conda benchmark compares against: py-rattler's solve and
install of the same specs in a fresh interpreter, without `pipeline` (it exits with
`os._exit`, see the end of this file):

    python bench/envbench.py conda-install CHANNEL PREFIX CACHE SPEC...
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"

#: The two wheels of the venv benchmarks; `alpha` requires `beta`, so uv resolves as well.
WHEELS = (("alpha", "1.0", ("beta>=1",)), ("beta", "1.0", ()))
#: What the conda env asks for: every package of the envkit channel.
CONDA_SPECS = ("python", "hello", "greet")


def envkit() -> ModuleType:
    """`tests/env/envkit.py`, imported by path (it needs nothing else of the test suite), once;
    ImportError if it is missing."""
    loaded = sys.modules.get("envkit")
    if loaded is not None:
        return loaded
    path = TESTS / "env" / "envkit.py"
    spec = importlib.util.spec_from_file_location("envkit", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"no module at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["envkit"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["envkit"]
        raise
    return module


def require_rattler() -> None:
    """ImportError unless py-rattler (the `conda` extra) can be imported."""
    import rattler  # noqa: F401, PLC0415


def offline_environ(
    base: Mapping[str, str] | None, cache_home: Path, uv_cache: Path, wheels: Path | None
) -> dict[str, str]:
    """`base` (default: `os.environ`) with private caches and an offline wheel index.

    pip's config files are disabled (`PIP_CONFIG_FILE=/dev/null`) and any index URL the machine
    sets is dropped, so `PIP_NO_INDEX=1` + `PIP_FIND_LINKS=wheels` are the only sources.
    """
    env = dict(os.environ if base is None else base)
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "UV_INDEX_URL"):
        env.pop(key, None)
    env.update(
        XDG_CACHE_HOME=str(cache_home),
        UV_CACHE_DIR=str(uv_cache),
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
    )
    if wheels is not None:
        env["PIP_FIND_LINKS"] = str(wheels)
    return env


def write_wheels(dest: Path) -> list[str]:
    """Build the two wheels into `dest`; returns the distribution names."""
    kit = envkit()
    for name, version, requires in WHEELS:
        kit.build_wheel(dest, name, version, requires=requires)
    return [name for name, _, _ in WHEELS]


def python_request() -> str:
    """`X.Y` of this interpreter, which pipeline finds without probing anything else."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def trivial_stages(count: int) -> dict[str, Any]:
    """`count` independent stages that each write one small file."""
    return {
        f"s{i:02d}": {"cmd": f"echo {i} > out/s{i:02d}.txt", "outs": [f"out/s{i:02d}.txt"]}
        for i in range(count)
    }


def write_manifest(root: Path, stages: Mapping[str, Any], **envs: str) -> None:
    """`root/MLproject` with `stages` and top-level env keys (`python_env=`, `conda_env=`)."""
    root.mkdir(parents=True, exist_ok=True)
    manifest = {**envs, "stages": dict(stages)}
    (root / "MLproject").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")


def venv_project(root: Path, stages: Mapping[str, Any], *, with_env: bool = True) -> Path:
    """A project whose default env is `envs/x.yaml` (the two wheels); or none if not `with_env`."""
    envs_dir = root / "envs"
    envs_dir.mkdir(parents=True, exist_ok=True)
    spec = {"python": python_request(), "dependencies": [name for name, _, _ in WHEELS]}
    (envs_dir / "x.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    if with_env:
        write_manifest(root, stages, python_env="envs/x.yaml")
    else:
        write_manifest(root, stages)
    return root


def make_conda_channel(root: Path) -> Path:
    """The envkit channel with `hello`, `greet` and the test-only `python` package."""
    return Path(envkit().make_channel(root, with_python=True))


def conda_project(root: Path, channel: Path) -> Path:
    """A project whose default env is `envs/c.yaml` on the local `channel`; one stage uses it."""
    envs_dir = root / "envs"
    envs_dir.mkdir(parents=True, exist_ok=True)
    spec = {"channels": [str(channel.resolve())], "dependencies": list(CONDA_SPECS)}
    (envs_dir / "c.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    stage = {"cmd": "hello > out/hi.txt && greet >> out/hi.txt", "outs": ["out/hi.txt"]}
    write_manifest(root, {"hi": stage}, conda_env="envs/c.yaml")
    return root


def _conda_install(channel: str, prefix: str, cache: str, specs: Sequence[str]) -> None:
    envkit().solve_and_install(Path(channel), list(specs), Path(prefix), cache_dir=Path(cache))


def main(argv: Sequence[str]) -> int:
    if len(argv) < 5 or argv[0] != "conda-install":
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    _conda_install(argv[1], argv[2], argv[3], argv[4:])
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # Skip interpreter finalisation: in a process this short, py-rattler's runtime threads
    # sometimes still call into Python while it finalises, and the process dies of SIGSEGV or
    # SIGABRT ("PyGILState_Release ... finalizing") after the env was fully installed (seen in
    # ~5% of runs with a fresh XDG_CACHE_HOME, py-rattler 0.28, CPython 3.11).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
