"""YAML in and out: documents with positions for errors, and a parsed-document memo.

Manifest errors must name `file:line:column`, so documents are composed into a node tree first
and constructed from it; the tree is kept to map a validation error's path back to a position.
PyYAML itself lives in `yamlparse.py` and is imported only when a file must really be parsed
or written: a command whose documents all come from the memo never loads it.
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.core.inputlimits import check_size, input_limit_bytes
from pipeline.core.paths import display_path
from pipeline.errors import ManifestError

if TYPE_CHECKING:
    import yaml

Loc = tuple[str | int, ...]


class DocumentMemo(Protocol):
    """Where parsed documents are remembered by stat (`statmemo.StatMemo` implements it)."""

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
            return parse_yaml(read_document(self.path), self.path).node
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
        from pipeline.core.yamlparse import child  # noqa: PLC0415 - errors only

        for i, step in enumerate(loc):
            want_key = at_key and i == len(loc) - 1
            node = child(node, step, want_key) or node
        return (node.start_mark.line + 1, node.start_mark.column + 1)

    def error(
        self, loc: Loc, message: str, hint: str | None = None, *, at_key: bool = False
    ) -> ManifestError:
        """A ManifestError pointing at `loc`, formatted `file:line:col: a.b.c: message`."""
        line, col = self.locate(loc, at_key=at_key)
        where = ".".join(str(s) for s in loc)
        prefix = f"{self.display}:{line}:{col}: " + (f"{where}: " if where else "")
        return ManifestError(prefix + message, hint)


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
    key = f"{_PARSER}:{key or path}"
    cached = memo.get_document(key, st)
    if cached is not None:
        return YamlDoc(path, json.loads(cached))
    started = time.time_ns()
    doc = _load_text(path)
    text = json_exact(doc.data)
    if text is not None:
        memo.put_document(key, st, text, started)
    return doc


_PARSER = "yaml1.2+limits"  # memo entries made by another YAML reading are never reused
_JSON_SCALARS = (str, int, float, bool, type(None))
_JSON_MAX_NODES = 1_000_000  # YAML aliases can nest references exponentially ("billion laughs")


def json_exact(data: Any) -> str | None:
    """JSON text of `data` if JSON round-trips it exactly (str keys, plain types), else None.

    Tuples count as lists. Shared references are fine; cycles, non-string keys, dates, bytes,
    NaN and infinities, and documents that would expand past a million nodes are not.
    """
    stack, visited = [data], 0
    while stack:
        item = stack.pop()
        visited += 1
        if visited > _JSON_MAX_NODES:  # also what stops a cycle
            return None
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                return None
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif not isinstance(item, _JSON_SCALARS):
            return None
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (ValueError, RecursionError):
        return None


def _load_text(path: Path) -> YamlDoc:
    return parse_yaml(read_document(path), path)


def read_document(path: Path) -> str:
    """The text of an input file, refused if it is not a regular file or exceeds the limit.

    Reads at most one byte past the limit, so `/dev/zero` or a huge file behind a cloned
    repository's symlink costs nothing.
    """
    name = display_path(path)
    try:
        # non-blocking: opening a FIFO a hostile repository put there must not wait for a writer
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ManifestError(f"{name}: not a regular file", "replace it with a file")
            raw = handle.read(input_limit_bytes() + 1)
    except OSError as exc:
        raise ManifestError(f"{name}: cannot read: {exc.strerror}") from None
    check_size(name, len(raw))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{name}: not valid UTF-8 ({exc.reason})") from None


def parse_yaml(text: str, path: Path) -> YamlDoc:
    """Parse `text` as the content of `path` (named in messages); see `yamlparse.py`."""
    from pipeline.core.yamlparse import parse  # noqa: PLC0415 - PyYAML only when parsing

    data, root = parse(text, path)
    return YamlDoc(path, data, root)


def dump_yaml(data: Any) -> str:
    """Deterministic block-style YAML (sorted keys) for files people diff and commit."""
    from pipeline.core.yamlparse import dump  # noqa: PLC0415 - PyYAML only when writing

    return dump(data)
