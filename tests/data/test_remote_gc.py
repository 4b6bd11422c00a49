"""`gc` and remotes: a remote is never touched unless `gc --remote NAME` names it, `--dry` deletes
nothing, and the deletion keeps what the locks in scope and the shared run records need (the same
keep-rules as local gc), deletes the rest with their run-cache entries, and asks first
(`--yes` when stdin is not a terminal). Real CLI subprocesses on a directory remote.

The history: commit 1 trains with lr=1, commit 2 with lr=2 (both pushed); then lr=9 is trained
and pushed and abandoned (the workspace goes back to commit 2), so no lock refers to it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import _error
from tests.conftest import Project
from tests.data.test_sync import (
    User,
    alice,
    on_remote,
    out_hash,
    remote_of,
    write_story,
)
from tests.servers import RemoteSpec


def remote_files(directory: Path) -> list[str]:
    """Every file of a directory remote but its generation marker, as relative paths."""
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != "pipeline-remote.json"
    )


def history(make_project: Callable[..., Project], tmp_path: Path, spec: RemoteSpec) -> dict:
    """The module docstring's history; returns the user and the models' hashes and
    train's fingerprints by lr."""
    from pipeline import api

    a = alice(make_project, tmp_path, spec)
    write_story(a.project, spec)
    api.add(a.root, [str(a.root / "raw")])
    models, fingerprints = {}, {}
    for lr in (1, 2, 9):
        a.project.params({"train": {"lr": lr}})
        a.project.repro()
        models[lr] = out_hash(a.project, "train", "model.txt")
        fingerprints[lr] = a.project.lock()["stages"]["train"]["fingerprint"]
        api.push(root=a.root)
        if lr != 9:
            a.project.commit(message=f"lr {lr}")
    a.project.git("checkout", "--", "params.yaml", "pipeline.lock")
    return {"user": a, "models": models, "fingerprints": fingerprints}


def entry_on_remote(spec: RemoteSpec, root: Path, fingerprint: str) -> bool:
    remote = remote_of(spec, root)
    return remote.size(remote.run_path(fingerprint)) is not None


@pytest.fixture
def pushed(
    make_project: Callable[..., Project], tmp_path: Path, local_remote: RemoteSpec
) -> tuple[User, RemoteSpec, dict[str, Any]]:
    h = history(make_project, tmp_path, local_remote)
    for lr in (1, 2, 9):
        assert on_remote(local_remote, h["user"].root, h["models"][lr])
    return h["user"], local_remote, h


def test_only_gc_remote_touches_a_remote_and_only_with_yes_and_without_dry(
    pushed: tuple[User, RemoteSpec, dict[str, Any]],
) -> None:
    a, spec, h = pushed
    directory = Path(spec.url)
    before = remote_files(directory)
    freed = a.json("gc", "--workspace", "--runs-older-than", "0h")  # runs keep theirs
    assert freed["removed"]  # lr=1 and lr=9's objects went from the local cache…
    assert freed["remote"] is None
    assert remote_files(directory) == before  # …not from the remote

    asked = subprocess.run(
        [sys.executable, "-m", "pipeline", "-C", str(a.root), "gc", "--remote", "origin"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=a.env,
        check=False,
    )
    lines = _error(asked, 2)
    assert "gc --remote origin needs confirmation" in lines[0]
    assert "--yes" in lines[1]
    assert remote_files(directory) == before

    dry = a.json("gc", "--remote", "origin", "--dry")
    assert dry["remote"] == "origin"
    assert h["models"][9] in dry["removed"]
    assert h["models"][1] not in dry["removed"]
    assert remote_files(directory) == before


def test_gc_remote_keeps_what_the_locks_in_scope_need_and_deletes_the_rest(
    pushed: tuple[User, RemoteSpec, dict[str, Any]],
) -> None:
    a, spec, h = pushed
    models, fingerprints = h["models"], h["fingerprints"]

    done = a.json("gc", "--remote", "origin", "-y")  # scope: every commit of every branch
    assert models[9] in done["removed"]
    assert done["runs_removed"] >= 1
    assert on_remote(spec, a.root, models[1])
    assert on_remote(spec, a.root, models[2])
    assert not on_remote(spec, a.root, models[9])
    assert entry_on_remote(spec, a.root, fingerprints[2])
    assert not entry_on_remote(spec, a.root, fingerprints[9])

    # What the workspace needs stays whatever the scope; commit 1's model goes.
    done = a.json("gc", "--remote", "origin", "--workspace", "-y")
    assert models[1] in done["removed"]
    assert on_remote(spec, a.root, models[2])
    assert not on_remote(spec, a.root, models[1])

    # The generation changed: this machine no longer trusts its list of what the remote holds,
    # so a push of a deleted object sends it again instead of calling it present.
    a.project.params({"train": {"lr": 9}})
    a.project.repro()  # restored from the local run-cache
    sent = a.json("push")
    assert sent[0]["objects"]["transferred"] >= 1
    assert on_remote(spec, a.root, models[9])


def test_gc_remote_keeps_what_shared_run_records_need(
    pushed: tuple[User, RemoteSpec, dict[str, Any]],
) -> None:
    from pipeline.core.hashing import digest_bytes

    a, spec, h = pushed
    a.ok("run", "--param", "train.lr=7")  # an experiment: its record keeps its params and lock
    model7 = digest_bytes(a.project.read("data/prepared.txt").encode() + b"lr=7\n")
    assert not on_remote(spec, a.root, model7)
    shared = a.json("push", "--runs")
    assert shared[0]["records"] >= 4  # the repros with lr=1, 2, 9 and the experiment
    assert on_remote(spec, a.root, model7)

    done = a.json("gc", "--remote", "origin", "--workspace", "-y")
    # No lock in scope needs the experiment's model, but a shared record does (a teammate may
    # `checkout RUN`); a repro's record keeps no lock, so lr=1's and lr=9's models go.
    assert model7 not in done["removed"]
    assert on_remote(spec, a.root, model7)
    kept = {lr: on_remote(spec, a.root, digest) for lr, digest in h["models"].items()}
    assert kept == {1: False, 2: True, 9: False}
