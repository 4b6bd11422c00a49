"""The one exception tree: every error a user can cause is a `PipelineError` with a hint.

The CLI maps each class to an exit code (DESIGN §9) and prints `message` plus `hint`, never a
traceback unless `-v` is given.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the tool reports to a user."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(PipelineError):
    """Bad command-line input: an unknown target, a conflicting flag."""


class AmbiguousRun(UsageError):
    """A run name or id prefix that fits several recorded runs."""


class OutsideProject(PipelineError):
    """A path from a manifest, lock, run record, remote or the command line resolves outside
    the project root (absolute, `..`, or through a symlink): never read, written or deleted."""


class ManifestError(PipelineError):
    """The manifest or a params file is malformed; `message` starts with `file:line:col:`."""


class StageFailed(PipelineError):
    """A stage command exited non-zero or did not create a declared output."""

    exit_code = 1

    def __init__(
        self, stage: str, message: str, hint: str | None = None, *, returncode: int | None = None
    ) -> None:
        super().__init__(message, hint)
        self.stage = stage
        self.returncode = returncode  # the command's exit code, when it ran


class EnvironmentSetupError(PipelineError):
    """An isolated environment could not be created."""

    exit_code = 3


class ModelError(PipelineError):
    """A model cannot be saved, loaded or served as asked: pickle without trust, untrusted
    skops types, a package without `MLmodel`, input that does not fit its signature."""


class DataError(PipelineError):
    """Missing or corrupt data, cache or remote objects, an unreadable lock file."""

    exit_code = 4


class DiskError(DataError):
    """The machine refused a file operation: disk full, read-only, no permission, I/O error.

    Not a bug of `pipeline` (`core/syserrors.py` decides which failures are): the user frees
    space or repairs the filesystem, then runs the command again.
    """


class ClusterError(PipelineError):
    """The cluster that runs stages failed us: its scheduler cannot be reached, or a stage
    kept losing its workers beyond `executor.retries`."""

    exit_code = 4


class Interrupted(PipelineError):
    """The run was stopped by Ctrl-C or SIGTERM."""

    exit_code = 130
