"""The remote run-cache in the executor, through the Python API: a stage whose exact inputs a
teammate already ran and pushed is restored from the remote instead of run; the match is
environment-aware (another env digest is another fingerprint); an unreachable remote costs the
shortcut, never the run (`RunResult.remote_error` says why, the CLI warns); and a damaged or
forged entry on the remote, or an entry whose output is corrupt there, is never used.

Alice runs and pushes; Bob is a `git clone` of her repository (no cache, no outputs).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline import api
from pipeline.core.config import RemoteSettings
from pipeline.execute.options import ReproOptions
from pipeline.execute.scheduler import Outcome
from pipeline.store.objects import ObjectStore
from pipeline.store.remote import Remote
from pipeline.store.runcache import RunCache
from tests.conftest import Project, cli_env, outcomes, ran, record
from tests.servers import RemoteSpec, closed_port, configure, isolate_aws


def manifest(env: bool = False) -> dict:
    train: dict = {
        "cmd": "{ cat prepared.txt; echo lr=${lr}; } > model.txt && " + record("train"),
        "deps": ["prepared.txt"],
        "params": ["lr"],
        "outs": ["model.txt"],
    }
    spec: dict = {"name": "runcache"}
    if env:
        train["env"] = "e"
        spec["environments"] = {"e": {"requirements": "reqs.txt"}}
    spec["stages"] = {
        "prepare": {
            "cmd": "cat raw.txt > prepared.txt && " + record("prepare"),
            "deps": ["raw.txt"],
            "outs": ["prepared.txt"],
        },
        "train": train,
    }
    return spec


def alice(make_project: Callable[..., Project], spec: RemoteSpec, *, env: bool = False) -> Project:
    """Alice's project (raw.txt in git), its remote, committed; nothing run yet."""
    project = make_project("alice")
    project.write("raw.txt", "raw\n")
    project.params({"lr": 1})
    if env:
        project.write("reqs.txt", "# no packages\n")
    project.manifest(manifest(env), commit=False)
    configure(project.root, spec)
    project.commit(message="project")
    return project


def run_and_push(project: Project, lr: int) -> tuple[str, str]:
    """Repro with `lr`, push; returns (train's fingerprint, model.txt's text)."""
    project.params({"lr": lr})
    result = project.repro()
    assert result.failed is None
    api.push(root=project.root)
    return project.lock()["stages"]["train"]["fingerprint"], project.read("model.txt")


def clone(project: Project, dest: Path) -> Project:
    subprocess.run(
        ["git", "clone", "-q", str(project.root), str(dest)], check=True, capture_output=True
    )
    return Project(dest.resolve())


def remote_of(spec: RemoteSpec, root: Path) -> Remote:
    return Remote(RemoteSettings("origin", spec.url, dict(spec.options)), root)


