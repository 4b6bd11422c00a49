"""Helpers shared by the cache tests (tests/store and tests/data); this module holds no tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pipeline.store.objects import ObjectStore
from tests.conftest import Project, record

PARAMS_STAGE = {
    "stages": {
        "train": {
            "cmd": f"{record('train')}; echo lr=${{lr}} > model.txt",
            "outs": ["model.txt"],
        },
        "score": {
            "cmd": f"{record('score')}; cat model.txt | wc -c > score.txt",
            "deps": ["model.txt"],
            "metrics": [{"score.txt": {"cache": False}}],
        },
    }
}


def store_of(project: Project) -> ObjectStore:
    return ObjectStore(project.root / ".pipeline" / "cache")


def lock_hash(project: Project, stage: str, path: str) -> str:
    entry = project.lock()["stages"][stage]
    return next(o["hash"] for o in entry["outs"] if o["path"] == path)


def corrupt(path: Path) -> None:
    os.chmod(path, 0o644)
    path.write_text("garbage\n")


def _one_stage(cmd: str, deps: list[str], outs: list[object], **extra: object) -> dict:
    return {"stages": {"s": {"cmd": cmd, "deps": deps, "outs": outs, **extra}}}


def cache_project(make_project: Callable[..., Project]) -> Project:
    """params.yaml with `lr: 0.1` and PARAMS_STAGE (train → score), committed: the `p` fixture
    of tests/store and tests/data (their conftest)."""
    project = make_project("cache")
    project.params({"lr": 0.1})
    project.manifest(PARAMS_STAGE)
    return project
