"""Making sure a stage's env exists and activating it: built at most once (two stages under
`-j 2`, two processes, two threads), and the outer environment never leaks into a stage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from tests.conftest import Project, cli_env
from tests.env.support import (
    SHOW_PY,
    build_counting_sdist,
    builds_in,
    copy_tree,
    counted,
    isolate,
    ok,
    output,
    repro_ok,
    show_stage,
    shown,
    write_yaml,
)

# Every test here gets its own env cache and offline pip settings (conftest's `cache`).
pytestmark = pytest.mark.usefixtures("cache")


# -- activation: nothing of the outer environment leaks in -------------------------------------


def test_an_outer_venvs_bin_is_not_on_the_stages_path(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outer = tmp_path / "outer-venv"
    (outer / "bin").mkdir(parents=True)
    tool = outer / "bin" / "outer-tool"
    tool.write_text("#!/bin/sh\necho leaked\n")
    tool.chmod(0o755)
    monkeypatch.setenv("VIRTUAL_ENV", str(outer))
    monkeypatch.setenv("PATH", f"{outer / 'bin'}{os.pathsep}{os.environ['PATH']}")
    write_yaml(project, "python_env.yaml", {"dependencies": ["alpha"]})
    project.manifest(
        {
            "python_env": "python_env.yaml",
            "stages": {
                "a": {"cmd": "(command -v outer-tool || echo none) > a.txt", "outs": ["a.txt"]}
            },
        }
    )
    repro_ok(project)
    assert project.read("a.txt").strip() == "none"


# -- two envs built at once in one process -----------------------------------------------------


RACE = """
import sys, sysconfig, threading, time
from pathlib import Path
from pipeline.load.environments import EnvDecl
from pipeline.env.provision import Provisioner
from pipeline.env.resolve import resolve_env

root = Path(sys.argv[1])
envs = [resolve_env(root, EnvDecl(n, "requirements", f"{n}.txt")) for n in ("one", "two")]
provisioner = Provisioner()  # what the executor holds; `-j 2` workers call ensure()
original = sysconfig._init_posix

def slow(config):  # widens CPython 3.10/3.11's unlocked first-use window of sysconfig
    time.sleep(0.3)
    original(config)

sysconfig._init_posix = slow
sysconfig._CONFIG_VARS = None  # as in a fresh `pipeline repro`: nothing has read it yet
errors = []

def work(env):
    try:
        provisioner.ensure(env)
    except BaseException as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=work, args=(env,)) for env in envs]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(errors)
"""


def test_two_envs_building_in_parallel_threads_on_a_cold_sysconfig(project: Project) -> None:
    import sysconfig

    if hasattr(sysconfig, "_CONFIG_VARS_LOCK") or not hasattr(sysconfig, "_init_posix"):
        pytest.skip("this Python's sysconfig initialises under a lock")
    project.write("one.txt", "alpha\n")
    project.write("two.txt", "gamma\n")
    done = subprocess.run(
        [sys.executable, "-c", RACE, str(project.root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


# -- 7. built exactly once: -j 2 in one process, and two processes at once ---------------------


def test_two_stages_on_one_env_under_j2_build_it_once(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wheels: Path
) -> None:
    links = copy_tree(wheels, tmp_path / "links")
    counter = tmp_path / "installs.txt"
    # The build takes >= 1 s, so both stages (started together under -j 2) want it at once.
    build_counting_sdist(links, tmp_path, "counted", counter, sleep=1.0)
    cache = isolate(monkeypatch, tmp_path, links)
    monkeypatch.setenv("UV_NO_CACHE", "1")  # uv builds the sdist on every install: a counter
    project.write("show.py", SHOW_PY)
    write_yaml(project, "envs/shared.yaml", {"dependencies": ["counted", "alpha"]})
    project.manifest(
        {
            "environments": {"shared": {"python_env": "envs/shared.yaml"}},
            "stages": {
                "a": show_stage("a", "counted", env="shared"),
                "b": show_stage("b", "counted", env="shared"),
            },
        }
    )

    done = ok(project.cli("repro", "-j", "2"))

    assert counted(counter) == 1
    assert builds_in(output(done), "shared") == 1, output(done)
    assert shown(project, "a")["prefix"] == shown(project, "b")["prefix"]
    assert len(cache.store_dirs()) == 1
    assert sorted(project.executions()) == ["a", "b"]


def test_two_processes_sharing_a_spec_build_it_once(
    make_project: Callable[..., Project],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    wheels: Path,
) -> None:
    links = copy_tree(wheels, tmp_path / "links")
    counter = tmp_path / "installs.txt"
    build_counting_sdist(links, tmp_path, "counted", counter)
    cache = isolate(monkeypatch, tmp_path, links)
    monkeypatch.setenv("UV_NO_CACHE", "1")
    projects: list[Project] = [make_project(n) for n in ("one", "two")]
    for p in projects:
        p.write("show.py", SHOW_PY)
        write_yaml(p, "envs/shared.yaml", {"dependencies": ["counted"]})
        p.manifest(
            {
                "environments": {"shared": {"python_env": "envs/shared.yaml"}},
                "stages": {"a": show_stage("a", "counted", env="shared")},
            }
        )
    listed = json.loads(ok(projects[0].cli("env", "list", "--json")).stdout)
    hexdigest = listed[0]["digest"].rsplit(":", 1)[-1]

    # Hold the env's build lock (as a third builder would) until both processes wait on it,
    # so they are guaranteed to contend; then let them race.
    lock_file = cache.root / ".locks" / f"{hexdigest}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    held = FileLock(str(lock_file))
    held.acquire()
    logs = [tmp_path / f"{p.root.parent.name}.log" for p in projects]
    procs = []
    try:
        for p, log in zip(projects, logs, strict=True):
            with open(log, "w") as sink:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "pipeline", "-C", str(p.root), "repro"],
                        cwd=p.root,
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                        env=cli_env(),
                    )
                )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting = ["waiting for another process" in log.read_text() for log in logs]
            if all(waiting) or any(proc.poll() is not None for proc in procs):
                break
            time.sleep(0.05)
    finally:
        held.release()
        codes = [proc.wait(timeout=60) for proc in procs]
    texts = [log.read_text() for log in logs]

    assert codes == [0, 0], texts
    assert all("waiting for another process" in t for t in texts), texts
    assert sum(builds_in(t, "shared") for t in texts) == 1, texts
    assert counted(counter) == 1
    assert len(cache.store_dirs()) == 1
    assert shown(projects[0], "a")["prefix"] == shown(projects[1], "a")["prefix"]
