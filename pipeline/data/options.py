"""The options of `pipeline push`, `fetch` and `pull` (kept light for the command line)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.options import option


@dataclass(frozen=True, kw_only=True)
class SyncOptions:
    """Which objects to move, to or from which remote, how many at once."""

    targets: tuple[str, ...] = option(
        default=(), metavar="[TARGET]...", help="Stages or paths (default: all)."
    )
    remote: str | None = option(
        "-r",
        "--remote",
        default=None,
        metavar="NAME",
        help="The remote to use [default: each output's own, else the default remote].",
    )
    jobs: int | None = option(
        "-j",
        "--jobs",
        default=None,
        metavar="N",
        minimum=1,
        help="Transfers at once [default: sized for the backend].",
    )
    all_commits: bool = option(
        "--all-commits",
        default=False,
        help="Every object the lock of any commit refers to, not only the current lock's.",
    )
    runs: bool = option(
        "--runs",
        default=False,
        help="Also run records and what they kept: params files, locks, logs, outputs.",
    )
