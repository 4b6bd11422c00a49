"""Hostile repositories: locks, symlinks, wdirs and run records that point outside the project.

Every test aims at a sentinel directory beside the project; nothing in it may change (contents,
modes, link counts), and the command that meets the path says it is outside, exit code 2.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pipeline.core.hashing import file_digest
from tests.conftest import Project
from tests.sentinel import Sentinel

OUTSIDE = "outside the project"


@pytest.fixture
def victim(tmp_path: Path) -> Sentinel:
    return Sentinel(tmp_path / "victim")


@pytest.fixture
def hp(make_project: Callable[..., Project], victim: Sentinel) -> Project:
    """A project beside the sentinel: ../../victim from its root."""
    project = make_project("h")
    assert (project.root / "../../victim").resolve() == victim.root.resolve()
    return project


def _cache_object(project: Project, content: bytes) -> str:
    """Put `content` into the project's cache as a forged repository would ship it."""
    path = project.root / ".pipeline/tmp-obj"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    digest = file_digest(path)
    hexd = digest.partition(":")[2]
    obj = project.root / ".pipeline/cache/objects" / hexd[:2] / hexd[2:]
    obj.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, obj)
    return digest


def _lock(project: Project, data: dict[str, str], stages: dict[str, object] | None = None) -> None:
    body = {
        "schema": 1,
        "data": {path: {"hash": digest, "nfiles": 1, "size": 6} for path, digest in data.items()},
        "stages": stages or {},
    }
    project.write("pipeline.lock", yaml.safe_dump(body))


