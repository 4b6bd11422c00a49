"""`registry export-tags`: GTO-style annotated tags from the event log, in a real git repo."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.runs.gittags import export_tags
from pipeline.runs.registry import Registry
from pipeline.runs.runstore import RunStore
from tests.runs.support import _row

A = "xxh3_128:" + "a" * 32
B = "xxh3_128:" + "b" * 32
C = "xxh3_128:" + "c" * 32


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True)
    return done.stdout


def test_tags_from_the_history_on_each_versions_commit(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    _git(root, "commit", "-q", "--allow-empty", "-m", "one")
    first = _git(root, "rev-parse", "HEAD").strip()
    _git(root, "commit", "-q", "--allow-empty", "-m", "two")
    second = _git(root, "rev-parse", "HEAD").strip()
    store = RunStore.for_project(root / ".pipeline")
    store.start(_row("r1", 1.0, git_commit=first), {})
    store.start(_row("r2", 2.0, git_commit=second), {})
    store.start(_row("r3", 3.0, git_commit=None), {})
    registry = Registry(store)
    registry.add("churn", A, run_id="r1", stage="train")
    registry.add("churn", B, run_id="r2", stage="train")
    registry.add("churn", C, run_id="r3", stage="train")  # no commit: no tag
    registry.alias("churn", "champion", 1)
    registry.alias("churn", "champion", 2, "better")
    registry.unalias("churn", "champion")

    dry = export_tags(root, store, dry=True)
    assert _git(root, "tag", "--list") == ""
    assert [(t.tag, t.commit) for t in dry.tags] == [
        ("churn@v1", first),
        ("churn@v2", second),
        ("churn#champion#1", first),
        ("churn#champion#2", second),
        ("churn#champion!#3", second),
    ]
    assert dry.notes == ("churn@v3: run r3 recorded no git commit; no tag",)

    done = export_tags(root, store)
    assert len(done.new) == 5
    tags = _git(root, "tag", "--list").split()
    assert sorted(tags) == sorted(t.tag for t in dry.tags)
    assert _git(root, "cat-file", "-t", "churn#champion#2").strip() == "tag"  # annotated
    assert _git(root, "rev-parse", "churn#champion#2^{commit}").strip() == second
    assert "better" in _git(root, "tag", "-l", "--format=%(contents)", "churn#champion#2")

    again = export_tags(root, store)  # existing tags are kept, none is made twice
    assert again.new == () and all(t.exists for t in again.tags)
    store.close()
