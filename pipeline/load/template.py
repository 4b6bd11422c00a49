"""`${a.b}` templating (DVC syntax) with shell quoting and a record of every key used.

In an MLproject command a substituted value is data, never code: `shellquote.py` escapes it for
the exact place it lands (bare, "double", 'single' quotes, `$(...)`, comments, here-documents).
So `x; touch pwned` always reaches the program as one argument.

A dvc.yaml command is rendered raw, exactly as DVC renders it (`Parsing`), so a dvc.yaml runs
unchanged: `${opts}` may expand to several arguments and `${pattern}` to a glob. Only the string
values of an unpacked mapping are shell-quoted there, as DVC does.

Rendering follows DVC: a string that is exactly one placeholder keeps the value's type (so
`frozen: ${flag}` is a bool); inside a larger string booleans render as `true`/`false`, `null`
as `None`; a mapping in a command is unpacked into `--key value` flags; a list is an error.
`${list.0}` and `${dict.1.key}` index lists.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
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
class Parsing:
    """How a dvc.yaml command unpacks a mapping: `.dvc/config`'s `[parsing]` section."""

    bool_style: str = "store_true"  # or "boolean_optional": false gives `--no-x`
    list_style: str = "nargs"  # or "append": `--x 1 --x 2`

    @property
    def style(self) -> str:
        """This config as a `Stage.cmd_style` string (JSON-ready, for the project memo)."""
        return f"dvc:{self.bool_style}:{self.list_style}"

    @staticmethod
    def from_style(style: str) -> Parsing | None:
        """The inverse of `style`; None for the quoted MLproject style ("")."""
        if not style.startswith("dvc:"):
            return None
        _, bool_style, list_style = style.split(":")
        return Parsing(bool_style, list_style)


@dataclass(frozen=True)
class Rendered:
    """The result of rendering: the value and the keys it read, in order of first use."""

    value: Any
    keys: tuple[str, ...]

    @property
    def text(self) -> str:
        return str(self.value)


def render(
    text: str, context: Mapping[str, Any], *, quote: bool, raw: Parsing | None = None
) -> Rendered:
    """Render one string; `quote=True` for MLproject commands, `raw` for dvc.yaml commands.

    `\\${` escapes a literal `${`.
    """
    if "${" not in text:
        return Rendered(text, ())
    exact = _EXACT.match(text)
    if exact and not quote and raw is None:
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
        value = _value(key, context)
        if raw is not None:
            out.append(_raw(key, value, raw))
        else:
            out.append(_substitute(key, value, state, quote=quote))
    out.append(text[pos:])
    return Rendered("".join(out), tuple(dict.fromkeys(keys)))


def exact_key(value: Any) -> str | None:
    """The key of a string that is exactly one placeholder (`${models}` → `models`), or None."""
    exact = _EXACT.match(value) if isinstance(value, str) else None
    return exact.group(1).strip() if exact else None


def rename_keys(text: str, rename: Callable[[str], str]) -> str:
    """`text` with each placeholder's key passed through `rename` (`\\${...}` left alone)."""

    def one(match: re.Match[str]) -> str:
        return match.group(0) if match.group(1) else "${" + rename(match.group(2).strip()) + "}"

    return _PLACEHOLDER.sub(one, text)


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


def _raw(key: str, value: Any, parsing: Parsing) -> str:
    """DVC's own rendering of a value in a command: as is, a mapping as flags."""
    if not isinstance(value, dict):
        return to_str(key, value)
    words: list[str] = []
    for name, item in _flatten(value):
        words += _raw_flag(key, name, item, parsing)
    return " ".join(words)


def _raw_flag(key: str, name: str, value: Any, parsing: Parsing) -> list[str]:
    flag = f"--{name}"
    if isinstance(value, bool):
        if value:
            return [flag]
        return [f"--no-{name}"] if parsing.bool_style == "boolean_optional" else []
    if isinstance(value, list):
        if any(isinstance(v, (list, dict)) for v in value):
            raise TemplateError(key, f"cannot interpolate nested iterable in {name!r}")
        values = [shlex.quote(v) if isinstance(v, str) else to_str(key, v) for v in value]
        if parsing.list_style == "append":
            return [word for v in values for word in (flag, v)]
        return [flag, *values] if values else []
    return [flag, shlex.quote(value) if isinstance(value, str) else to_str(key, value)]


def _substitute(key: str, value: Any, state: ShellLexer, *, quote: bool) -> str:
    if not quote:
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
