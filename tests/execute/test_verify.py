"""`pipeline verify`: stages rerun in isolation on their locked inputs, outputs compared with the
lock byte for byte; nothing of the user's is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pipeline.api import verify
from pipeline.experiments.verify import Verdict
from pipeline.store.runcache import RunCache
from tests.cli.support import _json, _ok
from tests.conftest import Project
from tests.store.support import lock_hash, store_of

STAGES: dict[str, Any] = {
    "stages": {
        "a": {"cmd": "echo hello > a.txt", "outs": ["a.txt"]},
        "b": {"cmd": "cat a.txt a.txt > b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
        "noisy": {
            "cmd": "cat a.txt > r.txt; head -c 16 /dev/urandom | od -x >> r.txt; "
            "date +%s%N > t.txt",
            "deps": ["a.txt"],
            "outs": ["r.txt", "t.txt"],
        },
    }
}


def _built(project: Project, manifest: dict[str, Any] = STAGES) -> Project:
    project.manifest(manifest)
    _ok(project.cli("repro"))
    return project


def _snapshot(root: Path) -> dict[str, tuple[bytes, int, int, int]]:
    """Every file of the project (the cache included) with its bytes, mode, inode and mtime;
    the stat memo and logs are the tool's own bookkeeping, and new temp files are left out."""
    found = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or rel.startswith((".git/", ".pipeline/state.db", ".pipeline/logs")):
            continue
        st = path.lstat()
        found[rel] = (path.read_bytes(), st.st_mode, st.st_ino, st.st_mtime_ns)
    return found


def test_a_deterministic_stage_is_reproducible(project: Project) -> None:
    _built(project)
    done = _ok(project.cli("verify", "a", "b"))
    assert "a: reproducible" in done.stdout
    assert "b: reproducible" in done.stdout
    report = _json(project.cli("verify", "b", "--json"))
    assert report["ok"] is True
    assert [(s["stage"], s["verdict"]) for s in report["stages"]] == [("b", "reproducible")]


def test_a_nondeterministic_stage_fails_and_names_its_outputs(project: Project) -> None:
    _built(project)
    before = _snapshot(project.root)
    done = project.cli("verify")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "noisy: NONDETERMINISTIC, differs: r.txt, t.txt" in done.stdout
    assert "a: reproducible" in done.stdout
    report = json.loads(project.cli("verify", "--json").stdout)
    noisy = next(s for s in report["stages"] if s["stage"] == "noisy")
    assert noisy["verdict"] == "nondeterministic"
    assert [d["path"] for d in noisy["differs"]] == ["r.txt", "t.txt"]
    assert noisy["differs"][0]["locked"] == lock_hash(project, "noisy", "r.txt")
    after = _snapshot(project.root)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing changed
    assert not [k for k in after if k not in before and not k.startswith(".pipeline/cache/")]
    assert not any((project.root / ".pipeline/tmp/runs").glob("verify-*"))


def test_deps_come_from_the_lock_not_from_the_workspace(project: Project) -> None:
    _built(project)
    project.write("a.txt", "edited by hand\n")
    report = verify(project.root, ("b",))
    assert [(c.stage, c.verdict) for c in report.stages] == [("b", Verdict.REPRODUCIBLE)]
    assert project.read("a.txt") == "edited by hand\n"  # and the user's edit is left alone


def test_a_stage_writing_in_place_never_reaches_the_users_files(project: Project) -> None:
    """Raw data git ignores is hardlinked into isolated workspaces; a rerun stage that appends
    to it (in the workspace) must not write through the link into the user's copy."""
    project.write(".gitignore", "raw.txt\n")
    project.write("raw.txt", "raw\n")
    in_verify = 'case "$PIPELINE_ROOT" in *verify-*) echo x >> raw.txt;; esac'
    careless = f"cat raw.txt raw.txt > out.txt; {in_verify}"
    stages = {"s": {"cmd": careless, "deps": ["raw.txt"], "outs": ["out.txt"]}}
    _built(project, {"stages": stages})
    report = verify(project.root)
    assert [c.verdict for c in report.stages] == [Verdict.REPRODUCIBLE]
    assert project.read("raw.txt") == "raw\n"


def test_a_stage_changed_since_the_lock_could_not_run(project: Project) -> None:
    _built(project)
    edited = json.loads(json.dumps(STAGES))
    edited["stages"]["a"]["cmd"] = "echo bye > a.txt"
    project.manifest(edited)
    done = project.cli("verify", "a")
    assert done.returncode == 1
    assert "a: could not run: changed since pipeline.lock was written" in done.stdout


def test_a_stage_not_in_the_lock_and_a_failing_stage_could_not_run(project: Project) -> None:
    manifest = json.loads(json.dumps(STAGES))
    manifest["stages"]["late"] = {"cmd": "echo late > late.txt", "outs": ["late.txt"]}
    manifest["stages"]["flaky"] = {
        "cmd": 'case "$PIPELINE_ROOT" in *verify-*) exit 3;; esac; echo ok > f.txt',
        "outs": ["f.txt"],
    }
    project.manifest({"stages": {k: v for k, v in manifest["stages"].items() if k != "late"}})
    _ok(project.cli("repro"))
    project.manifest(manifest)
    report = verify(project.root, ("late", "flaky"))
    verdicts = {c.stage: (c.verdict, c.why) for c in report.stages}
    assert verdicts["late"][0] is Verdict.NOT_RUN
    assert "not in pipeline.lock" in verdicts["late"][1]
    assert verdicts["flaky"][0] is Verdict.NOT_RUN
    assert "exit" in verdicts["flaky"][1]
    assert not report.ok


@pytest.mark.parametrize("damage", ["forged", "poisoned"])
def test_a_run_cache_entry_that_no_real_run_wrote_is_reported(
    project: Project, damage: str
) -> None:
    _built(project)
    runs = RunCache(store_of(project))
    lock = project.lock()["stages"]
    entry = runs.path(lock["b"]["fingerprint"])
    data = json.loads(entry.read_bytes())
    if damage == "forged":  # another stage's entry, under b's fingerprint
        data = json.loads(runs.path(lock["a"]["fingerprint"]).read_bytes())
    else:  # b's own entry, naming a's output bytes as b.txt
        data["outs"][0]["hash"] = lock_hash(project, "a", "a.txt")
    os.chmod(entry, 0o644)
    entry.write_text(json.dumps(data))
    done = project.cli("verify", "b")
    assert done.returncode == 1, done.stdout
    assert "b: reproducible" in done.stdout
    expected = {
        "forged": "run-cache: the entry is forged: it records the run " + lock["a"]["fingerprint"],
        "poisoned": "run-cache: the entry would restore bytes no real run wrote: b.txt",
    }[damage]
    assert expected in done.stdout
    assert entry.read_text() == json.dumps(data)  # reported, not repaired behind the user's back
