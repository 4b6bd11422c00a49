"""Test-only support: build environment artefacts (wheels, conda packages, channels) offline.

Nothing here is part of the `pipeline` package and nothing here may be imported by it. The
environment tests need real artefacts to install, yet these machines reach no conda channel and
must not depend on PyPI at test time, so this module writes them by hand with the stdlib:

- `build_wheel`: a pure-Python wheel that `uv pip install --offline --no-index --find-links DIR`
  accepts.
- `build_conda_package` / `index_channel` / `make_channel`: `.tar.bz2` conda packages and a local
  `file://` channel that `rattler` solves and installs from.
- `build_python_trick_package`: a conda package named `python` that turns the prefix into a venv
  of a host interpreter. **Test-only**: a real environment gets its python from conda-forge.
- `solve_and_install`: rattler's solve + install, hermetic (caches inside the test's tmp dir).

Every artefact is deterministic (fixed mtimes and timestamps), so building the same thing twice
gives byte-identical files; tests that hash artefacts can rely on that. Everything works offline
and takes milliseconds: a channel with three packages builds, indexes and installs in well under
a second.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Collection, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "PREFIX_PLACEHOLDER",
    "build_conda_package",
    "build_python_trick_package",
    "build_wheel",
    "current_subdir",
    "host_interpreter",
    "index_channel",
    "make_channel",
    "solve_and_install",
    "uv_environ",
]

_T = TypeVar("_T")

#: The placeholder conda-build writes into files instead of the build prefix. Installers
#: (rattler included) replace it with the real prefix in every file whose `paths.json` entry
#: declares it as `prefix_placeholder`.
PREFIX_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"

# Fixed times keep artefacts byte-for-byte reproducible. 2023-11-14T22:13:20Z, in ms for conda's
# `timestamp` field and as a tuple for zip. rattler's solver only looks at timestamps when
# `exclude_newer` is given: its default `timestamp_policy="require-timestamp"` then rejects a
# record with neither `indexed_timestamp` (which `index_fs` always adds) nor `timestamp`. We
# write one anyway, as conda-build does, so the records are complete even without indexing.
_TIMESTAMP_MS = 1_700_000_000_000
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry


# --------------------------------------------------------------------------------------------
# Wheels
# --------------------------------------------------------------------------------------------


def _wheel_name(name: str) -> str:
    """PEP 427/503 file-name form of a distribution name: runs of `-_.` become one `_`."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _record_hash(data: bytes) -> str:
    """A RECORD hash: `sha256=` plus the urlsafe base64 digest without `=` padding (PEP 376)."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def build_wheel(
    dest: Path,
    name: str,
    version: str = "1.0",
    *,
    requires: Sequence[str] = (),
    modules: Mapping[str, str] | None = None,
    scripts: Mapping[str, str] | None = None,
) -> Path:
    """Write the pure-Python wheel `{name}-{version}-py3-none-any.whl` into `dest`; return it.

    `requires` become `Requires-Dist` lines (PEP 508 strings, e.g. `"beta>=1"`). `modules` maps
    paths inside the wheel (`"alpha/__init__.py"`) to source text; the default is one package
    `{name}/__init__.py` (name normalised to an identifier) holding `VERSION = "{version}"`.
    `scripts` maps console-script names to `"module:function"` entry points.

    The wheel is a plain zip, so no build backend (and no network) is involved; RECORD carries
    real hashes because installers verify them.
    """
    dest.mkdir(parents=True, exist_ok=True)
    dist = _wheel_name(name)
    if modules is None:
        modules = {f"{dist}/__init__.py": f'VERSION = "{version}"\n'}
    dist_info = f"{dist}-{version}.dist-info"

    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        *(f"Requires-Dist: {req}" for req in requires),
    ]
    wheel_meta = [
        "Wheel-Version: 1.0",
        "Generator: tests.envkit",
        "Root-Is-Purelib: true",
        "Tag: py3-none-any",
    ]
    entries: dict[str, bytes] = {path: text.encode() for path, text in modules.items()}
    entries[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    entries[f"{dist_info}/WHEEL"] = ("\n".join(wheel_meta) + "\n").encode()
    if scripts:
        lines = ["[console_scripts]", *(f"{k} = {v}" for k, v in scripts.items())]
        entries[f"{dist_info}/entry_points.txt"] = ("\n".join(lines) + "\n").encode()

    record_path = f"{dist_info}/RECORD"
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in entries.items()]
    record.append(f"{record_path},,")  # RECORD cannot hash itself
    entries[record_path] = ("\n".join(record) + "\n").encode()

    wheel = dest / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in entries.items():
            info = zipfile.ZipInfo(path, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return wheel


def uv_environ(cache_dir: Path | None = None) -> dict[str, str]:
    """`os.environ` for running uv in a test: never download an interpreter, optional own cache.

    Nothing can be downloaded here, and a version request that falls through to a download
    hangs or fails late; `UV_PYTHON_DOWNLOADS=never` makes it fail at once instead. A
    `cache_dir` inside the test's tmp dir keeps the run hermetic.
    """
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    if cache_dir is not None:
        env["UV_CACHE_DIR"] = str(cache_dir)
    return env


# --------------------------------------------------------------------------------------------
# Conda packages and channels
# --------------------------------------------------------------------------------------------


def current_subdir() -> str:
    """The conda subdir of this machine, e.g. `linux-64`."""
    from rattler import Subdir

    return str(Subdir.current())


def _build_number(build: str) -> int:
    """conda's convention: the build number is the build string's trailing digits (`py_3` → 3)."""
    match = re.search(r"(\d+)$", build)
    return int(match.group(1)) if match else 0


def _tar_add(tar: tarfile.TarFile, path: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mode = mode
    info.mtime = _TIMESTAMP_MS // 1000
    tar.addfile(info, io.BytesIO(data))


def _tar_add_symlink(tar: tarfile.TarFile, path: str, target: str) -> None:
    info = tarfile.TarInfo(path)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mode = 0o777
    info.mtime = _TIMESTAMP_MS // 1000
    tar.addfile(info)


def build_conda_package(
    channel: Path,
    name: str,
    version: str = "1.0",
    *,
    build: str = "0",
    depends: Sequence[str] = (),
    files: Mapping[str, bytes | str] | None = None,
    executables: Collection[str] = (),
    noarch: str | None = "generic",
    subdir: str = "noarch",
    python_site_packages: Mapping[str, str] | None = None,
    entry_points: Sequence[str] = (),
    symlinks: Mapping[str, str] | None = None,
    extra_index: Mapping[str, Any] | None = None,
) -> Path:
    """Write `channel/{subdir}/{name}-{version}-{build}.tar.bz2`; return its path.

    - `files` maps prefix-relative paths (`"bin/hello"`, `"share/x.txt"`) to contents. A file
      that contains `PREFIX_PLACEHOLDER` is declared with `prefix_placeholder` in
      `info/paths.json` (`file_mode` text, or binary when it holds a NUL byte), so the
      installer rewrites it to the real prefix.
    - `executables`: paths among `files` that get mode 0o755.
    - `python_site_packages` (only with `noarch="python"`): module paths (`"greet/__init__.py"`)
      to source. conda's noarch-python layout stores them under `site-packages/`; the installer
      moves them to the python's site-packages (`lib/pythonX.Y/site-packages` for rattler,
      taken from the `python` record in the same environment, so such a package must depend
      on `python`).
    - `entry_points` (only with `noarch="python"`): `"name = module:function"` strings, written
      to `info/link.json`; the installer creates `bin/name` with the env's python as shebang.
    - `symlinks` maps prefix-relative paths to link targets (`path_type: softlink`); an
      absolute target is kept as is.
    - `extra_index`: more `info/index.json` fields (e.g. `python_site_packages_path`).

    The stdlib `tarfile` writes the legacy `.tar.bz2` format, which every conda installer still
    reads; `index_channel` must run afterwards for a solver to see the package.
    """
    if (python_site_packages or entry_points) and noarch != "python":
        raise ValueError("python_site_packages and entry_points need noarch='python'")
    payload: dict[str, bytes] = {
        path: data.encode() if isinstance(data, str) else data
        for path, data in (files or {}).items()
    }
    for module, source in (python_site_packages or {}).items():
        payload[f"site-packages/{module}"] = source.encode()
    unknown = set(executables) - set(payload)
    if unknown:
        raise ValueError(f"executables not among files: {sorted(unknown)}")

    index: dict[str, Any] = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": _build_number(build),
        "depends": list(depends),
        "subdir": subdir,
        "timestamp": _TIMESTAMP_MS,
    }
    if noarch is not None:
        index["noarch"] = noarch
    index.update(extra_index or {})

    paths: list[dict[str, Any]] = []
    for path in sorted(payload):
        data = payload[path]
        entry: dict[str, Any] = {
            "_path": path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_in_bytes": len(data),
        }
        if PREFIX_PLACEHOLDER.encode() in data:
            entry["prefix_placeholder"] = PREFIX_PLACEHOLDER
            entry["file_mode"] = "binary" if b"\0" in data else "text"
        paths.append(entry)
    # A softlink gets no hash or size: they would describe the target, which (for the python
    # trick package) lives outside the package. rattler recreates the link verbatim.
    paths.extend({"_path": path, "path_type": "softlink"} for path in sorted(symlinks or {}))
    paths.sort(key=lambda e: e["_path"])

    info: dict[str, bytes] = {
        "info/index.json": _json_bytes(index),
        "info/paths.json": _json_bytes({"paths": paths, "paths_version": 1}),
        # The pre-paths.json file list; old tools read it, new ones ignore it.
        "info/files": "".join(f"{e['_path']}\n" for e in paths).encode(),
    }
    if noarch == "python":
        link = {"noarch": {"type": "python", "entry_points": list(entry_points)}}
        info["info/link.json"] = _json_bytes({**link, "package_metadata_version": 1})

    out = channel / subdir / f"{name}-{version}-{build}.tar.bz2"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:bz2") as tar:
        for path, data in info.items():
            _tar_add(tar, path, data)
        for path in sorted(payload):
            _tar_add(tar, path, payload[path], 0o755 if path in executables else 0o644)
        for path, target in sorted((symlinks or {}).items()):
            _tar_add_symlink(tar, path, target)
    return out


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run one of rattler's coroutines from sync code, even under an already running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Inside an event loop (an async test) `asyncio.run` refuses; give it a loop of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def index_channel(channel: Path) -> None:
    """Write `repodata.json` into every subdir of `channel` (creating an empty `noarch/`).

    `rattler.index.index_fs` is a coroutine in py-rattler 0.28 and demands a `noarch/` dir,
    which a channel must have even when all its packages are platform-specific. It indexes every
    subdir holding packages (`linux-64/` included). Zstd and sharded repodata are off: a
    `file://` channel is read through plain `repodata.json`, and writing them only costs time.
    `force=True` re-reads packages rebuilt under the same file name. Note that `index_fs` stamps
    each record with `indexed_timestamp` = now, so `repodata.json` (unlike the packages) is not
    byte-reproducible.
    """
    from rattler.index import index_fs

    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    _run(index_fs(channel, write_zst=False, write_shards=False, force=True))
    # index_fs leaves an empty `.tmp/` behind; drop it so the channel holds only the channel.
    with contextlib.suppress(OSError):
        (channel / ".tmp").rmdir()


def host_interpreter(interpreter: Path | str = sys.executable) -> tuple[Path, tuple[int, int, int]]:
    """The real (base, symlink-free) interpreter behind `interpreter`, and its X.Y.Z version.

    A venv's `bin/python` or a pyenv shim is no good as a link target: the venv may vanish and
    a shim is a shell script that picks its python from the working directory. So ask the
    interpreter for `sys.base_prefix` and use `base_prefix/bin/pythonX.Y`, resolved. For the
    running interpreter that needs no subprocess.
    """
    if Path(interpreter) == Path(sys.executable):
        base_prefix, version = sys.base_prefix, tuple(sys.version_info[:3])
    else:
        probe = "import json, sys; print(json.dumps([sys.base_prefix, sys.version_info[:3]]))"
        out = subprocess.run(
            [str(interpreter), "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        base_prefix, version = json.loads(out)
    major, minor, micro = (int(v) for v in version)
    candidate = Path(base_prefix) / "bin" / f"python{major}.{minor}"
    real = Path(os.path.realpath(candidate if candidate.exists() else interpreter))
    if not real.is_file():
        raise FileNotFoundError(f"no interpreter found for {interpreter} (tried {candidate})")
    return real, (major, minor, micro)


def build_python_trick_package(
    channel: Path, interpreter: Path | str = sys.executable, *, version: str | None = None
) -> Path:
    """TEST-ONLY: a conda package named `python` that makes the prefix a venv of a host python.

    ***Never ship or use this outside tests.*** A real conda environment gets `python` from a
    channel such as conda-forge, which these machines cannot reach. This package stands in for
    it so that tests can install `noarch: python` packages and run the env's python:

    - subdir = this platform (`linux-64`), not noarch, so it looks like a real python;
    - version = the interpreter's X.Y.Z (or `version`), which is all rattler needs: it derives
      the site-packages dir `lib/pythonX.Y/site-packages` for noarch-python packages from the
      `python` record's major.minor (a `python_site_packages_path` index field overrides that;
      we do not set one);
    - `bin/python`, `bin/python3`, `bin/pythonX.Y`: absolute symlinks to the real host
      interpreter (`path_type: softlink`);
    - `pyvenv.cfg` with `home` = the interpreter's dir, so Python started through those links
      sets `sys.prefix` to the env prefix and uses its `lib/pythonX.Y/site-packages`;
    - `lib/pythonX.Y/site-packages/.keep`, so the dir exists before anything installs into it.

    The package depends on files outside the package (the host interpreter), so it only works
    on the machine that built it.
    """
    real, (major, minor, micro) = host_interpreter(interpreter)
    xy = f"{major}.{minor}"
    pyvenv = (
        f"home = {real.parent}\n"
        "include-system-site-packages = false\n"
        f"version = {major}.{minor}.{micro}\n"
    )
    return build_conda_package(
        channel,
        "python",
        version or f"{major}.{minor}.{micro}",
        build="0_envkit_host",
        noarch=None,
        subdir=current_subdir(),
        files={"pyvenv.cfg": pyvenv, f"lib/python{xy}/site-packages/.keep": b""},
        symlinks={f"bin/{n}": str(real) for n in ("python", "python3", f"python{xy}")},
    )


HELLO_SCRIPT = '#!/bin/sh\necho "hello from conda"\n'
GREET_SOURCE = 'def greet():\n    return "hi"\n\n\ndef main():\n    print(greet())\n'


def make_channel(root: Path, *, with_python: bool = False) -> Path:
    """A ready, indexed channel at `root/channel`; returns its path.

    Holds `hello` (noarch generic: `bin/hello` prints "hello from conda", and
    `share/hello/prefix.txt` holds the placeholder, so it reads the install prefix), `greet`
    (noarch python, depends on `python`: module `greet` with `greet()` returning "hi" and a
    `greet` entry point printing it) and, with `with_python`, the test-only python package from
    `build_python_trick_package`.
    """
    channel = root / "channel"
    build_conda_package(
        channel,
        "hello",
        files={"bin/hello": HELLO_SCRIPT, "share/hello/prefix.txt": PREFIX_PLACEHOLDER},
        executables=["bin/hello"],
    )
    build_conda_package(
        channel,
        "greet",
        build="py_0",
        depends=["python"],
        noarch="python",
        python_site_packages={"greet/__init__.py": GREET_SOURCE},
        entry_points=["greet = greet:main"],
    )
    if with_python:
        build_python_trick_package(channel)
    index_channel(channel)
    return channel


def solve_and_install(
    channel: Path, specs: Sequence[str], prefix: Path, *, cache_dir: Path | None = None
) -> list[Any]:
    """Solve `specs` against the local `channel` and install them into `prefix`; return records.

    Hermetic: repodata and package caches live in `cache_dir` (default: `.rattler-cache` beside
    the prefix, i.e. inside the test's tmp dir), never in the user's cache, so a package rebuilt
    under the same name-version-build in another test is never served stale. The prefix is made
    absolute, since rattler would write a relative one into the installed files.
    """
    import rattler

    prefix = prefix.absolute()
    cache = cache_dir if cache_dir is not None else prefix.parent / ".rattler-cache"
    gateway = rattler.Gateway(cache_dir=cache / "repodata")
    records = _run(
        rattler.solve(
            [rattler.Channel(channel.absolute().as_uri())],
            list(specs),
            gateway=gateway,
            platforms=[current_subdir(), "noarch"],
        )
    )
    _run(
        rattler.install(
            records, target_prefix=prefix, cache_dir=cache / "pkgs", show_progress=False
        )
    )
    return records
