"""`foreach`/`do` and `matrix`: one manifest entry → many stages named `group@key` (DVC's rules).

foreach over a list of scalars names members by value (`build@us`); over a list holding any
mapping or list, by index (`train@0`); over a mapping, by key (`build@uk`, with `${key}` and
`${item}`). matrix takes the product of its lists in declared order; a scalar names itself, a
mapping or list names `<var><index>` (`train@cnn-cfg0`); `${item.<var>}` and `${key}` are set.
Items taken from the context (`foreach: ${models}`) remember where they came from, so their
values are tracked params under their own names.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from pipeline.core.yamlio import Loc, YamlDoc
from pipeline.load.context import Context
from pipeline.load.template import TemplateError, exact_key, interpolate, to_str

_PLAIN = re.compile(r"[A-Za-z0-9_-]+")  # a member key that can extend a dotted origin


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
    ref = exact_key(entry["foreach"])
    do_loc = (*loc, "do")
    return [
        Definition(
            f"{name}@{key}",
            entry["do"],
            context.with_items(items, _origin("item", ref, member)),
            do_loc,
            name,
        )
        for key, (member, items) in members.items()
    ]


def _foreach_members(doc: YamlDoc, loc: Loc, data: Any) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each member's name, its key or index in `data`, and its `item` (and `key`) values."""
    if isinstance(data, dict):
        # a non-string key cannot be spelled in a dotted origin (`models.0` is an index)
        members = {k: k if isinstance(k, str) else None for k in data}
        return {_name(doc, loc, k): (members[k], {"key": k, "item": v}) for k, v in data.items()}
    if any(isinstance(v, (dict, list)) for v in data):
        return {str(i): (i, {"item": v}) for i, v in enumerate(data)}
    return {_name(doc, loc, v): (i, {"item": v}) for i, v in enumerate(data)}


def _origin(alias: str, ref: str | None, member: str | int | None) -> dict[str, str]:
    """`{item: models.m1}` when the data was `${models}` and the member is plainly named."""
    if ref is None or member is None or not _PLAIN.fullmatch(str(member)):
        return {}
    return {alias: f"{ref}.{member}"}


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
    refs = {var: exact_key(raw) for var, raw in entry["matrix"].items()}
    definitions = []
    for combo in itertools.product(*(list(enumerate(v)) for v in axes.values())):
        item = {var: value for var, (_, value) in zip(axes, combo, strict=True)}
        origins: dict[str, str] = {}
        for var, (i, _) in zip(axes, combo, strict=True):
            origins.update(_origin(f"item.{var}", refs[var], i))
        parts = [
            f"{_name(doc, loc, var)}{i}"
            if isinstance(value, (dict, list))
            else _name(doc, loc, value)
            for var, (i, value) in zip(axes, combo, strict=True)
        ]
        key = "-".join(parts)
        items = {"item": item, "key": key}
        member = context.with_items(items, origins)
        definitions.append(Definition(f"{name}@{key}", body, member, loc, name))
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
