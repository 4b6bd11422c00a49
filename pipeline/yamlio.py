"""YAML in and out: documents with positions for errors, a parsed-document memo, atomic writes.

Manifest errors must name `file:line:column`, so documents are composed into a node tree first
and constructed from it; the tree is kept to map a validation error's path back to a position.
PyYAML itself lives in `yamlparse.py` and is imported only when a file must really be parsed
or written: a command whose documents all come from the memo never loads it.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.errors import ManifestError

if TYPE_CHECKING:
    import yaml

Loc = tuple[str | int, ...]


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
        from pipeline.yamlparse import child  # noqa: PLC0415 - errors only

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


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


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


_PARSER = "yaml1.2"  # memo entries made by another YAML reading are never reused
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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{display_path(path)}: not valid UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise ManifestError(f"{display_path(path)}: cannot read: {exc.strerror}") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> YamlDoc:
    """Parse `text` as the content of `path` (named in messages); see `yamlparse.py`."""
    from pipeline.yamlparse import parse  # noqa: PLC0415 - PyYAML only when parsing

    data, root = parse(text, path)
    return YamlDoc(path, data, root)


def dump_yaml(data: Any) -> str:
    """Deterministic block-style YAML (sorted keys) for files people diff and commit."""
    from pipeline.yamlparse import dump  # noqa: PLC0415 - PyYAML only when writing

    return dump(data)


@functools.cache
def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """Write via a temp file in the same directory and `os.replace`, so readers never see half.

    `durable` also fsyncs the data before the rename (a power cut then leaves the old file or
    the new one); caches that may simply be lost skip it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a committed file wants the umask
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
