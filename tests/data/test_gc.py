"""`pipeline gc`: keeps what the lock of any commit needs (branches, a detached HEAD, merged
history, a project in a subdirectory of its repository) and frees the rest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from pipeline import api
from pipeline.api import ReproOptions, gc, repro
from tests.conftest import Project
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
    dry = gc(p.root, dry=True)
    assert v2 in dry.removed and store.has(v2)
    report = gc(p.root)
    assert v2 in report.removed
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
