"""`pipeline lineage PATH`: which run and stage produced these exact bytes, and from what.

Starting from the file's hash, each step finds the stage run that wrote an output with that
hash (a run that executed it is preferred over one that restored it), then does the same for
each of that stage's inputs, back to data no recorded stage produced: the raw data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.core.hashing import Hasher
from pipeline.errors import UsageError
from pipeline.runs.model import RunRow, StageRow

if TYPE_CHECKING:
    from pipeline.runs.runstore import RunStore

MAX_DEPTH = 50


@dataclass(frozen=True)
class Node:
    """A file by content; `run`/`stage` are None for raw data."""

    path: str
    hash: str
    run: RunRow | None = None
    stage: StageRow | None = None
    inputs: tuple[Node, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "hash": self.hash}
        if self.run is not None and self.stage is not None:
            data["run"] = self.run.id
            data["stage"] = self.stage.stage
            data["commit"] = self.run.git_commit
            data["dirty"] = self.run.git_dirty
            data["params"] = self.stage.params
            data["cmd"] = list(self.stage.cmd)
            data["started_at"] = self.stage.started_at or self.run.started_at
        data["inputs"] = [n.to_json() for n in self.inputs]
        return data


def lineage(store: RunStore, hasher: Hasher, path: str) -> Node:
    """The lineage of the workspace file `path` (project-relative)."""
    info = hasher.hash(path)
    if info is None:
        raise UsageError(f"{path} does not exist", "give a path to an output in the workspace")
    node = _node(store, path, info.hash, set(), 0)
    if node.run is None:
        raise UsageError(
            f"no recorded run produced {path} as it is now ({info.hash})",
            "it is raw data, was edited by hand, or was made before runs were recorded",
        )
    return node


def _node(store: RunStore, path: str, digest: str, seen: set[str], depth: int) -> Node:
    found = store.producer(digest, path) if depth < MAX_DEPTH and digest not in seen else None
    if found is None:
        return Node(path, digest)
    run, stage = found
    inner = seen | {digest}
    inputs = tuple(_node(store, d.path, d.hash, inner, depth + 1) for d in stage.deps)
    return Node(path, digest, run, stage, inputs)
