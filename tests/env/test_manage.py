"""The environments of a project as `env list | lock | prune | show` see them: named system envs,
and a prune that spares dangling links' owners and envs in use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline import api
from pipeline.errors import UsageError
from tests.conftest import Project
from tests.env.support import EnvCache, output, write_yaml

# Every test here gets its own env cache and offline pip settings (conftest's `cache`).
pytestmark = pytest.mark.usefixtures("cache")


def test_prune_removes_a_symlink_to_a_deleted_env(project: Project, cache: EnvCache) -> None:
    project.manifest({"stages": {"a": {"cmd": "true"}}})
    cache.root.mkdir(parents=True)
    dangling = cache.root / ("cd" * 16)
    dangling.symlink_to(f".store/{'cd' * 16}.deadbeef")
    api.env_prune(project.root, days=30)
    assert not dangling.is_symlink()


def test_env_show_of_a_stage_in_a_named_system_env(project: Project) -> None:
    project.manifest(
        {"environments": {"host": "system"}, "stages": {"a": {"cmd": "true", "env": "host"}}}
    )
    done = project.cli("env", "show", "a")
    assert done.returncode == 0, output(done)
    assert "internal error" not in output(done)
    assert "stage a runs in the current environment (system" in done.stdout, output(done)
    # `--json` says "no env" as for `env: system` itself: null.
    shown = project.cli("env", "show", "a", "--json")
    assert shown.returncode == 0, output(shown)
    assert json.loads(shown.stdout) is None, shown.stdout


def test_env_lock_of_a_named_system_env_says_it_is_system(project: Project) -> None:
    project.manifest(
        {"environments": {"host": "system"}, "stages": {"a": {"cmd": "true", "env": "host"}}}
    )
    with pytest.raises(UsageError) as caught:
        api.env_lock(project.root, ("host",))
    assert "no environment named" not in caught.value.message
    assert "system" in caught.value.message + (caught.value.hint or "")


def test_prune_does_not_delete_an_env_a_running_stage_uses(
    make_project: Any, cache: EnvCache, tmp_path: Path
) -> None:
    import time

    from tests.conftest import cli_env

    project = make_project("busy")
    other = make_project("other")
    other.manifest({"stages": {"x": {"cmd": "true"}}})
    started, go = tmp_path / "started", tmp_path / "go"
    write_yaml(project, "python_env.yaml", {"dependencies": ["alpha"]})
    cmd = (
        f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; "
        "python -c 'import sys; print(sys.prefix)' > a.txt"
    )
    project.manifest(
        {"python_env": "python_env.yaml", "stages": {"a": {"cmd": cmd, "outs": ["a.txt"]}}}
    )
    api.env_build(project.root)
    running = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(project.root), "repro"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    (digest,) = cache.published()
    try:
        deadline = time.monotonic() + 30  # a hang guard: the file barrier below orders things
        while not started.exists() and running.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert started.exists(), "the stage never started"
        pruned = api.env_prune(other.root, days=0)  # not `other`'s env, unused for 0 days
    finally:
        go.touch()
        out = running.communicate(timeout=60)[0]
    assert running.returncode == 0, out
    assert cache.contains(project.read("a.txt").strip()), out  # it ran inside the env
    assert pruned.removed == (), pruned  # in use: kept (and said so)
    assert pruned.kept == 1, pruned
    assert list(cache.published()) == [digest]  # still there after the prune
    assert Path(project.read("a.txt").strip()).resolve() == cache.published()[digest]
