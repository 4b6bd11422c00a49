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
            data["host"] = self.stage.host or self.run.host
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


@dataclass(frozen=True)
class ModelLineage:
    """`pipeline lineage models:/…`: a package's producing run, its environment and inputs back
    to raw data, and how to build it again."""

    ref: str
    path: str
    hash: str
    version: tuple[str, int] | None
    node: Node
    metrics: dict[str, Any]
    rebuild: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        stage, run = self.node.stage, self.node.run
        env = None
        if stage is not None:
            packages = [list(p) for p in stage.packages] if stage.packages is not None else None
            env = {"name": stage.env_name, "digest": stage.env_digest, "packages": packages}
        return {
            "ref": self.ref,
            "name": self.version[0] if self.version else None,
            "version": self.version[1] if self.version else None,
            "path": self.path,
            "hash": self.hash,
            "run": run.id if run else None,
            "run_name": run.name if run else None,
            "stage": stage.stage if stage else None,
            "commit": run.git_commit if run else None,
            "dirty": run.git_dirty if run else None,
            "params": stage.params if stage else {},
            "metrics": self.metrics,
            "environment": env,
            "rebuild": list(self.rebuild),
            "lineage": self.node.to_json(),
        }


def package_lineage(
    store: RunStore, ref: str, path: str | None, digest: str, version: tuple[str, int] | None
) -> ModelLineage:
    """The lineage of the package `digest`, registered or written at `path`."""
    node = _node(store, path, digest, set(), 0) if path else Node("?", digest)
    if node.run is None or node.stage is None:
        raise UsageError(
            f"no recorded run produced {ref} ({digest})",
            "it was registered from a directory made by hand, or before runs were recorded;"
            " register a stage's output to get its lineage",
        )
    metrics = store.metrics_of([node.run.id]).get(node.run.id, {})
    return ModelLineage(ref, node.path, digest, version, node, metrics, _rebuild(node))


def _rebuild(node: Node) -> tuple[str, ...]:
    """Commands that build the package again: from its commit, or from the run's own files."""
    assert node.run is not None and node.stage is not None
    commands = []
    if node.run.git_commit:
        commands.append(f"git checkout {node.run.git_commit} && pipeline repro {node.stage.stage}")
    commands.append(f"pipeline checkout {node.run.id} && pipeline repro {node.stage.stage}")
    return tuple(commands)
