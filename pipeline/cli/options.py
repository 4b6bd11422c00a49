"""Click options derived from the options objects, and what every command shares.

An option is defined once, as a field of `PlanOptions`, `ExecOptions`, `ReproOptions` or
`RunOptions` (see `core/options.py`); `from_fields` turns the named fields into click parameters, so
a command's flags, defaults and help are those of the Python API. Kept cheap to import: only
click and the standard library at module level.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from pipeline.core.options import flag_of

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class GlobalOptions:
    """Options given before the subcommand."""

    directory: str  # a project directory, or a manifest file given with -f
    verbose: int


def from_fields(cls: type, *names: str) -> Callable[[F], F]:
    """Decorate a command with the click parameters of `cls`'s fields `names`, in that order."""

    def decorate(function: F) -> F:
        for name in reversed(names):
            function = _parameter(cls, name)(function)
        return function

    return decorate


def _parameter(cls: type, name: str) -> Callable[[F], F]:
    field, flag = flag_of(cls, name)
    if not flag.names:
        return click.argument(name, nargs=-1, metavar=flag.metavar)
    if flag.negative:
        return click.option(
            *flag.names, name, is_flag=True, flag_value=False, default=True, help=flag.help
        )
    if field.type in (bool, "bool"):
        return click.option(*flag.names, name, is_flag=True, help=flag.help)
    kind: Any = None
    if flag.choices is not None:
        kind = click.Choice(flag.choices)
    elif flag.minimum is not None:
        kind = click.IntRange(min=flag.minimum)
    default = None if field.default is dataclasses.MISSING else field.default
    return click.option(
        *flag.names,
        name,
        type=kind,
        default=default,
        show_default=flag.choices is not None,
        multiple=flag.multiple,
        metavar=flag.metavar,
        help=flag.help,
    )


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave: those left unset (None) keep the options object's default."""
    return {k: v for k, v in values.items() if v is not None}


def command_line() -> str:
    """The command line as typed, for the run record."""
    return shlex.join(["pipeline", *sys.argv[1:]])


def say(text: str) -> None:
    """Progress of a long step (building an env), on stderr."""
    from pipeline.cli import report

    report.echo(text.rstrip("\n"), err=True)


def waiting(message: str) -> None:
    """Another pipeline process holds the project: say whom we wait for."""
    from pipeline.cli import report

    report.echo(message, err=True)


def fail(message: str, hint: str | None, code: int) -> NoReturn:
    """One error line (and hint), then exit with `code`."""
    from pipeline.cli import report

    report.error_line(message, hint)
    sys.exit(code)


def record_warning(result: Any) -> None:
    """A run that could not be recorded ran all the same; say so rather than fail it."""
    from pipeline.cli import report

    if result.record_error:
        warning = f"warning: the run was not recorded: {result.record_error}"
        report.echo(warning, fg="yellow", err=True)
        report.echo(
            "    its stages ran and the lock is up to date; fix the cause above, and later runs"
            " are recorded again",
            err=True,
        )
    if getattr(result, "remote_error", None):
        report.echo(f"warning: {result.remote_error}", fg="yellow", err=True)
        report.echo("    the remote's run-cache was not used; stages ran here instead", err=True)


json_flag = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
