"""`pipeline gc`: keeps what the lock of any commit needs (branches, a detached HEAD, merged
history, a project in a subdirectory of its repository) and what recorded runs need, until
they are dropped (`--runs-older-than`, `--drop-runs`), and frees the rest.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable

import pytest

from pipeline import api
from pipeline.api import ReproOptions, gc, repro
from pipeline.core.lockfile import LOCK_NAME
from pipeline.errors import UsageError
from pipeline.store.runcache import RunCache
from tests.conftest import Project
from tests.experiments.support import PARAMS_TEXT, _run_files, run
from tests.store.support import _one_stage, lock_hash, store_of


def test_gc_keeps_what_any_commit_needs_and_frees_the_rest(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    p.commit(message="v1")
    v1 = lock_hash(p, "train", "model.txt")
    p.params({"lr": 0.2})
    repro(ReproOptions(root=p.root))
    v2 = lock_hash(p, "train", "model.txt")  # an experiment never committed
    p.params({"lr": 0.3})
    repro(ReproOptions(root=p.root))
    p.commit(message="v3")
    v3 = lock_hash(p, "train", "model.txt")
    store = store_of(p)
    assert v2 not in gc(p.root).removed and store.has(v2)  # its run is recorded: kept
    dry = gc(p.root, dry=True, runs_older_than=0)
    assert v2 in dry.removed and store.has(v2)
    assert len(dry.runs_dropped) == 3 and len(api.runs(p.root)) == 3
    report = gc(p.root, runs_older_than=0)
    assert v2 in report.removed and api.runs(p.root) == []
    assert (store.has(v1), store.has(v2), store.has(v3)) == (True, False, True)
    assert report.runs_removed >= 1
    workspace_only = gc(p.root, "workspace")
    assert v1 in workspace_only.removed and store.has(v3)


def test_gc_clears_temp_files_left_by_killed_writers(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    tmp = p.root / ".pipeline" / "cache" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    old, fresh = tmp / "obj.1.1.1", tmp / "obj.2.2.2"
    old.write_text("left behind")
    fresh.write_text("being written")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    gc(p.root)
    assert (old.exists(), fresh.exists()) == (False, True)


def test_gc_keeps_committed_versions_of_project_in_git_subdirectory(
    make_project: Callable[..., Project],
) -> None:
    repo = make_project("sub")
    sub = repo.root / "sub"
    sub.mkdir()
    project = Project(sub)
    project.write("in.txt", "v1\n")
    project.manifest(_one_stage("cat in.txt > out.txt", ["in.txt"], ["out.txt"]), commit=False)
    project.repro()
    project.commit(message="v1")
    project.write("in.txt", "v2\n")
    project.repro()
    project.commit(message="v2")
    project.git("checkout", "-q", "HEAD~1", "--", ".")  # go back to v1
    assert api.checkout(sub).restored == ["out.txt"]
    api.gc(sub)
    project.git("checkout", "-q", "HEAD", "--", ".")  # back to v2, which a branch holds
    report = api.checkout(sub)
    assert (report.restored, report.missing) == (["out.txt"], [])
    assert project.read("out.txt") == "v2\n"


def test_gc_keeps_objects_of_detached_head_commit(project: Project) -> None:
    project.write("in.txt", "v1\n")
    project.manifest(_one_stage("cat in.txt > out.txt", ["in.txt"], ["out.txt"]), commit=False)
    project.repro()
    project.commit(message="v1")
    project.git("checkout", "-q", "--detach")
    project.write("in.txt", "v2\n")
    project.repro()
    project.commit(message="v2 on detached HEAD")
    project.write("in.txt", "v3\n")
    project.repro()
    api.gc(project.root)
    project.git("checkout", "-q", "HEAD", "--", "pipeline.lock", "in.txt")
    report = api.checkout(project.root)
    assert (report.restored, report.missing) == (["out.txt"], [])
    assert project.read("out.txt") == "v2\n"


def test_gc_keeps_lock_of_commit_reached_through_a_merge(project: Project) -> None:
    project.write("in.txt", "v1\n")
    project.manifest(_one_stage("cat in.txt > out.txt", ["in.txt"], ["out.txt"]), commit=False)
    project.repro()
    project.commit(message="v1")
    main = project.git("rev-parse", "--abbrev-ref", "HEAD").strip()
    project.git("checkout", "-q", "-b", "feat")
    project.write("in.txt", "v2\n")
    project.repro()
    project.commit(message="v2")
    side = project.git("rev-parse", "HEAD").strip()
    project.git("checkout", "-q", main)
    api.checkout(project.root)
    project.git("merge", "-q", "-s", "ours", "feat", "-m", "merge feat, keep ours")
    project.git("branch", "-q", "-D", "feat")  # `side` is still in main's history
    api.gc(project.root)
    project.git("checkout", "-q", side, "--", "pipeline.lock", "in.txt")
    report = api.checkout(project.root)
    assert (report.restored, report.missing) == (["out.txt"], [])
    assert project.read("out.txt") == "v2\n"


# -- recorded runs survive gc until they are dropped -------------------------------------------


def _shards(project: Project) -> Project:
    """One stage whose directory output depends on train.lr; reproduced and committed."""
    stage = {
        "cmd": "mkdir -p shards && echo lr=${train.lr} > shards/a.txt"
        " && echo b-${train.lr} > shards/b.txt",
        "params": ["train.lr"],
        "outs": ["shards"],
    }
    project.params(PARAMS_TEXT)
    project.manifest({"name": "shards", "stages": {"shards": stage}})
    project.repro()
    project.commit(message="results")
    return project


def test_an_experiment_survives_gc_and_checks_out_whole(project: Project) -> None:
    _shards(project)
    chosen = run(project, params=("train.lr=0.7",)).points[0].run_id
    detail = api.run_detail(project.root, chosen)
    listing = next(o.hash for s in detail.stages for o in s.outs if o.path == "shards")
    files = [e.hash for e in store_of(project).read_tree(listing)]

    report = gc(project.root)

    assert not {listing, *files} & set(report.removed)
    api.checkout(project.root, run=chosen)
    assert project.read("shards/a.txt") == "lr=0.7\n"
    assert project.read("shards/b.txt") == "b-0.7\n"
    assert "lr: 0.7" in project.read("params.yaml")
    assert not api.runs(project.root)[0].missing_objects


def test_drop_runs_by_id_and_name_dry_then_for_real(project: Project) -> None:
    _shards(project)
    first = run(project, params=("train.lr=0.5",), name="first").points[0].run_id
    second = run(project, params=("train.lr=0.6",)).points[0].run_id
    lock_of = {
        r: next(f.hash for f in _run_files(project, r) if f.path == LOCK_NAME)
        for r in (first, second)
    }
    store = store_of(project)

    dry = gc(project.root, dry=True, drop_runs=["first"])

    assert dry.runs_dropped == [first] and lock_of[first] in dry.removed
    assert store.has(lock_of[first]) and first in {r.id for r in api.runs(project.root)}

    report = gc(project.root, drop_runs=[second[:-1], "first"])

    assert sorted(report.runs_dropped) == sorted([first, second])
    assert not store.has(lock_of[first]) and not store.has(lock_of[second])
    assert {first, second}.isdisjoint(r.id for r in api.runs(project.root))
    with pytest.raises(UsageError):
        gc(project.root, drop_runs=["first"])  # gone: an unknown run is an error


def test_runs_older_than_drops_old_runs_and_sweeps_with_their_points(project: Project) -> None:
    _shards(project)
    old = run(project, sweeps=("train.lr=0.2,0.3",))
    new = run(project, params=("train.lr=0.4",)).points[0].run_id
    assert old.parent_id is not None
    _age(project, old.parent_id, days=40)  # its points started later, but go with it
    points = sorted(p.run_id for p in old.points)

    assert gc(project.root, dry=True, runs_older_than="30d").runs_dropped == sorted(
        [old.parent_id, *points]
    )
    assert len(api.runs(project.root)) == 5  # the repro, the sweep, its points, the new run
    report = gc(project.root, runs_older_than="4w")
    assert sorted(report.runs_dropped) == sorted([old.parent_id, *points])
    left = {r.id for r in api.runs(project.root)}
    assert new in left and left.isdisjoint([old.parent_id, *points])
    api.checkout(project.root, run=new)
    assert project.read("shards/a.txt") == "lr=0.4\n"


@pytest.mark.parametrize("age", ["30", "30x", "d", "-1d", "1.5.2h"])
def test_a_bad_age_is_one_clear_usage_error(p: Project, age: str) -> None:
    with pytest.raises(UsageError, match="not an age") as caught:
        gc(p.root, runs_older_than=age)
    assert caught.value.hint is not None and "30d" in caught.value.hint


def _age(project: Project, run_id: str, *, days: float) -> None:
    """Pretend the run started `days` ago (only the run store knows when runs started)."""
    db = sqlite3.connect(project.root / ".pipeline" / "runs.db")
    with db:
        db.execute(
            "UPDATE runs SET started_at = started_at - ? WHERE id = ?", (days * 86400, run_id)
        )
    db.close()


def test_run_cache_entries_gc_keeps_keep_their_logs(p: Project) -> None:
    """A run-cache entry gc keeps still restores with its log, after its run was dropped."""
    repro(ReproOptions(root=p.root))
    p.commit()
    gc(p.root, runs_older_than=0.0)  # every recorded run dropped: only the locks keep objects
    kept = [entry for _, entry in RunCache(store_of(p)).all_entries() if entry is not None]
    assert kept
    for entry in kept:
        assert entry.log is None or store_of(p).has(entry.log), "gc freed a kept entry's log"
