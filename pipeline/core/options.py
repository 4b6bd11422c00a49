"""Options defined once: a dataclass field carries its default, its command-line flags and help.

The options objects (`PlanOptions`, `ExecOptions`, and `ReproOptions`/`RunOptions` built from
them by inheritance) declare each field with `option(...)`. The command line derives its click
options from those fields (`cli/options.py`), so a flag, its default and its help text exist in
exactly one place, and the Python API and the CLI cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CLI = "cli"  # the metadata key under which a field keeps its `Flag`


@dataclass(frozen=True)
class Flag:
    """How an option is spelled on the command line.

    No `names` makes it the command's positional arguments. A `negative` flag switches a
    default-on option off (`--no-wait` gives `wait=False`).
    """

    names: tuple[str, ...]
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    minimum: int | None = None
    negative: bool = False
    multiple: bool = False


def option(
    *names: str,
    default: Any = dataclasses.MISSING,
    factory: Callable[[], Any] | None = None,
    help: str,
    **spelling: Any,
) -> Any:
    """A dataclass field with its default (or `factory`) and its command-line `Flag`."""
    metadata = {CLI: Flag(names, help, **spelling)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(cls: type, name: str) -> tuple[dataclasses.Field[Any], Flag]:
    """The field `name` of options class `cls`, with its `Flag`."""
    for found in dataclasses.fields(cls):
        if found.name == name and CLI in found.metadata:
            return found, found.metadata[CLI]
    raise KeyError(f"{cls.__name__} has no command-line option {name!r}")


def values_of(cls: type, options: Any) -> dict[str, Any]:
    """The fields of options class `cls` as `options` holds them, to build a `cls` from it."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(cls)}
