"""`foreach`/`do` and `matrix`: one manifest entry → many stages named `group@key` (DVC's rules).

foreach over a list of scalars names members by value (`build@us`); over a list holding any
mapping or list, by index (`train@0`); over a mapping, by key (`build@uk`, with `${key}` and
`${item}`). matrix takes the product of its lists in declared order; a scalar names itself, a
mapping or list names `<var><index>` (`train@cnn-cfg0`); `${item.<var>}` and `${key}` are set.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from pipeline.core.yamlio import Loc, YamlDoc
from pipeline.load.context import Context
from pipeline.load.template import TemplateError, interpolate, to_str


@dataclass(frozen=True)
class Definition:
    """One stage to build: its name, raw body, the context to render it in, and its origin."""

    name: str
    body: dict[str, Any]
    context: Context
    loc: Loc
    group: str | None = None


def expand(doc: YamlDoc, name: str, entry: dict[str, Any], context: Context) -> list[Definition]:
    """The stages one `stages:` entry stands for."""
    loc: Loc = ("stages", name)
    if "foreach" in entry:
        return _foreach(doc, name, entry, context, loc)
    if "matrix" in entry:
        return _matrix(doc, name, entry, context, loc)
    if "do" in entry:
        raise doc.error((*loc, "do"), "`do` without `foreach`", "add `foreach:` beside `do:`")
    return [Definition(name, entry, context, loc)]


def _foreach(
    doc: YamlDoc, name: str, entry: dict[str, Any], context: Context, loc: Loc
) -> list[Definition]:
    extra = sorted(set(entry) - {"foreach", "do"})
    if extra or "do" not in entry:
        problem = f"unknown key {extra[0]!r} beside foreach" if extra else "foreach without `do`"
        raise doc.error(loc, problem, "put the stage fields under `do:`")
    if not isinstance(entry["do"], dict):
        raise doc.error((*loc, "do"), "expected a mapping of stage fields under `do`")
    data = _data(doc, (*loc, "foreach"), entry["foreach"], context)
    members = _foreach_members(doc, (*loc, "foreach"), data)
    do_loc = (*loc, "do")
    return [
        Definition(f"{name}@{key}", entry["do"], context.with_items(items), do_loc, name)
        for key, items in members.items()
    ]


def _foreach_members(doc: YamlDoc, loc: Loc, data: Any) -> dict[str, dict[str, Any]]:
    if isinstance(data, dict):
        return {_name(doc, loc, k): {"key": k, "item": v} for k, v in data.items()}
    if any(isinstance(v, (dict, list)) for v in data):
        return {str(i): {"item": v} for i, v in enumerate(data)}
    return {_name(doc, loc, v): {"item": v} for v in data}


def _matrix(
    doc: YamlDoc, name: str, entry: dict[str, Any], context: Context, loc: Loc
) -> list[Definition]:
    if not isinstance(entry["matrix"], dict) or not entry["matrix"]:
        raise doc.error((*loc, "matrix"), "expected a mapping of names to lists of values")
    axes = {
        var: _data(doc, (*loc, "matrix", var), values, context, lists_only=True)
        for var, values in entry["matrix"].items()
    }
    body = {k: v for k, v in entry.items() if k != "matrix"}
    definitions = []
    for combo in itertools.product(*(list(enumerate(v)) for v in axes.values())):
        item = {var: value for var, (_, value) in zip(axes, combo, strict=True)}
        parts = [
            f"{_name(doc, loc, var)}{i}"
            if isinstance(value, (dict, list))
            else _name(doc, loc, value)
            for var, (i, value) in zip(axes, combo, strict=True)
        ]
        key = "-".join(parts)
        items = {"item": item, "key": key}
        definitions.append(Definition(f"{name}@{key}", body, context.with_items(items), loc, name))
    return definitions


def _data(doc: YamlDoc, loc: Loc, raw: Any, context: Context, *, lists_only: bool = False) -> Any:
    """A generator's values: inline, or a `${ref}` to a list or mapping in the context."""
    try:
        data = interpolate(raw, context.data).value
    except TemplateError as exc:
        raise doc.error(loc, exc.reason) from None
    allowed = (list,) if lists_only else (list, dict)
    if not isinstance(data, allowed):
        kind = "a list" if lists_only else "a list or a mapping"
        raise doc.error(loc, f"expected {kind}, got {type(data).__name__}")
    return data


def _name(doc: YamlDoc, loc: Loc, value: Any) -> str:
    """A member's name part; it becomes part of log file names and every report line."""
    text = to_str("", value) if isinstance(value, (str, int, float, bool)) or value is None else ""
    if not text or not text.isprintable() or any(c in text for c in " /:@\\"):
        raise doc.error(
            loc,
            f"cannot name a stage after {value!r}",
            "use simple values as keys: no spaces, control characters or any of / : @ \\",
        )
    return text
