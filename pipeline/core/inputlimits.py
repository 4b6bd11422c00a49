"""Limits on one input document, so a hostile or broken file fails in milliseconds, clearly.

Every manifest, params file, lock and spec file is checked here: its size before parsing, then
its tree (the YAML node graph, or the data a JSON, TOML or Python-literal file gave) before
anything walks it. Aliases make a YAML document a graph, so a few hundred bytes can stand for a
billion values ("billion laughs"), a chain of anchors for thousands of nesting levels, and an
anchor can contain itself. The walk is iterative and memoised per shared node, so measuring a
bomb costs as much as its text, never its expansion; the template context, the memo and
pydantic, which copy or recurse, only ever see documents within the limits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from pipeline.errors import ManifestError

MAX_BYTES = 64 * 1024 * 1024  # a whole file; the largest real locks are a few MB
MAX_VALUES = 1_000_000  # mappings, lists and scalars, every alias expanded
MAX_DEPTH = 100  # nesting levels, aliases expanded; loaders and templates recurse per level
MAX_STRING = 1024 * 1024  # characters in one string; shell quoting reads commands per character
FACTOR_VAR = "PIPELINE_INPUT_LIMIT_FACTOR"  # multiplies every limit but MAX_DEPTH

T = TypeVar("T")


def _factor() -> int:
    try:
        return max(1, int(os.environ.get(FACTOR_VAR, "1")))
    except ValueError:
        return 1


def _refuse(name: str, problem: str) -> ManifestError:
    return ManifestError(
        f"{name}: {problem}",
        f"such a file is refused so that no command hangs on it; if it is genuine, set"
        f" {FACTOR_VAR}=N to raise the size limits N times",
    )


def input_limit_bytes() -> int:
    """The largest file accepted, in bytes."""
    return MAX_BYTES * _factor()


def check_size(name: str, size: int) -> None:
    """Refuse a file of `size` bytes (or characters) before it is parsed."""
    limit = input_limit_bytes()
    if size > limit:
        shown = f"{limit // 2**20} MB" if limit % 2**20 == 0 else f"{limit:,} bytes"
        raise _refuse(name, f"file is larger than the input limit of {shown}")


def check_tree(name: str, root: T, expand: Callable[[T], list[T] | int]) -> None:
    """Refuse a document graph that is cyclic, too deep, too large or holds a huge string.

    `expand(node)` is a container's children, or a leaf's string length (0 if not a string).
    Shared containers are measured once; the walk keeps its own stack (no recursion).
    """
    _Walk(name, expand, _factor()).run(root)


class _Walk:
    """One post-order walk; `done` maps a container's id to (values, depth), aliases expanded."""

    def __init__(self, name: str, expand: Callable[[Any], list[Any] | int], factor: int) -> None:
        self.name, self.expand, self.factor = name, expand, factor
        self.done: dict[int, tuple[int, int]] = {}
        self.ancestors: set[int] = set()

    def run(self, root: Any) -> None:
        first = self.expand(root)
        if isinstance(first, int):
            _check_string(self.name, first, self.factor)
            return
        stack: list[tuple[int, Any, bool]] = [(id(root), first, False)]
        while stack:
            key, kids, opened = stack.pop()
            if opened:
                self.ancestors.discard(key)
                self.done[key] = self._combine(*kids)
            elif key not in self.done:
                self.ancestors.add(key)
                pending: list[tuple[int, Any, bool]] = []
                stack.append((key, self._open(kids, pending), True))
                stack.extend(pending)

    def _open(self, kids: list[Any], pending: list[tuple[int, Any, bool]]) -> tuple[int, list[int]]:
        """Check a container's leaves, queue its containers: (number of leaves, container ids)."""
        leaves, containers = 0, []
        for kid in kids:
            sub = self.expand(kid)
            if isinstance(sub, int):
                leaves += 1
                if sub > MAX_STRING:
                    _check_string(self.name, sub, self.factor)
                continue
            kid_id = id(kid)
            if kid_id in self.ancestors:
                raise _refuse(self.name, "a value contains itself (a recursive alias)")
            containers.append(kid_id)
            pending.append((kid_id, sub, False))
        return leaves, containers

    def _combine(self, leaves: int, containers: list[int]) -> tuple[int, int]:
        done = self.done
        values = 1 + leaves + sum(done[c][0] for c in containers)
        depth = 1 + max((done[c][1] for c in containers), default=1 if leaves else 0)
        if values > MAX_VALUES * self.factor:
            raise _refuse(
                self.name,
                f"more than {MAX_VALUES * self.factor:,} values once aliases are expanded"
                " (a YAML bomb, or a file too large to load)",
            )
        if depth > MAX_DEPTH:
            raise _refuse(self.name, f"values nested more than {MAX_DEPTH} levels deep")
        return values, depth


def _check_string(name: str, length: int, factor: int) -> None:
    if length > MAX_STRING * factor:
        limit = MAX_STRING * factor // 1024
        raise _refuse(name, f"a string is longer than the input limit of {limit:,} KB")


def check_data(name: str, data: object) -> None:
    """`check_tree` over plain parsed data: dicts (keys and values), lists and tuples."""
    check_tree(name, data, _expand_data)


def _expand_data(value: object) -> list[object] | int:
    if isinstance(value, dict):
        return [item for pair in value.items() for item in pair]
    if isinstance(value, (list, tuple)):
        return list(value)
    return len(value) if isinstance(value, (str, bytes)) else 0
