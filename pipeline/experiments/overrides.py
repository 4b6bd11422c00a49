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
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.atomic import atomic_write_text
from pipeline.core.fingerprint import canonical_json
from pipeline.core.paths import Bounds, PathRuleError, normalize
from pipeline.core.suggest import suggest_name
from pipeline.core.yamlio import dump_yaml, parse_yaml, read_document
from pipeline.errors import UsageError
from pipeline.load.params import (
    DEFAULT_PARAMS_FILE,
    flatten_all,
    load_params_file,
    lookup,
    parse_text,
    split_key,
)
from pipeline.load.project import Project

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
    """A command-line value as YAML would read it in params.yaml (a `#` is no comment here)."""
    if "#" in text:
        return text
    try:
        value = parse_text(text, "value.yaml") if text.strip() else text
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def points(project: Project, params: tuple[str, ...], sweeps: tuple[str, ...]) -> list[Point]:
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
    _check_splice(project.root / file, key, value)  # refused now, before any workspace exists
    return file, key, value


def _split_file(raw_key: str) -> tuple[str, str]:
    file, sep, key = raw_key.rpartition(":")
    if not (sep and file):
        return DEFAULT_PARAMS_FILE, raw_key
    try:
        return normalize(file), key
    except PathRuleError as exc:
        raise UsageError(
            f"--param {raw_key}: {exc}", "name a params file inside the project"
        ) from None


def _check_splice(path: Path, key: str, value: Any) -> None:
    """Splice into the file's text in memory and read it back: exactly `key` must change."""
    text = read_document(path)
    expected = flatten_all(_set(_parsed(text, path), split_key(key), value))
    after = flatten_all(_parsed(splice(text, path, key, value), path))
    if canonical_json(after) != canonical_json(expected):  # NaN equals NaN here
        raise UsageError(
            f"--param {key}: setting it in {path.name} would change other values too"
            " (an anchor, alias or merge key shares it)",
            f"edit {path.name} by hand, or give the value its own key",
        )


def _set(data: Any, parts: list[str | int], value: Any) -> Any:
    """A copy of `data` with the value at `parts` (found as `lookup` finds it) replaced.

    By path, not by dotted name: `[a.b]` names the key `a.b`, `tags[0]` a list item.
    """
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(data, list) and isinstance(head, int):
        return [_set(v, rest, value) if i == head else v for i, v in enumerate(data)]
    if isinstance(data, dict):
        name = head if head in data else str(head)
        return {k: _set(v, rest, value) if k == name else v for k, v in data.items()}
    return data


def _current(project: Project, file: str, key: str) -> Any:
    if Path(file).suffix.lower() in (".toml", ".py"):
        raise UsageError(
            f"--param {file}:{key}: values in {Path(file).suffix} files cannot be overridden",
            "move the param to a YAML or JSON params file",
        )
    params = load_params_file(project.root, file)
    if params is None:
        other = _holding(project, file, key)
        hint = f"it is in {other}: write --param {other}:{key}=VALUE" if other else None
        raise UsageError(
            f"--param {file}:{key}: {file} does not exist",
            hint or "name a params file of the project",
        )
    try:
        return lookup(params.data, key)
    except KeyError:
        known = list(flatten_all(params.data))
        prefix = "" if file == DEFAULT_PARAMS_FILE else f"{file}:"
        hint = suggest_name(key, known, "known: " + ", ".join(known[:12]) or "none")
        if key in known:  # a key with a dot in its own name
            hint = f"a key whose name contains a dot is written in brackets: [{key}]"
        other = _holding(project, file, key)
        if other is not None:  # e.g. a subfolder pipeline's own params.yaml
            hint = f"it is in {other}: write --param {other}:{key}=VALUE"
        raise UsageError(f"unknown param {prefix}{key} (not in {file})", hint) from None


def _holding(project: Project, file: str, key: str) -> str | None:
    """Another params file of the project (one its stages read) that has `key`, if any."""
    files = {f for stage in project.stages.values() for f in stage.params}
    for other in sorted(files | set(project.params_files)):
        params = load_params_file(project.root, other) if other != file else None
        try:
            if params is not None:
                lookup(params.data, key)
                return other
        except KeyError:
            continue
    return None


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


def _parsed(text: str, path: Path) -> Any:
    try:
        data = parse_text(text, path.name)
    except (ValueError, SyntaxError):
        data = None
    if not isinstance(data, dict):
        raise UsageError(f"--param: {path.name} would not parse after the change")
    return data


def apply(root: Path, overrides: tuple[Override, ...]) -> list[str]:
    """Write the overrides into the params files under `root`; returns the files changed."""
    by_file: dict[str, list[Override]] = {}
    for override in overrides:
        by_file.setdefault(override[0], []).append(override)
    bounds = Bounds(root)
    for file, items in by_file.items():
        path = Path(bounds.path(file))  # a params file linked to one outside is not written
        text = read_document(path)
        for _, key, value in items:
            text = splice(text, path, key, value)
        atomic_write_text(path, text)  # replaces a symlink itself, never its target
    return sorted(by_file)


def splice(text: str, path: Path, key: str, value: Any) -> str:
    """`text` with the scalar at `key` replaced by `value`, everything else byte for byte."""
    if path.suffix.lower() in (".toml", ".py"):
        raise UsageError(
            f"--param {key}: overriding values in {path.suffix} files is not supported",
            "move the param to a YAML or JSON params file",
        )
    from pipeline.core.yamlparse import child  # noqa: PLC0415 - PyYAML only when splicing YAML

    bom = "\ufeff" if text.startswith("\ufeff") else ""
    body = text[len(bom) :]
    node = parse_yaml(body, path).root
    for step in split_key(key):
        node = child(node, step) if node is not None else None
    if node is None or node.tag.endswith((":map", ":seq")):
        raise UsageError(f"--param {key}: only a single value (not a list or mapping) can be set")
    start, end = _offset(body, node.start_mark), _offset(body, node.end_mark)
    while end > start and body[end - 1] == "\n":  # a block scalar's span ends in line breaks
        end -= 1
    candidates = [_literal(value, path)]
    if isinstance(value, str) and path.suffix.lower() != ".json":
        candidates.insert(0, _plain(value))  # `tag: two words` where it reads back the same
    for literal in candidates:
        changed = bom + body[:start] + literal + body[end:]
        if literal and _reads_back(changed, path, key, value):
            return changed
    return bom + body[:start] + candidates[-1] + body[end:]


def _plain(value: str) -> str:
    dumped = dump_yaml(value).removesuffix("...\n").strip()
    return dumped if "\n" not in dumped and len(dumped) < 200 else ""


def _reads_back(text: str, path: Path, key: str, value: Any) -> bool:
    try:
        return canonical_json(lookup(parse_text(text, path.name), key)) == canonical_json(value)
    except (ValueError, SyntaxError, KeyError, TypeError):
        return False


def _offset(text: str, mark: Any) -> int:
    lines = text.splitlines(keepends=True)
    return sum(len(line) for line in lines[: mark.line]) + int(mark.column)


def _literal(value: Any, path: Path) -> str:
    """The value as a scalar that can stand anywhere, flow collections included.

    A JSON string is a valid YAML double-quoted scalar: no comma, bracket or `#` in it can
    become structure. Non-finite floats have YAML spellings and none in JSON.
    """
    if isinstance(value, float) and not math.isfinite(value):
        if path.suffix.lower() == ".json":
            raise UsageError(f"{path.name}: JSON cannot hold {value}")
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return json.dumps(value, ensure_ascii=False)
