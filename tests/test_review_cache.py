"""Review of the content-addressed cache: each xfail test demonstrates one confirmed bug."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from pipeline import api
from pipeline.execute.scheduler import Outcome
from tests.conftest import Project, outcomes, ran, record


def _one_stage(cmd: str, deps: list[str], outs: list[object], **extra: object) -> dict:
    return {"stages": {"s": {"cmd": cmd, "deps": deps, "outs": outs, **extra}}}


# -- storing ---------------------------------------------------------------------------------


def test_executable_file_output_stays_executable(project: Project) -> None:
    project.manifest(
        {
            "stages": {
                "build": {
                    "cmd": "printf '#!/bin/sh\\necho hi\\n' > tool.sh && chmod +x tool.sh",
                    "outs": ["tool.sh"],
                },
                "use": {
                    "cmd": "./tool.sh > used.txt && " + record("use"),
                    "deps": ["tool.sh"],
                    "outs": ["used.txt"],
                },
            }
        }
    )
    result = project.repro()
    assert os.stat(project.root / "tool.sh").st_mode & stat.S_IXUSR
    assert outcomes(result) == {"build": Outcome.RAN, "use": Outcome.RAN}


def test_relative_symlink_output_can_be_stored(project: Project) -> None:
    project.write("raw.txt", "v1\n")
    project.manifest(_one_stage("ln -s raw.txt view.txt", ["raw.txt"], ["view.txt"]))
    assert ran(project.repro()) == ["s"]


def test_absolute_symlink_output_stores_a_regular_object(project: Project) -> None:
    raw = project.write("raw.txt", "v1\n")
    project.manifest(_one_stage(f"ln -s {raw} view.txt", ["raw.txt"], ["view.txt"]))
    assert ran(project.repro()) == ["s"]
    assert os.stat(raw).st_mode & stat.S_IWUSR, "the dependency was made read-only"
    objects = [p for p in (project.root / ".pipeline/cache/objects").rglob("*") if p.is_file()]
    assert not any(p.is_symlink() for p in objects)


# -- restoring -------------------------------------------------------------------------------


def test_run_cache_restores_cache_false_output_as_plain_file(project: Project) -> None:
    project.write(".pipeline/config.yaml", "cache:\n  type: symlink,copy\n")
    project.write("in.txt", "v1\n")
    project.manifest(
        _one_stage(
            "cat in.txt > out.txt && wc -c < in.txt > m.json",
            ["in.txt"],
            ["out.txt"],
            metrics=[{"m.json": {"cache": False}}],
        )
    )
    project.repro()
    project.write("in.txt", "v22\n")
    project.repro()
    project.write("in.txt", "v1\n")
    assert outcomes(project.repro()) == {"s": Outcome.RESTORED}
    assert not (project.root / "m.json").is_symlink()


def test_checkout_when_parent_is_a_file_reports_instead_of_crashing(project: Project) -> None:
    project.write("in.txt", "v1\n")
    project.manifest(
        _one_stage("mkdir -p out && cat in.txt > out/a.txt", ["in.txt"], ["out/a.txt"])
    )
    project.repro()
    for child in (project.root / "out").iterdir():
        child.unlink()
    (project.root / "out").rmdir()
    project.write("out", "a file now\n")
    done = project.cli("checkout")
    assert "internal error" not in done.stderr, done.stderr


# -- gc --------------------------------------------------------------------------------------


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
    assert report.missing == []


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
    assert api.checkout(project.root).missing == []


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
    assert api.checkout(project.root).missing == []


# -- .gitignore ------------------------------------------------------------------------------


def test_gitignore_text_after_block_does_not_grow(project: Project) -> None:
    project.write("in.txt", "v1\n")
    project.manifest(_one_stage("cat in.txt > o1.txt", ["in.txt"], ["o1.txt"]))
    project.repro()
    ignore = project.root / ".gitignore"
    ignore.write_text(ignore.read_text() + "*.log\n")
    for n in (2, 3, 4):
        project.manifest(_one_stage(f"cat in.txt > o{n}.txt", ["in.txt"], [f"o{n}.txt"]))
        project.repro()
    assert ignore.read_text().endswith("*.log\n"), repr(ignore.read_text())


def test_gitignore_lists_output_when_parent_entry_is_dropped(project: Project) -> None:
    project.write("in.txt", "v1\n")
    cmd = "mkdir -p data && cat in.txt > data/a.txt"
    project.manifest(_one_stage(cmd, ["in.txt"], ["data"]))
    project.repro()
    project.manifest(_one_stage(cmd, ["in.txt"], ["data/a.txt"]))
    assert ran(project.repro()) == ["s"]
    check = subprocess.run(
        ["git", "check-ignore", "-q", "data/a.txt"], cwd=project.root, check=False
    )
    assert check.returncode == 0, "data/a.txt, a cached output, is not ignored by git"


# -- pipeline add ----------------------------------------------------------------------------


def test_add_inside_tracked_directory_does_not_leave_conflicting_records(
    project: Project,
) -> None:
    project.manifest({"stages": {}})
    project.write("data/x.txt", "x1\n")
    project.write("data/y.txt", "y1\n")
    assert project.cli("add", "data").returncode == 0
    (project.root / "data/x.txt").unlink()
    project.write("data/x.txt", "x2\n")
    done = project.cli("add", "data/x.txt")
    if done.returncode == 0:  # accepted: then the workspace must be able to match the lock
        api.checkout(project.root)
        assert project.plan().data == ()


def test_add_refuses_the_state_directory(project: Project) -> None:
    project.manifest({"stages": {}})
    project.write("data.txt", "d\n")
    assert project.cli("add", "data.txt").returncode == 0
    done = project.cli("add", ".pipeline")
    assert done.returncode != 0
    assert "/.pipeline" not in (project.root / ".gitignore").read_text()


def test_sanity_plain_run_cache_restore(project: Project) -> None:
    """Control: the ordinary run-cache round trip works (not a bug)."""
    project.write("in.txt", "v1\n")
    project.manifest(_one_stage("cat in.txt > out.txt", ["in.txt"], ["out.txt"]))
    project.repro()
    project.write("in.txt", "v2\n")
    project.repro()
    project.write("in.txt", "v1\n")
    assert outcomes(project.repro()) == {"s": Outcome.RESTORED}
    assert Path(project.root / "out.txt").read_text() == "v1\n"
