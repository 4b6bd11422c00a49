"""YAML in and out: safe loading that remembers where every value came from, atomic writes.

Manifest errors must name `file:line:column`, so documents are composed into a node tree first
and constructed from it; the tree is kept to map a validation error's path back to a position.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from pipeline.errors import ManifestError

try:  # the C parser and emitter are 5-10x faster; pure Python is the fallback
    from yaml import CSafeDumper as _SafeDumper
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - libyaml is in every wheel we install
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

Loc = tuple[str | int, ...]


class _StrictLoader(_SafeLoader):
    """A safe loader that rejects duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _check_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)


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


class DocumentMemo(Protocol):
    """Where parsed documents are remembered by stat (`state.StateDB` implements it)."""

    def get_document(self, relpath: str, st: os.stat_result) -> str | None: ...
    def put_document(self, relpath: str, st: os.stat_result, text: str, at_ns: int) -> None: ...


@dataclass(frozen=True)
class YamlDoc:
    """A loaded document: its data, and the node tree to locate values in for error messages.

    A document served from the memo has no node tree; it is parsed again only if an error
    needs a position, which keeps the common, valid case fast.
    """

    path: Path
    data: Any
    node: yaml.Node | None = field(default=None, compare=False, repr=False)

    @property
    def root(self) -> yaml.Node | None:
        if self.node is not None or self.data is None:
            return self.node
        try:
            return parse_yaml(self.path.read_text(encoding="utf-8"), self.path).node
        except (ManifestError, OSError, UnicodeDecodeError):
            return None

    @property
    def display(self) -> str:
        """The path as a user would type it from the current directory."""
        return display_path(self.path)

    def locate(self, loc: Loc, *, at_key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the deepest node `loc` reaches; unknown steps are skipped.

        With `at_key`, the last step points at the mapping key rather than its value.
        """
        node = self.root
        if node is None:
            return (1, 1)
        for i, step in enumerate(loc):
            want_key = at_key and i == len(loc) - 1
            node = _child(node, step, want_key) or node
        return (node.start_mark.line + 1, node.start_mark.column + 1)

    def error(
        self, loc: Loc, message: str, hint: str | None = None, *, at_key: bool = False
    ) -> ManifestError:
        """A ManifestError pointing at `loc`, formatted `file:line:col: a.b.c: message`."""
        line, col = self.locate(loc, at_key=at_key)
        where = ".".join(str(s) for s in loc)
        prefix = f"{self.display}:{line}:{col}: " + (f"{where}: " if where else "")
        return ManifestError(prefix + message, hint)


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def _child(node: yaml.Node, step: str | int, want_key: bool = False) -> yaml.Node | None:
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


def load_yaml(path: Path, memo: DocumentMemo | None = None, key: str = "") -> YamlDoc:
    """Safe-load one YAML document; any parse problem becomes a ManifestError with a position.

    With a `memo`, a document whose stat is unchanged is served from its JSON form (PyYAML's
    constructor is the slowest part of a no-op `status` on a large lock file).
    """
    if memo is None:
        return _load_text(path)
    try:
        st = os.stat(path)
    except OSError:
        return _load_text(path)
    cached = memo.get_document(key or str(path), st)
    if cached is not None:
        return YamlDoc(path, json.loads(cached))
    started = time.time_ns()
    doc = _load_text(path)
    text = _json_exact(doc.data)
    if text is not None:
        memo.put_document(key or str(path), st, text, started)
    return doc


_JSON_SCALARS = (str, int, float, bool, type(None))


def _json_exact(data: Any) -> str | None:
    """JSON text of `data` if JSON round-trips it exactly (str keys, plain types), else None."""
    stack, seen = [data], set()
    while stack:
        item = stack.pop()
        if isinstance(item, (dict, list)):
            if id(item) in seen:  # an alias: possibly a cycle, which JSON cannot hold
                return None
            seen.add(id(item))
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                return None
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif not isinstance(item, (str, int, float, bool, type(None))) or (
            isinstance(item, float) and not math.isfinite(item)
        ):
            return None
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), check_circular=True)
    except (ValueError, RecursionError):
        return None


def _load_text(path: Path) -> YamlDoc:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{display_path(path)}: not valid UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise ManifestError(f"{display_path(path)}: cannot read: {exc.strerror}") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> YamlDoc:
    """Parse `text` as the content of `path` (used for messages only)."""
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(path, exc) from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{display_path(path)}: invalid YAML: {exc}") from None
    except Exception as exc:  # e.g. `!!timestamp 2020-99` fails inside PyYAML's constructor
        raise ManifestError(f"{display_path(path)}: unsupported YAML value: {exc!r}") from None
    finally:
        loader.dispose()
    return YamlDoc(path, data, root)


def _yaml_error(path: Path, exc: yaml.MarkedYAMLError) -> ManifestError:
    mark = exc.problem_mark or exc.context_mark
    name = display_path(path)
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
    problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
    return ManifestError(
        f"{where}: invalid YAML: {problem or 'cannot parse'}",
        "check indentation and quoting near that position",
    )


def dump_yaml(data: Any) -> str:
    """Deterministic block-style YAML (sorted keys) for files people diff and commit."""
    return yaml.dump(
        data,
        Dumper=_SafeDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1000,
    )


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and `os.replace`, so readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
