"""PyYAML specifics: a strict safe loader that keeps node positions, and a deterministic dump.

Only `yamlio.py` imports this module, and only when a document must really be parsed or written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.inputlimits import check_size, check_tree
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

    def construct_tree(self, node: yaml.Node, memo: dict[int, Any]) -> Any:
        """Plain maps, lists and scalars built directly, 3-4x faster than PyYAML's generic path.

        Only for a node graph the input limits accepted: acyclic and at most
        `inputlimits.MAX_DEPTH` deep, so this recursion is bounded. Other tags (timestamps,
        sets, merge keys `<<`) go to PyYAML's constructor.
        """
        if isinstance(node, yaml.ScalarNode):
            fast = _FAST_SCALARS.get(node.tag)
            return fast(self, node) if fast else self.construct_object(node, deep=True)
        key = id(node)
        if key in memo:  # an alias: the same object, as PyYAML builds it
            return memo[key]
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            value: Any = [self.construct_tree(item, memo) for item in node.value]
        elif isinstance(node, yaml.MappingNode) and node.tag == _MAP and not _merges(node):
            _check_duplicate_keys(node)
            value = {}
            for key_node, value_node in node.value:
                name = self.construct_tree(key_node, memo)
                if isinstance(name, (list, dict)):
                    raise yaml.constructor.ConstructorError(
                        None, None, "found unhashable key", key_node.start_mark
                    )
                value[name] = self.construct_tree(value_node, memo)
        else:
            value = self.construct_object(node, deep=True)
        memo[key] = value
        return value

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


_SEQ, _MAP = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_FAST_SCALARS: dict[str, Any] = {
    "tag:yaml.org,2002:str": lambda _loader, node: node.value,
    "tag:yaml.org,2002:null": lambda _loader, node: None,
    "tag:yaml.org,2002:int": _StrictLoader.construct_yaml12_int,
    "tag:yaml.org,2002:bool": _StrictLoader.construct_yaml_bool,
    "tag:yaml.org,2002:float": _StrictLoader.construct_yaml_float,
}


def _merges(node: yaml.MappingNode) -> bool:
    return any(key.tag == "tag:yaml.org,2002:merge" for key, _ in node.value)


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
    """Safe-load `text` (the content of `path`, named in messages) into data and node tree.

    The node graph is measured against the input limits (`inputlimits.py`) before any value
    is constructed: a bomb, a recursive alias or a deep chain never reaches the constructor.
    """
    name = display_path(path)
    check_size(name, len(text))
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            check_tree(name, root, _expand_node)
        data = loader.construct_tree(root, {}) if root is not None else None
    except ManifestError:
        raise
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(path, exc, text) from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{display_path(path)}: invalid YAML: {exc}") from None
    except Exception as exc:  # e.g. `!!timestamp 2020-99` fails inside PyYAML's constructor
        raise ManifestError(f"{display_path(path)}: unsupported YAML value: {exc!r}") from None
    finally:
        loader.dispose()
    return data, root


def _expand_node(node: yaml.Node) -> list[yaml.Node] | int:
    """A collection's child nodes (keys and values), or a scalar's length, for the limits."""
    value = node.value
    if isinstance(value, str):
        return len(value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in value for part in pair]
    return value  # type: ignore[no-any-return]


def _yaml_error(path: Path, exc: yaml.MarkedYAMLError, text: str) -> ManifestError:
    mark = exc.problem_mark or exc.context_mark
    name = display_path(path)
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
    problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
    lines = text.splitlines()
    line = lines[mark.line] if mark and mark.line < len(lines) else ""
    hint = "check indentation and quoting near that position"
    if "\t" in line[: len(line) - len(line.lstrip())]:
        hint = "YAML indents with spaces, never tabs: replace the tabs on that line"
    elif "${" in line and ("[" in line or "{" in line.replace("${", "")):
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
