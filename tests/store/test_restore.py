"""Restoring outputs from the cache: objects are checked first, so a corrupt or tampered one is
never put in the workspace.
"""

from __future__ import annotations

import os
import subprocess

from pipeline.api import ReproOptions, checkout, repro
from pipeline.core.hashing import file_digest
from pipeline.execute.scheduler import Outcome
from tests.conftest import Project, outcomes
from tests.store.support import corrupt, lock_hash, store_of


def test_restore_catches_a_corrupt_object_and_runs_the_stage(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    digest = lock_hash(p, "train", "model.txt")
    (p.root / "model.txt").unlink()
    corrupt(store_of(p).path(digest))
    p.clear_executions()
    result = repro(ReproOptions(root=p.root))
    assert outcomes(result)["train"] is Outcome.RAN
    assert p.executions() == ["train"]
    assert p.read("model.txt") == "lr=0.1\n"
    assert file_digest(store_of(p).path(digest)) == digest  # stored again, intact


def test_a_tampered_directory_listing_is_caught_before_restoring(p: Project) -> None:
    p.manifest({"stages": {"gen": {"cmd": "mkdir -p out && echo a > out/a.txt", "outs": ["out"]}}})
    repro(ReproOptions(root=p.root))
    listing = store_of(p).path(lock_hash(p, "gen", "out"))
    os.chmod(listing, 0o644)
    listing.write_text('[{"path":"../../escape.txt","hash":"xxh3_128:00","x":false}]')
    subprocess.run(["rm", "-rf", str(p.root / "out")], check=True)
    report = checkout(p.root)
    assert report.corrupt == ["out"]
    assert not (p.root.parent / "escape.txt").exists()


def test_a_large_directory_is_checked_whole_before_any_file_is_placed(p: Project) -> None:
    """Many files are checked and placed by a thread pool: one corrupt object still stops the
    restore before the workspace changes, and an intact directory comes back whole."""
    cmd = "mkdir -p out && for i in $(seq 1 200); do echo $i > out/$i.txt; done"
    p.manifest({"stages": {"gen": {"cmd": cmd, "outs": ["out"]}}})
    repro(ReproOptions(root=p.root))
    subprocess.run(["rm", "-rf", str(p.root / "out")], check=True)
    assert checkout(p.root).restored == ["out"]
    assert sorted(os.listdir(p.root / "out")) == sorted(f"{i}.txt" for i in range(1, 201))
    assert p.read("out/150.txt") == "150\n"
    subprocess.run(["rm", "-rf", str(p.root / "out")], check=True)
    corrupt(store_of(p).path(_digest_of(p, "150\n")))
    report = checkout(p.root)
    assert report.corrupt == ["out"]
    assert not (p.root / "out").exists()


def _digest_of(p: Project, text: str) -> str:
    probe = p.write(".probe", text)
    digest = file_digest(probe)
    probe.unlink()
    return digest
