"""`pipeline checkout RUN`: bring an experiment's params and outputs into the workspace.

The run stored its params files and its lock as objects; they are written back (refusing to
overwrite params files with uncommitted edits unless forced), then the outputs the lock names
are restored from the cache as by `pipeline checkout`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.atomic import atomic_write_text
from pipeline.core.git import git
from pipeline.core.lockfile import LOCK_NAME
from pipeline.errors import DataError, UsageError
from pipeline.plan.session import Session
from pipeline.runs.model import Artifact, RunRow

if TYPE_CHECKING:
    from pipeline.runs.runstore import RunStore


def apply_run_files(session: Session, store: RunStore, ref: str, *, force: bool) -> RunRow:
    """Write RUN's params files and lock into the workspace; returns the run."""
    run = store.find(ref)
    files = store.run_files(run.id)
    if not files:
        raise UsageError(
            f"run {run.id} ({run.kind}) kept no params or lock to check out", _why(store, run)
        )
    root = session.project.root
    params = [f for f in files if f.path != LOCK_NAME]
    if not force:
        at_risk = [f for f in params if _differs(session, f) and not _from_a_run(session, store, f)]
        _refuse_uncommitted(root, at_risk)
    # A run record may come from a remote: each path is checked (symlinks resolved) first.
    bounds = session.hasher.bounds
    texts = {bounds.path(a.path, follow=False): _object_text(session, a) for a in files}
    for path, text in texts.items():  # every object read before anything is written
        atomic_write_text(Path(path), text)
    return run


def _why(store: RunStore, run: RunRow) -> str:
    """What to check out instead of a run that kept no files: a sweep's points, or a commit."""
    if run.kind == "sweep":
        points = store.children_of([run.id]).get(run.id, [])
        names = ", ".join(points[:5]) + (", ..." if len(points) > 5 else "")
        return f"a sweep is checked out one point at a time: {names or 'it has no points'}"
    return (
        "only `pipeline run` experiments can be checked out; a repro's results belong"
        " to its commit: `git checkout` it, then `pipeline checkout`"
    )


def _differs(session: Session, artifact: Artifact) -> bool:
    current = session.hasher.hash(artifact.path)
    return current is None or current.hash != artifact.hash


def _from_a_run(session: Session, store: RunStore, artifact: Artifact) -> bool:
    """A params file exactly as some run left it (an earlier `checkout RUN`) is no user edit."""
    current = session.hasher.hash(artifact.path)
    return current is not None and store.known_file(artifact.path, current.hash)


def _refuse_uncommitted(root: Path, files: list[Artifact]) -> None:
    if not files:
        return
    paths = [f.path for f in files]
    out = git(root, "status", "--porcelain", "--untracked-files=all", "--", *paths)
    if out is None:
        return  # not a git repository: nothing tells an edit from a committed version
    edited = [line[3:] for line in out.splitlines() if line.strip()]
    if edited:
        raise UsageError(
            f"{edited[0]} has uncommitted edits that checking out the run would overwrite",
            "commit or stash them first, or pass --force",
        )


def _object_text(session: Session, artifact: Artifact) -> str:
    try:
        return session.store.path(artifact.hash).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise DataError(
            f"the cache no longer holds {artifact.path} of this run ({artifact.hash})",
            "it was freed by `pipeline gc`, or the cache was moved",
        ) from None
