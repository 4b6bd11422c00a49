"""The templating context: params.yaml, `vars` and generator items, each value with its source.

As in DVC, sources are deep-merged and redefining an existing value is an error, never a
silent override. Every value a stage's templates read from a *file* becomes a tracked param
of that stage, grouped by file, so editing it reruns the stage and `status` names it. A
`foreach`/`matrix` item taken from a file (`foreach: ${models}`) is tracked under its name
there (`models.m1.thresh`, as DVC does); inline `vars` and items are the stage's definition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.load.params import flatten, lookup, split_key

INLINE = ""  # the source of values written in the manifest itself


class ContextError(ValueError):
    """Two sources define the same value."""


@dataclass(frozen=True)
class Context:
    """Template values and, for every leaf, the file it came from (INLINE if none)."""

    data: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    imports: dict[str, tuple[str, ...] | None] = field(default_factory=dict)  # None: whole
    aliases: dict[str, str] = field(default_factory=dict)  # `item.m` → `models.0`: its origin

    def merge(
        self,
        values: Mapping[str, Any],
        source: str,
        label: str,
        *,
        keys: tuple[str, ...] | None = None,
        item: str = "",
    ) -> Context:
        """A new context with `values` added; redefining a leaf raises ContextError.

        `keys` are the keys a `file:key1,key2` import selected (`item` is how it was written).
        """
        if source != INLINE and self._imported(source, keys, item or label):
            return self  # the same whole file twice is a no-op, as in DVC
        data = _deep_copy(self.data)
        _merge_into(data, values, "", label, self._labels())
        sources = dict(self.sources)
        sources.update(dict.fromkeys(_leaves(values), source))
        imports = dict(self.imports)
        if source != INLINE:
            before = imports.get(source, ())
            imports[source] = None if keys is None else (*(before or ()), *keys)
        return Context(data, sources, imports, self.aliases)

    def _imported(self, source: str, keys: tuple[str, ...] | None, item: str) -> bool:
        """True if the whole file is loaded again; DVC's errors for a partial and whole mix."""
        if source not in self.imports:
            return False
        done = self.imports[source]
        if keys is None and done is None:
            return True
        if keys is None or (done is not None and set(keys) & set(done)):
            raise ContextError(f"cannot load {item!r} as it's partially loaded already")
        if done is None:
            raise ContextError(f"cannot partially load {item!r} as it's already loaded.")
        return False

    def with_items(self, items: Mapping[str, Any], origins: Mapping[str, str]) -> Context:
        """Generator values (`item`, `key`) shadow anything of the same name.

        `origins` names where an item's value sits in the context (`item` → `models.m1`).
        """
        data = {**self.data, **items}
        sources = {k: v for k, v in self.sources.items() if _head(k) not in items}
        sources.update(dict.fromkeys(_leaves(items), INLINE))
        return Context(data, sources, self.imports, dict(origins))

    def unalias(self, key: str) -> str:
        """`item.thresh` → `models.m1.thresh` when the item came from `models`; else `key`."""
        for alias in sorted(self.aliases, key=len, reverse=True):
            if key == alias or key.startswith((alias + ".", alias + "[")):
                return self.aliases[alias] + key[len(alias) :]
        return key

    def tracked(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The file-backed values behind `keys`, as {file: {leaf key: value}}."""
        out: dict[str, dict[str, Any]] = {}
        for key in map(self._tracked_key, keys):
            for leaf, value in flatten(key, lookup(self.data, key)).items():
                source = self._source(leaf)
                if source != INLINE:
                    out.setdefault(source, {})[leaf] = value
        return out

    def _tracked_key(self, key: str) -> str:
        """The name a value is tracked under: its origin, if that still leads to it."""
        origin = self.unalias(key)
        try:
            lookup(self.data, origin)
        except KeyError:
            return key
        return origin

    def _source(self, key: str) -> str:
        parts = key.split(".")
        for end in range(len(parts), 0, -1):  # `a.list[0]` is backed by the leaf `a.list`
            candidate = ".".join(parts[:end])
            for probe in (candidate, candidate.split("[", 1)[0]):
                if probe in self.sources:
                    return self.sources[probe]
        return INLINE

    def _labels(self) -> dict[str, str]:
        return {k: (v or "inline vars") for k, v in self.sources.items()}


def _head(key: str) -> str | int:
    """The top-level name of a leaf key; params keys such as `..` or `a[` are not dotted paths."""
    try:
        return split_key(key)[0]
    except KeyError:
        return key.split(".", 1)[0]


def _leaves(values: Mapping[str, Any]) -> list[str]:
    leaves: list[str] = []
    for key, value in values.items():
        leaves += list(flatten(str(key), value))
    return leaves


def _merge_into(
    target: dict[str, Any],
    values: Mapping[str, Any],
    prefix: str,
    label: str,
    labels: dict[str, str],
) -> None:
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key in target and isinstance(target[key], dict) and isinstance(value, dict):
            _merge_into(target[key], value, name + ".", label, labels)
        elif key in target:
            where = labels.get(name, "an earlier source")
            raise ContextError(
                f"cannot redefine {name!r} from {label}: it is already set in {where}"
            )
        else:
            target[key] = _deep_copy(value)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
