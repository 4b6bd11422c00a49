"""What a dvc.yaml declares at its top level: metrics files, plots and artifacts.

DVC lets a project name its metrics, plots and models outside any stage (example-get-started
declares `metrics: [eval/metrics.json]` although the file lives inside the `eval` out).
A manifest below the project root declares paths relative to its folder; they are stored
project-relative, and a project's `Declared` merges those of all its manifests.
They are kept here, rendered and validated, as plain frozen values that survive the project
memo's JSON round trip; readers such as `metrics show` use them next to stage `metrics:`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ArtifactDecl", "Declared", "PlotDecl"]


@dataclass(frozen=True)
class PlotDecl:
    """One top-level plot: a data file path or an id, and how to draw it (DVC's keys)."""

    id: str
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactDecl:
    """One named artifact (a model, usually): where it is and how it is described."""

    name: str
    path: str
    type: str | None = None
    desc: str | None = None
    labels: tuple[str, ...] = ()
    meta: Any = None


@dataclass(frozen=True)
class Declared:
    """The top-level `metrics`, `plots` and `artifacts` of a manifest, in file order."""

    metrics: tuple[str, ...] = ()
    plots: tuple[PlotDecl, ...] = ()
    artifacts: tuple[ArtifactDecl, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": list(self.metrics),
            "plots": [{"id": p.id, "props": p.props} for p in self.plots],
            "artifacts": [_artifact_json(a) for a in self.artifacts],
        }

    @classmethod
    def merged(cls, parts: Iterable[Declared]) -> Declared:
        """The declarations of several manifests (one project), in manifest order."""
        parts = list(parts)
        return cls(
            metrics=tuple(dict.fromkeys(m for p in parts for m in p.metrics)),
            plots=tuple(x for p in parts for x in p.plots),
            artifacts=tuple(a for p in parts for a in p.artifacts),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Declared:
        return cls(
            metrics=tuple(data["metrics"]),
            plots=tuple(PlotDecl(p["id"], p["props"]) for p in data["plots"]),
            artifacts=tuple(
                ArtifactDecl(**{**a, "labels": tuple(a["labels"])}) for a in data["artifacts"]
            ),
        )


def _artifact_json(artifact: ArtifactDecl) -> dict[str, Any]:
    return {
        "name": artifact.name,
        "path": artifact.path,
        "type": artifact.type,
        "desc": artifact.desc,
        "labels": list(artifact.labels),
        "meta": artifact.meta,
    }
