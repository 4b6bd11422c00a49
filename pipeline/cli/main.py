"""The `pipeline` command line: the root group, and errors turned into one line and an exit code.

Kept thin and cheap to import: heavy modules (pydantic, networkx, rich) load inside the
commands, so `pipeline --version` and `--help` start in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click

from pipeline._version import __version__
from pipeline.cli.options import GlobalOptions, fail
from pipeline.errors import PipelineError

EXIT_INTERRUPTED = 130

# Every command, and the module of `pipeline/cli/` that defines it. A module is imported only
# when one of its commands runs (or `--help` lists them all), so `--version` loads none.
COMMANDS = {
    "repro": "repro",
    "status": "repro",
    "dag": "repro",
    "exec-stage": "repro",
    "checkout": "data",
    "add": "data",
    "gc": "data",
    "fsck": "data",
    "verify": "verify",
    "push": "data",
    "fetch": "data",
    "pull": "data",
    "remote": "remote",
    "env": "env",
    "run": "experiments",
    "runs": "runs",
    "compare": "runs",
    "metrics": "runs",
    "params": "runs",
    "lineage": "runs",
    "registry": "registry",
    "model": "model",
    "init": "init",
    "completion": "init",
    "serve": "serve",
    "plots": "plots",
    "ui": "ui",
}


class LazyGroup(click.Group):
    """A group whose commands are imported from their module when first needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"pipeline.cli.{COMMANDS[cmd_name]}")
        found: click.Command = module.COMMANDS[cmd_name]
        return found


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "directory",
    default=".",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False),
    help="Run as if pipeline was started in DIR.",
)
@click.option(
    "-f",
    "--file",
    "manifest",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Use this manifest (an MLproject or dvc.yaml) instead of searching for one.",
)
@click.option("-v", "--verbose", count=True, help="Show tracebacks for errors.")
@click.version_option(__version__, "--version", prog_name="pipeline")
@click.pass_context
def cli(ctx: click.Context, directory: str, manifest: str | None, verbose: int) -> None:
    """Reproducible ML pipelines: run only what changed, and know why.

    Reads the manifest in the current directory or its nearest parent that has one: an
    MLproject, or else a dvc.yaml (with params.yaml), which runs unchanged.
    """
    os.chdir(directory)  # like `git -C`: paths on the command line are relative to DIR
    directory = "."
    if manifest is not None:
        if not Path(manifest).is_file():
            raise click.BadParameter(f"{manifest} is not a file", param_hint="'-f'")
        directory = manifest
    ctx.obj = GlobalOptions(directory, verbose)


def run() -> NoReturn:
    """The `pipeline` executable: `main()`, then exit without interpreter teardown.

    Tearing down the several hundred modules a command loaded costs up to 0.1 s and does
    nothing useful here: every file is closed and every write committed before this point.
    """
    code: int | str | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: `pipeline dag | head`
            stream.flush()
    os._exit(code if isinstance(code, int) else (1 if code else 0))


class _Interrupts:
    """Whether Ctrl-C was pressed during this command.

    Python raises KeyboardInterrupt wherever the main thread happens to be, and a `with lock:`
    it lands in can then fail with "release unlocked lock" instead: after an interrupt, any
    error is reported as the interruption it is (exit 130), not as an internal error.
    """

    seen = False

    @classmethod
    def install(cls) -> None:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, cls._heard)

    @classmethod
    def _heard(cls, signum: int, frame: FrameType | None) -> None:
        cls.seen = True
        signal.default_int_handler(signum, frame)


def main(argv: list[str] | None = None) -> None:
    """The command line as a function: user errors become one line and an exit code."""
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    with contextlib.suppress(ValueError):  # not the main thread (e.g. a test): leave it be
        _Interrupts.install()
    try:
        cli.main(args=argv, prog_name="pipeline", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        fail("interrupted", None, EXIT_INTERRUPTED)
    except Exception as exc:
        _handle(exc, verbose)


def _handle(exc: Exception, verbose: bool) -> NoReturn:
    if verbose:
        raise exc
    if _Interrupts.seen and not isinstance(exc, PipelineError):
        fail("interrupted", None, EXIT_INTERRUPTED)
    if isinstance(exc, PipelineError):
        fail(exc.message, exc.hint, exc.exit_code)
    from pipeline.core.syserrors import disk_error

    # A full, read-only or failing disk is the user's to fix; a write that names no file is
    # placed by the directory the command ran in (`-C` changed into it).
    try:
        here: str | None = os.getcwd()
    except OSError:  # the directory itself was removed
        here = None
    refused = disk_error(exc, below=here)
    if refused is not None:
        fail(refused.message, refused.hint, refused.exit_code)
    fail(
        f"internal error: {type(exc).__name__}: {exc}",
        "rerun with -v for the traceback, and please report it",
        1,
    )
