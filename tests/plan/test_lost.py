"""Outputs whose cached object is gone or corrupt, through the CLI: `status` says why the stage
is stale, `repro` rebuilds it, and an intact workspace copy is stored again (restock).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pipeline.core.hashing import file_digest
from tests.cli.support import _json, _ok
from tests.conftest import Project, record
from tests.store.support import lock_hash, store_of

TWO_STAGES = {
    "stages": {
        "a": {"cmd": f"{record('a')}; echo hello > a.txt", "outs": ["a.txt"]},
        "b": {"cmd": f"{record('b')}; cat a.txt > b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
    }
}


def _built(project: Project, cache_type: str = "copy") -> Path:
    """The two-stage project after a repro; returns the cached object of `a.txt`."""
    project.write(".pipeline/config.yaml", f"cache:\n  type: {cache_type}\n")
    project.manifest(TWO_STAGES)
    _ok(project.cli("repro"))
    project.clear_executions()
    return store_of(project).path(lock_hash(project, "a", "a.txt"))


def _rot(path: Path, text: str = "jello\n") -> None:
    """Other bytes of the same size, with the old mtime: what bit rot or a careless `cp -p`
    leaves, which no stat can tell apart from the original."""
    st = os.stat(path)
    os.chmod(path, 0o644)
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _status(project: Project) -> dict[str, dict[str, object]]:
    return {s["stage"]: s for s in _json(project.cli("status", "--json"))["stages"]}


def test_a_hardlinked_output_of_a_quarantined_object_is_stale_and_rebuilt(
    project: Project,
) -> None:
    obj = _built(project, "hardlink")
    assert os.path.samefile(obj, project.root / "a.txt")
    _rot(obj)  # the workspace file is the same inode: it holds the wrong bytes too
    assert project.cli("fsck").returncode == 4
    status = _ok(project.cli("status")).stdout
    assert "a: will run" in status
    assert "output a.txt: cached object corrupt" in status
    _ok(project.cli("repro"))
    assert project.executions() == ["a"]  # b's dep came back with the same bytes
    assert project.read("a.txt") == "hello\n"
    assert file_digest(obj) == lock_hash(project, "a", "a.txt")
    assert "up to date" in _ok(project.cli("status")).stdout


def test_without_the_run_cache_the_executor_sees_the_lost_object_too(project: Project) -> None:
    """The executor decides a stale stage again before running it: that second look must see
    the quarantined object as well, or the stage is skipped as up to date."""
    obj = _built(project, "hardlink")
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(obj, ns=(hour_ago, hour_ago))
    assert "up to date" in _ok(project.cli("status")).stdout  # memoised with its old mtime
    _rot(obj)
    assert project.cli("fsck").returncode == 4
    assert "output a.txt: cached object corrupt" in _ok(project.cli("status")).stdout
    _ok(project.cli("repro", "--no-run-cache"))
    assert project.executions() == ["a"]
    assert project.read("a.txt") == "hello\n"


def test_a_deleted_output_of_a_quarantined_object_says_why_and_runs(project: Project) -> None:
    obj = _built(project)
    _rot(obj)
    assert project.cli("fsck").returncode == 4
    (project.root / "a.txt").unlink()
    stage = _status(project)["a"]
    assert stage["action"] == "run"
    assert "output a.txt: cached object corrupt" in json.dumps(stage["reasons"])
    assert "output a.txt: cached object corrupt" in _ok(project.cli("status")).stdout
    _ok(project.cli("repro"))
    assert project.executions() == ["a"]
    assert file_digest(obj) == lock_hash(project, "a", "a.txt")


def test_a_missing_object_and_a_modified_output_is_stale_with_both_reasons(
    project: Project,
) -> None:
    obj = _built(project)
    obj.unlink()
    project.write("a.txt", "edited\n")
    status = _ok(project.cli("status")).stdout
    assert "out a.txt modified" in status
    assert "output a.txt: cached object missing" in status
    _ok(project.cli("repro"))
    assert project.executions() == ["a"]
    assert project.read("a.txt") == "hello\n"
    assert obj.is_file()


def test_an_intact_output_whose_object_is_gone_is_stored_again(project: Project) -> None:
    obj = _built(project)
    _rot(obj)
    assert project.cli("fsck").returncode == 4
    assert not obj.exists()
    status = _status(project)
    assert status["a"]["action"] == "up to date"  # the user's bytes are fine
    assert status["a"]["unstored"] == ["a.txt"]
    said = _ok(project.cli("status")).stdout
    assert "a.txt: intact, but the cache lost it; `pipeline repro` stores it again" in said
    _ok(project.cli("repro"))
    assert project.executions() == []
    assert file_digest(obj) == lock_hash(project, "a", "a.txt")  # the only copy is safe again
    assert "unstored" not in _status(project)["a"]
    (project.root / "a.txt").unlink()
    _ok(project.cli("checkout"))
    assert project.read("a.txt") == "hello\n"


def test_a_workspace_copy_the_stat_memo_misjudges_is_rehashed_not_stored(
    project: Project,
) -> None:
    """Before the workspace copy becomes the only one it is read again: bytes the stat memo
    cannot see changed (same size and mtime) are never stored under the locked hash."""
    obj = _built(project)
    obj.unlink()
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(project.root / "a.txt", ns=(hour_ago, hour_ago))
    assert "unstored" in _status(project)["a"]  # memoised: its mtime is safely old now
    _rot(project.root / "a.txt")
    assert _status(project)["a"]["action"] == "up to date"  # a stat cannot tell
    _ok(project.cli("repro"))
    assert project.executions() == ["a"]
    assert project.read("a.txt") == "hello\n"
    assert file_digest(obj) == lock_hash(project, "a", "a.txt")


def test_tracked_data_whose_object_is_gone_is_stored_again(project: Project) -> None:
    project.manifest(TWO_STAGES)
    project.write("raw.csv", "x,y\n1,2\n")
    _ok(project.cli("add", "raw.csv"))
    digest = project.lock()["data"]["raw.csv"]["hash"]
    store_of(project).path(digest).unlink()
    _ok(project.cli("repro"))
    assert file_digest(store_of(project).path(digest)) == digest