def test_a_clone_restores_from_the_remote_run_cache_instead_of_running(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    a = alice(make_project, local_remote)
    fingerprint, model = run_and_push(a, 1)
    b = clone(a, tmp_path / "bob" / "proj")

    result = b.repro()
    assert outcomes(result) == {"prepare": Outcome.RESTORED, "train": Outcome.RESTORED}
    assert b.executions() == []
    assert result.remote_error is None
    assert b.read("model.txt") == model
    store = ObjectStore(b.root / ".pipeline" / "cache")
    assert RunCache(store).get(fingerprint) is not None  # now in Bob's own run-cache
    assert all(intact for _, intact in store.fsck())

    # --no-run-cache stays local: on another clone, the stages run.
    c = clone(a, tmp_path / "carol" / "proj")
    result = api.repro(ReproOptions(root=c.root, run_cache=False))
    assert ran(result) == ["prepare", "train"]


def test_the_match_is_environment_aware(
    make_project: Callable[..., Project],
    local_remote: RemoteSpec,
    tmp_path: Path,
    xdg_cache_home: None,
) -> None:
    a = alice(make_project, local_remote, env=True)
    run_and_push(a, 1)  # train ran in env `e` (a venv with no packages)

    same = clone(a, tmp_path / "bob" / "proj")
    assert outcomes(same.repro())["train"] is Outcome.RESTORED

    other = clone(a, tmp_path / "carol" / "proj")
    other.write("reqs.txt", "# no packages, another spec\n")  # another env digest
    result = other.repro()
    assert outcomes(result) == {"prepare": Outcome.RESTORED, "train": Outcome.RAN}
    assert other.executions() == ["train"]

    system = clone(a, tmp_path / "dave" / "proj")
    result = api.repro(ReproOptions(root=system.root, env_manager="local"))  # no env at all
    assert outcomes(result)["train"] is Outcome.RAN


def test_an_unreachable_remote_runs_the_stages_here_and_says_why(
    make_project: Callable[..., Project], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no retries against a closed port
    endpoint = f"http://127.0.0.1:{closed_port()}"
    a = alice(make_project, RemoteSpec("s3://team/store", {"endpoint_url": endpoint}))

    result = a.repro()
    assert ran(result) == ["prepare", "train"]
    assert result.failed is None
    assert result.remote_error is not None
    assert "remote 'origin' (s3://team/store) did not answer" in result.remote_error

    a.write("raw.txt", "raw 2\n")
    done = a.cli("repro", env=cli_env(**env, AWS_MAX_ATTEMPTS="1"))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, done.stderr
    assert "did not answer" in warnings[0]
    assert "the remote's run-cache was not used" in done.stderr


def test_a_damaged_or_forged_entry_on_the_remote_is_never_used(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    a = alice(make_project, local_remote)
    lr1, _ = run_and_push(a, 1)
    lr2, model2 = run_and_push(a, 2)
    lr3, model3 = run_and_push(a, 3)
    remote = remote_of(local_remote, a.root)

    # lr=2's entry is lr=1's, copied under lr=2's name: it would restore lr=1's model.
    Path(remote.run_path(lr2)).write_bytes(Path(remote.run_path(lr1)).read_bytes())
    b = clone(a, tmp_path / "bob" / "proj")
    b.params({"lr": 2})
    result = b.repro()
    assert outcomes(result) == {"prepare": Outcome.RESTORED, "train": Outcome.RAN}
    assert b.read("model.txt") == model2
    assert result.remote_error is None  # ignored, not an error

    # lr=3's entry is not JSON any more.
    Path(remote.run_path(lr3)).write_bytes(b"\x00 not an entry")
    b.clear_executions()
    b.params({"lr": 3})
    assert outcomes(b.repro())["train"] is Outcome.RAN
    assert b.read("model.txt") == model3


def test_an_entry_whose_output_is_corrupt_on_the_remote_is_never_used(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    a = alice(make_project, local_remote)
    _, model = run_and_push(a, 1)
    remote = remote_of(local_remote, a.root)
    digest = a.lock()["stages"]["train"]["outs"][0]["hash"]
    path = Path(remote.object_path(digest))
    path.chmod(0o644)
    path.write_text("lr=666\n")  # same path, other bytes

    b = clone(a, tmp_path / "bob" / "proj")
    result = b.repro()
    assert outcomes(result) == {"prepare": Outcome.RESTORED, "train": Outcome.RAN}
    assert b.read("model.txt") == model
    store = ObjectStore(b.root / ".pipeline" / "cache")
    assert all(intact for _, intact in store.fsck())


def test_an_entry_naming_paths_the_stage_does_not_declare_writes_nothing_there(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    """Anyone who can write to the shared remote could forge an entry under the right name:
    restoring it must never place a file the stage does not declare, least of all outside
    the project."""
    import json

    a = alice(make_project, local_remote)
    fingerprint, model = run_and_push(a, 1)
    remote = remote_of(local_remote, a.root)
    entry_path = Path(remote.run_path(fingerprint))
    entry = json.loads(entry_path.read_bytes())
    (out,) = entry["outs"]
    entry["outs"] = [out, {**out, "path": "../outside.txt"}, {**out, "path": "MLproject"}]
    entry_path.chmod(0o644)
    entry_path.write_text(json.dumps(entry))

    b = clone(a, tmp_path / "bob" / "proj")
    manifest_before = b.read("MLproject")
    result = b.repro()
    assert result.failed is None
    assert not (b.root.parent / "outside.txt").exists()
    assert b.read("MLproject") == manifest_before
    assert b.read("model.txt") == model
