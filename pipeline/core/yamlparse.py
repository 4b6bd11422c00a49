"""PyYAML specifics: a strict safe loader that keeps node positions, and a deterministic dump.

Only `yamlio.py` imports this module, and only when a document must really be parsed or written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.paths import display_path
from pipeline.errors import ManifestError

try:  # the C parser and emitter are 5-10x faster; pure Python is the fallback
    from yaml import CSafeDumper as _SafeDumper
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - libyaml is in every wheel we install
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _StrictLoader(_SafeLoader):
    """A safe loader with YAML 1.2 scalars (as DVC reads) and no duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _check_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml12_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        body = text.lstrip("+-")
        sign = -1 if text.startswith("-") else 1
        if body.startswith(("0o", "0x")):
            return sign * int(body[2:], 8 if body[1] == "o" else 16)
        return sign * int(body, 10)  # 1.2: `017` is seventeen, not octal fifteen


# YAML 1.2's core schema, which DVC (ruamel) reads: `yes`/`no`/`on`/`off` are strings, `1e-5`
# is a float, `017` is decimal, `1:30` is a string. PyYAML alone implements YAML 1.1.
_YAML12 = {
    "tag:yaml.org,2002:bool": (r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    "tag:yaml.org,2002:int": (r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    "tag:yaml.org,2002:float": (
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
}


class _Dumper(_SafeDumper):
    """Writes with the same scalar rules, so a string such as `1e-5` is quoted, not a float."""


for _cls in (_StrictLoader, _Dumper):
    _cls.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML12]
        for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
    }
    for _tag, (_pattern, _first) in _YAML12.items():
        _cls.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml12_int)


def _check_duplicate_keys(node: yaml.Node) -> None:
    if not isinstance(node, yaml.MappingNode):  # e.g. `!!set 5`; the base class reports it
        return
    seen: set[tuple[str, str]] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
            continue
        key = (key_node.tag, key_node.value)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
            )
        seen.add(key)


def child(node: yaml.Node, step: str | int, want_key: bool = False) -> yaml.Node | None:
    """The node one step (mapping key or list index) below `node`, or None."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(step):
                return key_node if want_key else value_node
    elif (
        isinstance(node, yaml.SequenceNode)
        and isinstance(step, int)
        and 0 <= step < len(node.value)
    ):
        return node.value[step]  # type: ignore[no-any-return]
    return None


def parse(text: str, path: Path) -> tuple[Any, yaml.Node | None]:
    """Safe-load `text` (the content of `path`, named in messages) into data and node tree."""
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(path, exc, text) from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{display_path(path)}: invalid YAML: {exc}") from None
    except Exception as exc:  # e.g. `!!timestamp 2020-99` fails inside PyYAML's constructor
        raise ManifestError(f"{display_path(path)}: unsupported YAML value: {exc!r}") from None
    finally:
        loader.dispose()
    return data, root


def _yaml_error(path: Path, exc: yaml.MarkedYAMLError, text: str) -> ManifestError:
    mark = exc.problem_mark or exc.context_mark
    name = display_path(path)
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
    problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
    lines = text.splitlines()
    line = lines[mark.line] if mark and mark.line < len(lines) else ""
    hint = "check indentation and quoting near that position"
    if "${" in line and ("[" in line or "{" in line.replace("${", "")):
        hint = 'inside [...] or {...}, quote values that use ${...}: ["out-${item}.txt"]'
    return ManifestError(f"{where}: invalid YAML: {problem or 'cannot parse'}", hint)


def dump(data: Any) -> str:
    """Deterministic block-style YAML (sorted keys) for files people diff and commit."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1000,
    )
