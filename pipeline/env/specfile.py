"""Plan side: read an environment's spec file into an `EnvRequest`, noting every file it read.

The kinds (DESIGN §6): MLflow's `python_env.yaml` (`python`, `build_dependencies`,
`dependencies`, `-r file` lines), a plain `requirements.txt`, a conda `environment.yml`
(`channels`, `dependencies`, a `pip:` section) and a conda-lock file (read when it is built).
Relative paths in a spec (`-r`, `-c`, local channels) are relative to the spec's directory and
are made absolute here, so installers can run from anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import EnvironmentSetupError, ManifestError
from pipeline.yamlio import YamlDoc, parse_yaml

_INCLUDE = re.compile(r"^\s*(-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)\s*$")
_ENV_KEYS = ("name", "channels", "dependencies", "variables", "prefix")
SPEC = "<spec>"  # the spec's label in `files`: its name is no part of what it asks for


@dataclass(frozen=True)
class EnvRequest:
    """What a spec asks for. `files` are its bytes and those of every file it includes."""

    python: str | None = None
    requirements: tuple[str, ...] = ()  # pip lines; `-r`/`-c` paths absolute
    channels: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()  # conda match specs
    pip: tuple[str, ...] = ()  # an environment.yml's `pip:` section
    variables: dict[str, str] = field(default_factory=dict)
    files: tuple[tuple[str, bytes], ...] = ()  # (SPEC or the include line, content)


def read_spec(kind: str, path: Path) -> EnvRequest:
    """Parse the spec file of an env of `kind` (one of declare.KINDS but system)."""
    text = _read(path)
    if kind == "requirements":
        lines = (f"-r {path}",)
        return EnvRequest(requirements=lines, files=tuple(_with_includes(path, text, SPEC)))
    if kind == "conda_lock":
        return EnvRequest(files=((SPEC, text),))
    doc = parse_yaml(text.decode("utf-8", "replace"), path)
    if not isinstance(doc.data, dict):
        raise doc.error((), "an environment spec must be a mapping")
    if kind == "python_env":
        return _python_env(doc, text)
    return _conda_env(doc, text)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EnvironmentSetupError(
            f"cannot read environment spec {path}: {exc.strerror or exc}",
            "check the path in the manifest; spec paths are relative to the project root",
        ) from None


def _python_env(doc: YamlDoc, text: bytes) -> EnvRequest:
    data = doc.data
    unknown = set(data) - {"python", "build_dependencies", "dependencies"}
    if unknown:
        raise doc.error(
            (sorted(unknown)[0],),
            f"unknown key {sorted(unknown)[0]!r}",
            "python_env.yaml has python, build_dependencies and dependencies",
            at_key=True,
        )
    python = data.get("python")
    if isinstance(python, float):
        raise doc.error(("python",), f'write the version as a string, e.g. python: "{python}"')
    if python is not None and not isinstance(python, (str, int)):
        raise doc.error(("python",), "expected a version such as \"3.11\"")
    lines = [*_str_list(doc, "build_dependencies"), *_str_list(doc, "dependencies")]
    return _requirements(doc.path, lines, text, None if python is None else str(python))


def _conda_env(doc: YamlDoc, text: bytes) -> EnvRequest:
    data = doc.data
    unknown = set(data) - set(_ENV_KEYS)
    if unknown:
        key = sorted(unknown)[0]
        known = "known: " + ", ".join(_ENV_KEYS)
        raise doc.error((key,), f"unknown key {key!r}", known, at_key=True)
    conda: list[str] = []
    pip: list[str] = []
    for i, dep in enumerate(data.get("dependencies") or []):
        if isinstance(dep, dict) and set(dep) == {"pip"}:
            pip += _str_list(doc, "dependencies", i, "pip")
        elif isinstance(dep, (str, int, float)):
            conda.append(str(dep))
        else:
            raise doc.error(("dependencies", i), "expected a match spec or {pip: [...]}")
    channels = tuple(_channel(doc.path.parent, c) for c in _str_list(doc, "channels"))
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise doc.error(("variables",), "expected a mapping of environment variables")
    request = _requirements(doc.path, pip, text, None)
    return EnvRequest(
        channels=channels,
        conda=tuple(conda),
        pip=request.requirements,
        variables={str(k): str(v) for k, v in variables.items()},
        files=request.files,
    )


def _str_list(doc: YamlDoc, *loc: str | int) -> list[str]:
    value: Any = doc.data
    for step in loc:
        value = value.get(step) if isinstance(value, dict) else value[step]
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise doc.error(loc, "expected a list of strings")
    return [str(v) for v in value]


def _channel(base: Path, channel: str) -> str:
    """Names and URLs stay; a local path becomes a `file://` URL (relative to the spec)."""
    if "://" in channel or not (channel.startswith((".", "/", "~")) or "/" in channel):
        return channel
    return (base / Path(channel).expanduser()).resolve().as_uri()


def _requirements(spec: Path, lines: list[str], text: bytes, python: str | None) -> EnvRequest:
    absolute = [_absolute_include(spec.parent, line) for line in lines]
    files: list[tuple[str, bytes]] = [(SPEC, text)]
    for line, resolved in zip(lines, absolute, strict=True):
        match = _INCLUDE.match(resolved)
        if match:
            files += _with_includes(Path(match.group(2)), _read(Path(match.group(2))), line)
    return EnvRequest(python=python, requirements=tuple(absolute), files=tuple(files))


def _absolute_include(base: Path, line: str) -> str:
    match = _INCLUDE.match(line)
    if not match:
        return line.strip()
    return f"{match.group(1)} {(base / match.group(2)).resolve()}"


def _with_includes(
    path: Path, text: bytes, label: str | None = None, seen: frozenset[Path] = frozenset()
) -> list[tuple[str, bytes]]:
    """A requirements file and, recursively, the files its `-r`/`-c` lines pull in."""
    files = [(label or path.name, text)]
    seen = seen | {path.resolve()}
    for raw in text.decode("utf-8", "replace").splitlines():
        match = _INCLUDE.match(raw.split(" #")[0])
        if match:
            child = (path.parent / match.group(2)).resolve()
            if child in seen:
                raise ManifestError(f"{path}: `{raw.strip()}` includes itself in a loop")
            files += _with_includes(child, _read(child), raw.strip(), seen)
    return files