def _refused(done: subprocess.CompletedProcess[str], path: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert OUTSIDE in done.stderr and path in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("target", ["../../victim/x.txt", "ABS/x.txt", "../../victim/dir"])
def test_a_lock_naming_a_path_outside_is_never_checked_out(
    hp: Project, victim: Sentinel, target: str
) -> None:
    target = target.replace("ABS", str(victim.root))
    hp.manifest({"stages": {"s": {"cmd": "echo hi > out.txt", "outs": ["out.txt"]}}})
    _lock(hp, {target: _cache_object(hp, b"owned\n")})
    for command in (["checkout"], ["checkout", "--force"], ["status"], ["repro"]):
        done = hp.cli(*command)
        _refused(done, target)
    victim.assert_untouched()


def test_a_symlinked_directory_is_never_cleared_or_written(hp: Project, victim: Sentinel) -> None:
    os.symlink("../../victim", hp.root / "data")
    hp.manifest({"stages": {"s": {"cmd": "echo new > data/x.txt", "outs": ["data/x.txt"]}}})
    _refused(hp.cli("repro"), "data/x.txt")  # clearing the output would delete victim/x.txt
    stages = {
        "s": {
            "cmd": "echo new > data/x.txt",
            "deps": [],
            "fingerprint": "xxh3_128:" + "0" * 32,
            "outs": [
                {
                    "path": "data/x.txt",
                    "hash": _cache_object(hp, b"owned\n"),
                    "size": 6,
                    "nfiles": 1,
                }
            ],
        }
    }
    _lock(hp, {}, stages)
    _refused(hp.cli("checkout", "--force"), "data/x.txt")
    victim.assert_untouched()


def test_an_output_linked_to_an_outside_file_is_never_cached(hp: Project, victim: Sentinel) -> None:
    hp.manifest(
        {
            "stages": {
                "s": {"cmd": "ln -sf ../../victim/secret.txt model.txt", "outs": ["model.txt"]}
            }
        }
    )
    done = hp.cli("repro")
    assert done.returncode != 0 and OUTSIDE in done.stderr, done.stderr
    secret = file_digest(victim.root / "secret.txt").partition(":")[2]
    cached = [p.name for p in (hp.root / ".pipeline/cache/objects").rglob("*") if p.is_file()]
    assert secret[2:] not in cached
    victim.assert_untouched()


def test_tracked_data_linked_outside_is_refused_by_add(hp: Project, victim: Sentinel) -> None:
    hp.manifest({"stages": {"s": {"cmd": "true"}}})
    os.symlink("../../victim/dir", hp.root / "raw")
    _refused(hp.cli("add", "raw"), "raw")
    os.symlink("../../victim/secret.txt", hp.root / "secret.txt")
    _refused(hp.cli("add", "secret.txt"), "secret.txt")
    victim.assert_untouched()


def test_a_dependency_may_be_read_through_a_symlink(hp: Project, victim: Sentinel) -> None:
    """Reading is not writing: data on a shared mount stays usable as a dependency."""
    os.symlink("../../victim/x.txt", hp.root / "raw.txt")
    hp.manifest(
        {
            "stages": {
                "s": {"cmd": "cat raw.txt > out.txt", "deps": ["raw.txt"], "outs": ["out.txt"]}
            }
        }
    )
    done = hp.cli("repro")
    assert done.returncode == 0, done.stderr
    assert hp.read("out.txt") == "victim x\n"
    victim.assert_untouched()


def test_a_symlinked_wdir_outside_is_refused_before_the_command(
    hp: Project, victim: Sentinel
) -> None:
    os.symlink("../../victim/dir", hp.root / "work")
    hp.manifest({"stages": {"s": {"cmd": "echo hi > made.txt", "wdir": "work"}}})
    done = hp.cli("repro")
    assert done.returncode != 0 and OUTSIDE in done.stderr and "work" in done.stderr, done.stderr
    victim.assert_untouched()


@pytest.mark.parametrize("entry", ["cache", "tmp", "state.db", "runs.db"])
def test_a_state_directory_linked_outside_is_refused(
    hp: Project, victim: Sentinel, entry: str
) -> None:
    hp.manifest({"stages": {"s": {"cmd": "echo hi > out.txt", "outs": ["out.txt"]}}})
    (hp.root / ".pipeline").mkdir()
    os.symlink(
        victim.root / ("dir" if entry in ("cache", "tmp") else "x.txt"),
        hp.root / ".pipeline" / entry,
    )
    for command in (["status"], ["repro"], ["gc", "--yes"], ["checkout"]):
        _refused(hp.cli(*command), f".pipeline/{entry}")
    victim.assert_untouched()


def test_a_run_record_naming_a_path_outside_is_never_written(hp: Project, victim: Sentinel) -> None:
    hp.params({"lr": 0.1})
    hp.manifest(
        {
            "stages": {
                "s": {"cmd": "echo ${lr} > model.txt", "params": ["lr"], "outs": ["model.txt"]}
            }
        }
    )
    hp.commit()
    done = hp.cli("run", "--param", "lr=0.5", "--name", "exp")
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(hp.root / ".pipeline/runs.db")
    with db:  # as a forged record pulled from a remote would say
        db.execute(
            "UPDATE artifacts SET path = '../../victim/params.yaml' WHERE path = 'params.yaml'"
        )
    db.close()
    _refused(hp.cli("checkout", "exp", "--force"), "victim/params.yaml")
    with sqlite3.connect(hp.root / ".pipeline/runs.db") as db:
        db.execute("UPDATE artifacts SET path = 'conf/params.yaml' WHERE path LIKE '%victim%'")
    os.symlink("../../victim", hp.root / "conf")
    _refused(hp.cli("checkout", "exp", "--force"), "conf/params.yaml")
    victim.assert_untouched()


def test_a_params_file_linked_outside_is_never_overridden(hp: Project, victim: Sentinel) -> None:
    os.symlink("../../victim/params.yaml", hp.root / "params.yaml")
    hp.manifest(
        {
            "stages": {
                "s": {"cmd": "echo ${lr} > model.txt", "params": ["lr"], "outs": ["model.txt"]}
            }
        }
    )
    hp.commit()
    done = hp.cli("run", "--param", "lr=0.5")
    assert done.returncode != 0 and OUTSIDE in done.stderr, done.stderr
    victim.assert_untouched()


def test_a_cloned_hostile_repository_changes_nothing_outside(
    hp: Project, victim: Sentinel, tmp_path: Path
) -> None:
    """Every trick at once, committed (cache objects forced in), cloned, every command run."""
    hp.params({"lr": 0.1})
    os.symlink("../../victim", hp.root / "data")
    os.symlink("../../victim/dir", hp.root / "work")
    os.symlink("../../victim/secret.txt", hp.root / "secret.txt")
    hp.manifest(
        {
            "stages": {
                "clear": {"cmd": "echo new > data/x.txt", "outs": ["data/x.txt"]},
                "leak": {"cmd": "ln -sf ../../victim/secret.txt model.txt", "outs": ["model.txt"]},
                "wd": {"cmd": "echo hi > made.txt", "wdir": "work"},
                "p": {"cmd": "echo ${lr} > p.txt", "params": ["lr"], "outs": ["p.txt"]},
            }
        },
        commit=False,
    )
    owned = _cache_object(hp, b"owned\n")
    _lock(hp, {"../../victim/x.txt": owned, str(victim.root / "dir/a.txt"): owned})
    hp.git("add", "-f", ".")
    hp.git("commit", "-q", "-m", "hostile")
    clone = tmp_path / "clone" / "proj"  # ../../victim from here is the sentinel too
    clone.parent.mkdir()
    subprocess.run(["git", "clone", "-q", str(hp.root), str(clone)], check=True)
    shutil.rmtree(hp.root)  # nothing of the original is left to be confused with the clone
    cloned = Project(clone)
    commands = [
        ["status"],
        ["dag"],
        ["checkout"],
        ["checkout", "--force"],
        ["repro"],
        ["repro", "--force"],
        ["repro", "clear"],
        ["repro", "leak"],
        ["repro", "wd"],
        ["run", "--param", "lr=0.5"],
        ["gc", "--yes"],
        ["fsck"],
        ["add", "secret.txt"],
        ["add", "data"],
        ["runs"],
        ["compare"],
        ["metrics", "show"],
        ["params", "diff"],
    ]
    said: dict[str, int] = {}
    for round_ in ("forged lock", "lock removed"):  # the lock stops most commands; then without
        for command in commands:
            done = cloned.cli(*command)
            assert "Traceback" not in done.stderr and "internal error" not in done.stderr, (
                command,
                done.stderr,
            )
            said[f"{round_}: {' '.join(command)}"] = done.returncode
        (clone / "pipeline.lock").unlink(missing_ok=True)
    assert said["forged lock: checkout"] == said["lock removed: add data"] == 2
    for stage in ("clear", "leak", "wd"):  # each trick on its own, once the lock is gone
        assert said[f"lock removed: repro {stage}"] == 2, said
    victim.assert_untouched()
