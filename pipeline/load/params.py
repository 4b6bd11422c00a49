"""Parameter files: loading `params.yaml`, dotted-key lookup and flattening for diffs.

Params are tracked per leaf (`train.lr`), so a change reads as `param train.lr 0.1→0.01`
rather than "the train subtree changed".
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.inputlimits import check_data
from pipeline.core.paths import display_path
from pipeline.core.yamlio import DocumentMemo, load_yaml, parse_yaml, read_document
from pipeline.errors import ManifestError
from pipeline.load.pyparams import parse_python_params

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_PARAMS_FILE = "params.yaml"
_SEGMENT = re.compile(r"([^.\[\]]+)|\[([^\[\]]+)\]")


@dataclass(frozen=True)
class ParamsFile:
    """One loaded params file: its project-relative name and its top-level mapping."""

    name: str
    data: dict[str, Any]


def load_params_file(
    root: Path, name: str = DEFAULT_PARAMS_FILE, memo: DocumentMemo | None = None
) -> ParamsFile | None:
    """The params file `name` (relative to `root`), or None if it does not exist.

    The format follows the extension, as in DVC: `.json`, `.toml`, `.py` (literals only, never
    executed); anything else is YAML.
    """
    path = root / name
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    if suffix in _PARSERS:
        data = _parse_other(path, name, _PARSERS[suffix])
        return ParamsFile(name, data)
    doc = load_yaml(path, memo, name)
    if doc.data is None:
        return ParamsFile(name, {})
    if not isinstance(doc.data, dict):
        raise doc.error((), "a params file must be a mapping of names to values")
    return ParamsFile(name, doc.data)


def _parse_other(path: Path, name: str, parse: Callable[[str, str], Any]) -> dict[str, Any]:
    text = read_document(path)  # the same size limit as YAML
    try:
        data = parse(text, name)
    except (ValueError, SyntaxError, RecursionError, MemoryError) as exc:
        raise ManifestError(
            f"{display_path(path)}: cannot parse params file: {exc}",
            "fix the syntax; params files may be YAML, JSON, TOML or Python literals",
        ) from None
    check_data(display_path(path), data)  # and the same depth, value and string limits
    if not isinstance(data, dict):
        raise ManifestError(f"{display_path(path)}: a params file must be a mapping of names")
    return data


def _toml(text: str, name: str) -> Any:
    return tomllib.loads(text)


def _json(text: str, name: str) -> Any:
    return json.loads(text)


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    ".json": _json,
    ".toml": _toml,
    ".py": parse_python_params,
}


def parse_text(text: str, name: str) -> Any:
    """Parse params (or metrics) text by the extension of `name`; YAML unless it says otherwise.

    Raises ValueError (or SyntaxError) on malformed text.
    """
    parse = _PARSERS.get(Path(name).suffix.lower())
    if parse is not None:
        try:
            data = parse(text, name)
            check_data(name, data)
        except (RecursionError, MemoryError) as exc:
            raise ValueError(f"{name}: too deeply nested or too large ({exc!r})") from None
        except ManifestError as exc:
            raise ValueError(exc.message) from None
        return data
    try:
        return parse_yaml(text, Path(name)).data
    except ManifestError as exc:
        raise ValueError(exc.message) from None


def split_key(key: str) -> list[str | int]:
    """`a.b[0].c` → ['a', 'b', 0, 'c']; raises KeyError for a malformed key."""
    parts: list[str | int] = []
    pos = 0
    for match in _SEGMENT.finditer(key):
        gap = key[pos : match.start()]
        glued = gap == "" and match.group(1) is not None and bool(parts)  # `a[0]b`
        if gap not in ("", ".") or (gap == "." and not parts) or glued:
            raise KeyError(key)
        if match.group(1) is not None:
            parts.append(match.group(1))
        else:  # `[0]` indexes a list, `[name]` a mapping (DVC allows both)
            index = match.group(2).strip()
            parts.append(int(index) if index.isdigit() else index)
        pos = match.end()
    if not parts or pos != len(key):
        raise KeyError(key)
    return parts


def lookup(data: Any, key: str) -> Any:
    """The value at `a.b[0]` (or DVC's `a.b.0`); raises KeyError when any segment is missing."""
    value = data
    for part in split_key(key):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, dict) and str(part) in value:
            value = value[str(part)]
        elif isinstance(value, list) and _index(part, len(value)) is not None:
            value = value[_index(part, len(value)) or 0]
        else:
            raise KeyError(key)
    return value


def _index(part: str | int, size: int) -> int | None:
    """A list index from `[0]` or, as in DVC's `${list.0}`, a dotted `0`; None if out of range."""
    index = part if isinstance(part, int) else int(part) if part.isdigit() else None
    return index if index is not None and index < size else None


def flatten(key: str, value: Any) -> dict[str, Any]:
    """Leaves of `value` under `key`: {'train': {'lr': 1}} → {'train.lr': 1}. Lists are leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for sub, subvalue in value.items():
            out.update(flatten(f"{key}.{sub}", subvalue))
        return out
    return {key: value}


def overlay(data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` with each dotted key of `values` set; unreachable keys are ignored."""
    result = dict(data)
    for key, value in values.items():
        try:
            parts = split_key(key)
        except KeyError:
            continue
        _set(result, parts, value)
    return result


def _set(node: Any, parts: list[str | int], value: Any) -> None:
    """Set `value` at `parts` below `node`, copying each container on the way (lists too)."""
    head, *rest = parts
    slot = _slot(node, head, leaf=not rest)
    if slot is None:
        return
    if not rest:
        node[slot] = value
    elif isinstance(node[slot], (dict, list)):
        node[slot] = child = node[slot].copy()
        _set(child, rest, value)


def _slot(node: Any, part: str | int, *, leaf: bool) -> str | int | None:
    """Where `part` is in `node`; a new leaf key may be added to a mapping, never to a list."""
    if isinstance(node, list):
        return _index(part, len(node))
    for name in (part, str(part)):
        if name in node:
            return name
    return part if leaf else None


def suggest(key: str, data: dict[str, Any]) -> str | None:
    """A 'did you mean' hint for an unknown key, from the keys the file does have."""
    known = list(flatten_all(data))
    known += [k for k in _all_prefixes(known) if k not in known]
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None


def flatten_all(data: dict[str, Any]) -> dict[str, Any]:
    """Every leaf of a params mapping, by dotted key."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(str(key), value))
    return out


def _all_prefixes(keys: list[str]) -> set[str]:
    prefixes: set[str] = set()
    for key in keys:
        parts = key.split(".")
        prefixes.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return prefixes
