"""`${a.b}` templating (DVC syntax) with shell quoting and a record of every key used.

A value substituted into a command is data, never code: `shellquote.py` escapes it for the
exact place it lands (bare, "double", 'single' quotes, `$(...)`, comments, here-documents). So
`x; touch pwned` always reaches the program as one argument, and DVC commands that already
quote their placeholders (`"${path}"`) run unchanged.

Rendering follows DVC: a string that is exactly one placeholder keeps the value's type (so
`frozen: ${flag}` is a bool); inside a larger string booleans render as `true`/`false`, `null`
as `None`; a mapping in a command is unpacked into `--key value` flags; a list is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.load.params import lookup
from pipeline.load.shellquote import BACKTICK, CODE, SUBST, ShellLexer, UnsafeSubstitution

_PLACEHOLDER = re.compile(r"(\\)?\$\{([^{}]*)\}")
_EXACT = re.compile(r"^\$\{([^{}]*)\}$")
_FLAG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # what `--name` may say after unpacking


class TemplateError(ValueError):
    """A placeholder names an unknown key or a value that cannot be substituted."""

    def __init__(self, key: str, reason: str, hint: str | None = None) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason
        self.hint = hint


@dataclass(frozen=True)
class Rendered:
    """The result of rendering: the value and the keys it read, in order of first use."""

    value: Any
    keys: tuple[str, ...]

    @property
    def text(self) -> str:
        return str(self.value)


def render(text: str, context: Mapping[str, Any], *, quote: bool) -> Rendered:
    """Render one string; `quote=True` for shell commands. `\\${` escapes a literal `${`."""
    if "${" not in text:
        return Rendered(text, ())
    exact = _EXACT.match(text)
    if exact and not quote:
        key = exact.group(1).strip()
        return Rendered(_value(key, context), (key,))
    keys: list[str] = []
    out: list[str] = []
    state = ShellLexer()
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        literal = text[pos : match.start()]
        state.feed(literal)
        out.append(literal)
        pos = match.end()
        if match.group(1):  # `\${...}`: drop the backslash, keep the rest literally
            out.append(match.group(0)[1:])
            state.feed(match.group(0)[1:])
            continue
        key = match.group(2).strip()
        keys.append(key)
        out.append(_substitute(key, _value(key, context), state if quote else None))
    out.append(text[pos:])
    return Rendered("".join(out), tuple(dict.fromkeys(keys)))


def interpolate(value: Any, context: Mapping[str, Any]) -> Rendered:
    """Render every string (and mapping key) inside a YAML value, unquoted."""
    if isinstance(value, str):
        return render(value, context, quote=False)
    keys: list[str] = []
    if isinstance(value, list):
        items = [_collect(interpolate(v, context), keys) for v in value]
        return Rendered(items, tuple(dict.fromkeys(keys)))
    if isinstance(value, dict):
        pairs = {
            _key(_collect(interpolate(k, context), keys)): _collect(interpolate(v, context), keys)
            for k, v in value.items()
        }
        return Rendered(pairs, tuple(dict.fromkeys(keys)))
    return Rendered(value, ())


def _collect(rendered: Rendered, keys: list[str]) -> Any:
    keys.extend(rendered.keys)
    return rendered.value


def _key(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _value(key: str, context: Mapping[str, Any]) -> Any:
    if not key:
        raise TemplateError(key, "empty placeholder ${}")
    try:
        return lookup(context, key)
    except KeyError:
        raise TemplateError(key, f"unknown parameter {key!r} in ${{{key}}}") from None


def _substitute(key: str, value: Any, state: ShellLexer | None) -> str:
    if state is None:
        return to_str(key, value)
    try:
        if isinstance(value, dict):
            return _flags(unpack(key, value), state)
        return state.escape(to_str(key, value))
    except UnsafeSubstitution as exc:
        raise TemplateError(key, f"cannot substitute {key!r} here: {exc}") from None


def _flags(flags: list[tuple[str, list[str]]], state: ShellLexer) -> str:
    if state.top.kind in (CODE, SUBST, BACKTICK):  # keys are data too: quoted like values
        words = (map(state.escape, [flag, *values]) for flag, values in flags)
        return " ".join(" ".join(group) for group in words)
    # inside quotes the flags stay one word, as the author wrote them
    return state.escape(" ".join(" ".join([flag, *values]) for flag, values in flags))


def to_str(key: str, value: Any) -> str:
    """A scalar as DVC renders it inside a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "None"
    if isinstance(value, (str, int, float)):
        return str(value)
    kind = "mapping" if isinstance(value, dict) else type(value).__name__
    where = "outside a command" if isinstance(value, dict) else "into a string"
    raise TemplateError(key, f"cannot interpolate {key!r}, a {kind}, {where}")


def unpack(key: str, mapping: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """A mapping as command-line flags: (flag, values) pairs, DVC's `store_true`/`nargs` style.

    {lr: 0.1, aug: {flip: true}, dbg: false, layers: [64, 32]} →
    [('--lr', ['0.1']), ('--aug.flip', []), ('--layers', ['64', '32'])]
    """
    flags: list[tuple[str, list[str]]] = []
    for name, value in _flatten(mapping):
        if not _FLAG_NAME.fullmatch(name):
            raise TemplateError(
                key,
                f"cannot unpack {key!r} into flags: key {name!r} is not a flag name",
                "flag names use letters, digits, '_', '-' and '.'; rename the key, or pass"
                " its value explicitly with ${" + key + ".<name>}",
            )
        if isinstance(value, bool):
            if value:
                flags.append((f"--{name}", []))
        elif isinstance(value, list):
            if any(isinstance(v, (list, dict)) for v in value):
                raise TemplateError(key, f"cannot interpolate nested list {key}.{name}")
            if value:
                flags.append((f"--{name}", [to_str(key, v) for v in value]))
        else:
            flags.append((f"--{name}", [to_str(key, value)]))
    return flags


def _flatten(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for name, value in mapping.items():
        full = f"{prefix}{name}"
        if isinstance(value, dict):
            items += _flatten(value, full + ".")
        else:
            items.append((full, value))
    return items
