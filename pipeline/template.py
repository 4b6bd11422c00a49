"""`${a.b}` templating (DVC syntax) with shell quoting and a record of every key used.

A value substituted into a command is data, never code: it is always passed through
`shlex.quote`, so `x; touch pwned` reaches the program as one argument. Every key a template
reads becomes a tracked parameter of the stage, so changing it reruns the stage.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from pipeline.params import lookup

_PLACEHOLDER = re.compile(r"(\\)?\$\{([^{}]*)\}")


class TemplateError(ValueError):
    """A placeholder names an unknown key or a value that cannot be substituted."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class Rendered:
    """The result of rendering one string: its text and the keys it read."""

    text: str
    keys: tuple[str, ...]


def has_placeholders(text: str) -> bool:
    """Cheap pre-check so the common template-free string skips the regex machinery."""
    return "${" in text


def render(text: str, context: dict[str, Any], *, quote: bool) -> Rendered:
    """Substitute every `${key}` from `context`; `\\${` escapes a literal `${`."""
    if not has_placeholders(text):
        return Rendered(text, ())
    keys: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(0)[1:]
        key = match.group(2).strip()
        value = _value(key, context)
        keys.append(key)
        rendered = _to_text(key, value)
        return shlex.quote(rendered) if quote else rendered

    return Rendered(_PLACEHOLDER.sub(substitute, text), tuple(dict.fromkeys(keys)))


def _value(key: str, context: dict[str, Any]) -> Any:
    if not key:
        raise TemplateError(key, "empty placeholder ${}")
    try:
        return lookup(context, key)
    except KeyError:
        raise TemplateError(key, f"unknown parameter {key!r} in ${{{key}}}") from None


def _to_text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    kind = "null" if value is None else type(value).__name__
    raise TemplateError(key, f"parameter {key!r} is a {kind}; only a string, number or bool fits")
