"""`--param key=value` and `--sweep key=a,b,c`: parsed, validated, and written into params files.

A value is read as a YAML scalar (`50` is an int, `0.1` a float, `true` a bool, anything else a
string) and must fit the key's declared type (`parameters:` in the manifest) or, failing a
declaration, the type of its current value: an int param takes ints, a float param ints or
floats, a string param anything. An unknown key is an error with a did-you-mean. Values are
spliced into the params file's text where the old value stood, so comments and layout survive.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.params import DEFAULT_PARAMS_FILE, flatten_all, load_params_file, lookup, split_key
from pipeline.project import Project

Override = tuple[str, str, Any]  # (params file, key, value)


@dataclass(frozen=True)
class Point:
    """One experiment: every override it applies, and a name made of the swept ones."""

    overrides: tuple[Override, ...]
    name: str | None = None


def parse_assignment(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{flag} {text!r} is not KEY=VALUE", f"e.g. {flag} train.lr=0.1")
    return key.strip(), value


def scalar(text: str) -> Any:
    """A command-line value as YAML would read it in params.yaml."""
    from pipeline.params import parse_text  # noqa: PLC0415

    try:
        value = parse_text(text, "value.yaml") if text.strip() else text
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def points(
    project: Project, params: tuple[str, ...], sweeps: tuple[str, ...]
) -> list[Point]:
    """The grid: `--param`s apply to every point, each `--sweep` multiplies the points."""
    fixed = [_override(project, *parse_assignment(p, "--param")) for p in params]
    axes = []
    for sweep in sweeps:
        key, values = parse_assignment(sweep, "--sweep")
        choices = values.split(",")
        if any(not c.strip() for c in choices):
            raise UsageError(f"--sweep {sweep!r} needs values", "e.g. --sweep train.lr=0.1,0.01")
        axes.append([_override(project, key, c) for c in choices])
    if not axes:
        return [Point(tuple(fixed))]
    return [
        Point((*fixed, *combo), ",".join(f"{k}={_show(v)}" for _, k, v in combo))
        for combo in itertools.product(*axes)
    ]


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _override(project: Project, raw_key: str, raw_value: str) -> Override:
    file, key = _split_file(raw_key)
    current = _current(project, file, key)
    declared = project.parameters.get(key if file == DEFAULT_PARAMS_FILE else raw_key)
    value = _typed(raw_key, scalar(raw_value), current, declared)
    return file, key, value


def _split_file(raw_key: str) -> tuple[str, str]:
    file, sep, key = raw_key.rpartition(":")
    return (file, key) if sep and file else (DEFAULT_PARAMS_FILE, raw_key)


def _current(project: Project, file: str, key: str) -> Any:
    params = load_params_file(project.root, file)
    if params is None:
        raise UsageError(
            f"--param {file}:{key}: {file} does not exist", "name a params file of the project"
        )
    try:
        return lookup(params.data, key)
    except KeyError:
        known = list(flatten_all(params.data))
        from pipeline.manifest import suggest_name  # noqa: PLC0415

        prefix = "" if file == DEFAULT_PARAMS_FILE else f"{file}:"
        hint = suggest_name(key, known, "known: " + ", ".join(known[:12]) or "none")
        raise UsageError(f"unknown param {prefix}{key} (not in {file})", hint) from None


def _typed(name: str, value: Any, current: Any, declared: dict[str, Any] | None) -> Any:
    kind = (declared or {}).get("type") or _kind_of(current)
    converted = _convert(name, value, kind)
    if declared:
        _check_bounds(name, converted, declared)
    return converted


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, (dict, list)):
        return "structure"
    return "string"


def _convert(name: str, value: Any, kind: str) -> Any:
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "string": True,
        "path": True,
        "uri": True,
        "structure": False,
    }.get(kind, True)
    if not ok:
        shown = json.dumps(value) if not isinstance(value, str) else repr(value)
        hint = "edit lists and mappings in the params file" if kind == "structure" else None
        raise UsageError(f"--param {name}: expected {_article(kind)}, got {shown}", hint)
    if kind == "float":
        return float(value)
    if kind in ("string", "path", "uri") and not isinstance(value, str):
        return _show(value)
    return value


def _article(kind: str) -> str:
    return {"int": "an integer", "float": "a number", "bool": "true or false"}.get(kind, kind)


def _check_bounds(name: str, value: Any, declared: dict[str, Any]) -> None:
    low, high, choices = declared.get("min"), declared.get("max"), declared.get("choices")
    if (low is not None and value < low) or (high is not None and value > high):
        raise UsageError(f"--param {name}={value} is outside [{low}, {high}]")
    if choices is not None and value not in choices:
        raise UsageError(f"--param {name}={value} is not one of {choices}")


def apply(root: Path, overrides: tuple[Override, ...]) -> list[str]:
    """Write the overrides into the params files under `root`; returns the files changed."""
    by_file: dict[str, list[Override]] = {}
    for override in overrides:
        by_file.setdefault(override[0], []).append(override)
    for file, items in by_file.items():
        path = root / file
        text = path.read_text(encoding="utf-8")
        for _, key, value in items:
            text = splice(text, path, key, value)
        path.write_text(text, encoding="utf-8")
    return sorted(by_file)


def splice(text: str, path: Path, key: str, value: Any) -> str:
    """`text` with the scalar at `key` replaced by `value`, everything else byte for byte."""
    if path.suffix.lower() in (".toml", ".py"):
        raise UsageError(
            f"--param {key}: overriding values in {path.suffix} files is not supported",
            "move the param to a YAML or JSON params file",
        )
    from pipeline.yamlio import parse_yaml  # noqa: PLC0415
    from pipeline.yamlparse import child  # noqa: PLC0415

    node = parse_yaml(text, path).root
    for step in split_key(key):
        node = child(node, step) if node is not None else None
    if node is None or node.tag.endswith((":map", ":seq")):
        raise UsageError(f"--param {key}: only a single value (not a list or mapping) can be set")
    start, end = _offset(text, node.start_mark), _offset(text, node.end_mark)
    return text[:start] + _literal(value, path) + text[end:]


def _offset(text: str, mark: Any) -> int:
    lines = text.splitlines(keepends=True)
    return sum(len(line) for line in lines[: mark.line]) + int(mark.column)


def _literal(value: Any, path: Path) -> str:
    if isinstance(value, str) and path.suffix.lower() != ".json":
        from pipeline.yamlio import dump_yaml  # noqa: PLC0415

        dumped = dump_yaml(value).strip()
        return dumped.removesuffix("\n...").removesuffix("...").strip()
    return json.dumps(value)
