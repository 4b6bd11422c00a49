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

from pipeline.core.yamlio import YamlDoc, parse_yaml
from pipeline.errors import EnvironmentSetupError, ManifestError
from pipeline.load.envkind import EnvKind

_VERSION = re.compile(r"^\s*\d+(\.\d+){0,2}\s*$")
_LOCAL = re.compile(r"^(-e\s+|--editable[\s=]+)?(\.{1,2}/\S*)(.*)$")
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


def read_spec(kind: EnvKind, path: Path) -> EnvRequest:
    """Parse the spec file of an env of `kind` (any kind but system)."""
    kind = EnvKind(kind)  # its name will do too
    text = _read(path)
    if kind is EnvKind.REQUIREMENTS:
        lines = (f"-r {path}",)
        return EnvRequest(requirements=lines, files=tuple(_with_includes(path, text, SPEC)))
    if kind is EnvKind.CONDA_LOCK:
        return EnvRequest(files=((SPEC, text),))
    doc = parse_yaml(text.decode("utf-8", "replace"), path)
    if not isinstance(doc.data, dict):
        raise doc.error((), "an environment spec must be a mapping")
    if kind is EnvKind.PYTHON_ENV:
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
        written = _source_text(doc, "python") or str(python)
        raise doc.error(("python",), f'write the version as a string: python: "{written}"')
    if python is not None and not (
        isinstance(python, (str, int)) and _VERSION.match(str(python).removeprefix("=="))
    ):
        raise doc.error(
            ("python",), f"python: {python!r} is not a version", 'give one such as "3.11"'
        )
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


def _source_text(doc: YamlDoc, key: str) -> str | None:
    """The scalar as written (`3.10`), which YAML would read as the float 3.1."""
    from pipeline.core.yamlparse import child  # noqa: PLC0415 - PyYAML only for an error's line

    node = child(doc.root, key) if doc.root is not None else None
    return str(node.value) if node is not None and isinstance(node.value, str) else None


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
    """Names (`conda-forge/label/dev` too) and URLs stay; a path becomes a `file://` URL.

    As in conda, only `./`, `../`, `/` or `~` make a path; relative ones are relative to the
    spec.
    """
    if channel in (".", "..") or channel.startswith(("./", "../", "/", "~")):
        return (base / Path(channel).expanduser()).resolve().as_uri()
    return channel


def _requirements(spec: Path, lines: list[str], text: bytes, python: str | None) -> EnvRequest:
    absolute = [_absolute_include(spec.parent, line) for line in lines]
    files: list[tuple[str, bytes]] = [(SPEC, text)]
    for line, resolved in zip(lines, absolute, strict=True):
        match = _INCLUDE.match(resolved)
        if match:
            files += _with_includes(Path(match.group(2)), _read(Path(match.group(2))), line)
        elif _LOCAL.match(line.strip()) and Path(resolved.split()[-1]).is_file():
            files.append((line.strip(), _read(Path(resolved.split()[-1]))))  # a local wheel
    return EnvRequest(python=python, requirements=tuple(absolute), files=tuple(files))


def _absolute_include(base: Path, line: str) -> str:
    """`-r`/`-c` files and `./local` paths relative to the spec, made absolute."""
    match = _INCLUDE.match(line)
    if match:
        return f"{match.group(1)} {(base / match.group(2)).resolve()}"
    local = _LOCAL.match(line.strip())
    if local:
        editable, path, rest = local.groups()
        return f"{editable or ''}{(base / path).resolve()}{rest}"
    return line.strip()


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
